"""`scalms learn` refuses bad input in one line before any work, continues only the same loop,
and stops honestly when no frame is worth labelling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.learn.settings import LearnError, LearnSettings
from scalms.learn.state import LearnDir
from scalms.learn.steps import split_valid
from tests.test_learn import CONFIG, HELD_OUT, MEMBERS, START

runner = CliRunner()


def learn(*args):
    return runner.invoke(app, ["learn", *map(str, args)])


def one_line_error(result, exit_code: int, words: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert words in " ".join(result.output.split()), result.output


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "model_config.yaml"
    path.write_text(CONFIG + "builtin:\n  models:\n    lj: {}\n    emt: {}\n")
    return path


def base(config, out, *members):
    members = members or MEMBERS
    committee = [a for m in members for a in ("--committee", m)]
    return ["run", START, *committee, "--model-config", config, "--out", out]


def test_a_committee_of_one_is_refused(config, tmp_path):
    result = learn(*base(config, tmp_path / "out", MEMBERS[0]), "--labeller", "7net-0")
    one_line_error(result, 2, "a committee needs at least two different models")
    assert not (tmp_path / "out").exists()


def test_a_committee_member_scalms_cannot_fine_tune_is_refused(config, tmp_path):
    result = learn(*base(config, tmp_path / "out", MEMBERS[0], "7net-0"), "--labeller", "lj")
    one_line_error(result, 2, "the loop fine-tunes MACE members only")


def test_an_unknown_committee_member_names_the_models_there(config, tmp_path):
    result = learn(*base(config, tmp_path / "out", MEMBERS[0], "nope"), "--labeller", "lj")
    one_line_error(result, 2, "committee model 'nope' is not in")


def test_a_missing_structure_is_refused(config, tmp_path):
    args = base(config, tmp_path / "out")
    args[1] = tmp_path / "missing.xyz"
    one_line_error(learn(*args, "--labeller", "lj"), 2, "file(s) not found")


def test_a_labeller_that_lacks_an_element_is_refused_before_any_md(config, tmp_path):
    """EMT knows no Ga: its child refuses the structures, before any MD is run."""
    out = tmp_path / "out"
    result = learn(*base(config, out), "--labeller", "emt", "--device", "cpu")
    one_line_error(result, 2, "labeller 'emt' cannot label the structures")
    assert "Ga" in result.output
    assert not (out / "learn.json").exists() and not (out / "round-01").exists()


def test_an_unknown_labeller_is_refused(config, tmp_path):
    result = learn(*base(config, tmp_path / "out"), "--labeller", "gaussian")
    one_line_error(result, 2, "unknown calculator 'gaussian'")


def test_a_rerun_with_other_settings_is_refused_naming_them(config, tmp_path):
    out = tmp_path / "out"
    settings = LearnSettings((START,), MEMBERS, "lj", model_config=config).resolved()
    LearnDir(out).write_settings(settings)
    result = learn(*base(config, out), "--labeller", "lj", "--select", "5")
    one_line_error(result, 2, "holds a learning loop with other settings (select)")


def test_a_periodic_structure_is_refused(config, tmp_path):
    from ase.build import bulk
    from ase.io import write

    crystal = tmp_path / "Ga_bulk.extxyz"
    write(crystal, bulk("Al", "fcc", a=4.0).repeat(2), format="extxyz")
    args = base(config, tmp_path / "out")
    args[1] = crystal
    one_line_error(learn(*args, "--labeller", "lj"), 2, "is periodic")


def test_an_unlabelled_held_out_set_is_refused_before_any_work(config, tmp_path):
    out = tmp_path / "out"
    result = learn(*base(config, out), "--labeller", "lj", "--held-out", START)
    one_line_error(result, 2, "no reference energy and forces")
    assert not out.exists()


def test_a_damaged_round_record_is_named_with_the_fix(config, tmp_path):
    out = tmp_path / "out"
    settings = LearnSettings((START,), MEMBERS, "lj", model_config=config).resolved()
    folder = LearnDir(out)
    folder.write_settings(settings)
    folder.round(0).root.mkdir(parents=True)
    folder.round(0).record_file.write_text('{"record": {"round": "zero", "nonsense": 1}}')
    one_line_error(learn("status", out), 2, "remove it to run the round again")


def test_a_step_done_already_names_the_next_one(config, tmp_path):
    from scalms.analysis.learning import RoundRecord

    out = tmp_path / "out"
    settings = LearnSettings((START,), MEMBERS, "lj", model_config=config).resolved()
    folder = LearnDir(out)
    folder.write_settings(settings)
    folder.save_round(RoundRecord(0, list(MEMBERS)), ["evaluate", "report"], [])
    folder.save_round(RoundRecord(1, list(MEMBERS)), ["md", "spread", "select", "label"], [])
    one_line_error(
        learn("step", out, "label"), 2, "step 'label' is done already; the next one is 'package'"
    )
    one_line_error(learn("step", out, "train"), 2, "step 'package' is not done yet")


def test_settings_refuse_nonsense_in_one_message():
    with pytest.raises(LearnError) as caught:
        LearnSettings((START,), MEMBERS, "lj", md_steps=5, save_interval=10, valid_fraction=1.5)
    message = str(caught.value)
    assert "saves no frame" in message and "--valid-fraction" in message


def test_settings_survive_their_json_round_trip(config):
    settings = LearnSettings(
        (START,), MEMBERS, "cp2k", held_out=HELD_OUT, model_config=config, dft={"cutoff": 300.0}
    ).resolved()
    again = LearnSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert again == settings and not again.changes(settings)


def test_status_and_step_of_a_folder_without_a_loop_say_so(tmp_path):
    one_line_error(learn("status", tmp_path), 2, "holds no learning loop")
    one_line_error(learn("step", tmp_path, "label"), 2, "holds no learning loop")


def test_an_unknown_step_is_refused(config, tmp_path):
    out = tmp_path / "out"
    LearnDir(out).write_settings(LearnSettings((START,), MEMBERS, "lj", model_config=config))
    one_line_error(learn("step", out, "dance"), 2, "unknown step 'dance'")


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 41])
def test_every_group_of_two_or_more_frames_validates_on_some_and_trains_on_the_rest(n):
    chosen = split_valid(n, 0.1, np.random.default_rng(0))
    assert chosen <= set(range(n))
    if n < 2:
        assert not chosen
    else:
        assert 1 <= len(chosen) < n and len(chosen) == max(1, round(0.1 * n))


def test_a_round_where_no_frame_passes_the_threshold_stops_honestly(config, tmp_path):
    """Round 1's MD and spreads are on disk (largest spread 0.3 eV/Å); with a threshold of 0.5
    its select step picks nothing: the loop says so, stops with exit 0, registers nothing, and a
    rerun or a later step stops the same way."""
    from ase.io import read, write

    from scalms.analysis.learning import RoundRecord

    out = tmp_path / "out"
    settings = LearnSettings(
        (START,), MEMBERS, "lj", spread_threshold_eV_per_A=0.5, model_config=config
    ).resolved()
    folder = LearnDir(out)
    folder.write_settings(settings)
    folder.save_round(RoundRecord(0, list(MEMBERS)), ["evaluate", "report"], [])
    round_one = folder.round(1)
    round_one.candidates.mkdir(parents=True)
    write(round_one.candidates / "Ga47Pt3.extxyz", [read(START)] * 3, format="extxyz")
    record = RoundRecord(1, list(MEMBERS), n_candidates=3, spread_before_eV_per_A=[0.1, 0.3, 0.2])
    folder.save_round(record, ["md", "spread"], [])
    args = base(config, out)
    result = learn(*args, "--labeller", "lj", "--spread-threshold", "0.5")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "nothing selected in round 1" in text and "(largest 0.300)" in text
    assert "stopping" in text
    assert not round_one.selected.exists() and not round_one.labelled.exists()
    assert "learn-out" not in config.read_text()  # nothing trained, nothing registered
    assert (out / "report.html").is_file()
    status = learn("status", out)
    assert status.exit_code == 0 and "nothing selected" in " ".join(status.output.split())
    one_line_error(learn("step", out, "label"), 2, "the loop has no step left to run (it stopped")
