"""`scalms train mace --continue-from`: a MACE trained further on more data of the same kind,
without replay (MACE's plain fine-tune), as active learning retrains its committee members.

The config MACE reads and the refusals are checked without MACE; MACE's own parser, the element
check against the model and one short real continued training run in the mace environment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.testing import write_model_config
from scalms.training.mace import input_hashes, train_mace
from scalms.training.mace_config import (
    CONTINUE_LR,
    SIZE_KEYS,
    MaceModelSize,
    MaceTrainingSpec,
    RunLayout,
    build_config,
    check_spec,
    config_yaml,
    job_identity,
)
from scalms.training.trained import TrainingError

from .conftest import REPO, needs_env

runner = CliRunner()
DATA = REPO / "ML_training" / "data" / "GaPt_train.extxyz"
E0 = REPO / "tests" / "data" / "E0_7net0_GaPtPdAgAuBiCH.json"
MEMBER = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
"""A MACE trained from scratch on Ga-Pt (float64, one head): a committee member to continue."""
MACE_PYTHON = REPO / ".venvs" / "mace" / "bin" / "python"
SMALL = list(range(36, 48))
"""The 13-atom Ga-Pt clusters of DATA: the cheapest frames to train on."""


def _frames(tmp_path: Path, name: str, indices: list[int], replace: dict | None = None) -> Path:
    frames = read(DATA, index=":")
    chosen = [frames[i] for i in indices]
    for frame_index, symbol in (replace or {}).items():
        chosen[frame_index].symbols[0] = symbol
    path = tmp_path / name
    write(path, chosen, format="extxyz")
    return path


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    return {
        "train": _frames(tmp_path, "train.xyz", SMALL[:4]),
        "valid": _frames(tmp_path, "valid.xyz", SMALL[4:6]),
        "test": _frames(tmp_path, "test.xyz", SMALL[6:8]),
        "config": write_model_config(
            tmp_path, f"MACE:\n  models:\n    member:\n      model_path: {MEMBER}\n"
        ),
    }


def _spec(data: dict[str, Path], **changes) -> MaceTrainingSpec:
    settings = dict(
        name="member-r1",
        train_file=data["train"],
        valid_file=data["valid"],
        test_file=data["test"],
        continue_from=MEMBER,
        batch_size=2,
        device="cpu",
    )
    return MaceTrainingSpec(**{**settings, **changes})


def _cli(data: dict[str, Path], tmp_path: Path, *extra) -> list[str]:
    return [
        "train", "mace", "--train", str(data["train"]), "--valid", str(data["valid"]),
        "--test", str(data["test"]), "--name", "member-r1", "-c", str(data["config"]),
        "--runs-dir", str(tmp_path / "runs"), "--batch-size", "2", "--device", "cpu",
        *map(str, extra),
    ]  # fmt: skip


def _refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], result.output


# ---- the config MACE reads --------------------------------------------------------------------


def test_continued_training_is_maces_plain_fine_tune_with_the_models_own_e0s(data, tmp_path):
    spec = _spec(data)
    check_spec(spec)  # no --e0 needed
    layout = RunLayout(tmp_path / "runs" / "member-r1")
    config = build_config(spec, layout, {}, "float64", "cpu")
    assert config["foundation_model"] == str(MEMBER.absolute())
    assert config["multiheads_finetuning"] is False and config["E0s"] == "foundation"
    assert config["foundation_model_elements"] is True  # the member keeps every element
    assert config["lr"] == CONTINUE_LR == 1e-3  # a tenth of the scratch rate, not 2.5e-5
    assert not SIZE_KEYS & set(config)  # the model's own architecture
    assert not {"pt_train_file", "force_mh_ft_lr", "weight_pt_head"} & set(config)
    assert config["restart_latest"] is True  # a kill resumes like any training
    assert "E0s: foundation" in config_yaml(config)
    assert _spec(data, lr=5e-4).learning_rate == 5e-4  # --lr still wins


def test_the_continued_models_content_is_part_of_the_job_identity(data, tmp_path):
    spec = _spec(data)
    hashes = input_hashes(spec)
    assert "continue_from" in hashes and "e0_file" not in hashes
    other = tmp_path / "other.model"
    other.write_bytes(MEMBER.read_bytes() + b"\0")
    changed = _spec(data, continue_from=other)
    assert (
        job_identity(changed, input_hashes(changed))["files"]["continue_from"]
        != (hashes["continue_from"])
    )
    # The same model under another path is the same training (a resume may move the file).
    shutil.copy(MEMBER, tmp_path / "copy.model")
    moved = _spec(data, continue_from=tmp_path / "copy.model")
    assert job_identity(moved, input_hashes(moved)) == job_identity(spec, hashes)


# ---- refusals, one line each, before anything runs --------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"foundation_model": MEMBER}, ["--foundation-model and --replay-file", "one or the"]),
        ({"replay_file": DATA}, ["--foundation-model and --replay-file"]),
        ({"size": MaceModelSize(num_channels=8)}, ["model size options", "keeps the model's"]),
        ({"e0_file": E0}, ["--e0 with --continue-from", "drop --e0"]),
        ({"continue_from": None}, ["--e0 is needed"]),
    ],
)  # fmt: skip
def test_settings_that_do_not_fit_continued_training_are_refused(data, changes, words):
    with pytest.raises(TrainingError) as refused:
        check_spec(_spec(data, **changes))
    message = str(refused.value)
    assert "\n" not in message and all(word in message for word in words), message


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--foundation-model", MEMBER, "--replay-file", DATA], ["one or the other"]),
        (["--num-channels", "8"], ["model size options"]),
        (["--e0", E0], ["drop --e0"]),
    ],
)
def test_the_command_refuses_them_with_one_line_and_writes_nothing(data, tmp_path, extra, words):
    result = runner.invoke(app, _cli(data, tmp_path, "--continue-from", MEMBER, *extra))
    _refused(result, *words)
    assert not (tmp_path / "runs").exists()


def test_a_missing_model_and_a_missing_e0_are_refused(data, tmp_path):
    gone = tmp_path / "gone.model"
    _refused(runner.invoke(app, _cli(data, tmp_path, "--continue-from", gone)), "file not found")
    _refused(runner.invoke(app, _cli(data, tmp_path)), "--e0 is needed")
    assert not (tmp_path / "runs").exists()


# ---- MACE itself (mace environment) -----------------------------------------------------------


@pytest.mark.mace
@needs_env("mace")
def test_the_written_config_is_accepted_by_maces_own_parser_without_replay(data, tmp_path):
    layout = RunLayout(tmp_path / "runs" / "member-r1")
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(build_config(_spec(data), layout, {}, "float64", "cpu")))
    parse = (
        "import json, sys\n"
        "from mace.tools import build_default_arg_parser\n"
        "args = build_default_arg_parser().parse_args(['--config', sys.argv[1]])\n"
        "print(json.dumps({k: str(v) for k, v in vars(args).items()}))\n"
    )
    done = subprocess.run(
        [str(MACE_PYTHON), "-c", parse, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    args = json.loads(done.stdout.strip().splitlines()[-1])
    assert args["foundation_model"] == str(MEMBER.absolute())
    assert args["multiheads_finetuning"] == "False" and args["E0s"] == "foundation"
    assert args["foundation_model_elements"] == "True" and float(args["lr"]) == 1e-3
    assert args["pt_train_file"] == "None"


@pytest.mark.mace
@needs_env("mace")
@pytest.mark.parametrize(
    ("foreign", "extra", "words"),
    [
        (True, [], ["the data hold Ag, Bi", "does not know (it knows Ga, Pt)"]),
        (False, ["--dtype", "float32"], ["the model", "is float64", "use --dtype float64"]),
    ],
)
def test_data_with_an_element_the_model_lacks_or_another_dtype_are_refused(
    tmp_path, foreign, extra, words
):
    data = {
        "train": _frames(tmp_path, "train.xyz", SMALL[:4], replace={2: "Ag"} if foreign else {}),
        "valid": _frames(tmp_path, "valid.xyz", SMALL[4:6], replace={0: "Bi"} if foreign else {}),
        "test": _frames(tmp_path, "test.xyz", SMALL[6:8]),
        "config": write_model_config(
            tmp_path, f"MACE:\n  models:\n    member:\n      model_path: {MEMBER}\n"
        ),
    }
    result = runner.invoke(app, _cli(data, tmp_path, "--continue-from", MEMBER, *extra))
    _refused(result, *words)
    assert not (tmp_path / "runs").exists()


MODEL_REPORT = """
import json, sys
import numpy as np
from ase.io import read
from mace.calculators import MACECalculator

def force_rmse(calc, path):
    errors = []
    for atoms in read(path, index=":"):
        atoms.calc = calc
        errors.append((atoms.get_forces() - atoms.arrays["REF_forces"]).ravel())
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))

train, valid = sys.argv[1:3]
report = {}
for path in sys.argv[3:]:
    calc = MACECalculator(model_paths=path, device="cpu", default_dtype="float64")
    model = calc.models[0]
    report[path] = {
        "atomic_numbers": [int(z) for z in model.atomic_numbers],
        "heads": [str(h) for h in model.heads],
        "train_force_rmse_eV_per_A": force_rmse(calc, train),
        "valid_force_rmse_eV_per_A": force_rmse(calc, valid),
    }
print(json.dumps(report))
"""
"""Each model's elements and heads, and its force RMSE on the train and valid frames (one start
of the mace environment for both models)."""


@pytest.mark.mace
@pytest.mark.slow
@needs_env("mace")
def test_a_continued_member_keeps_its_elements_and_fits_its_training_frames_no_worse(
    data, tmp_path
):
    spec = _spec(data, epochs=2)
    lines: list[str] = []
    trained = train_mace(spec, data["config"], tmp_path / "runs", log=lines.append)
    assert trained.model_path == tmp_path / "runs" / "member-r1" / "member-r1.model"
    assert trained.options == {"default_dtype": "float64"}  # one head: no head to name
    assert any(line.startswith(f"continuing {MEMBER}") for line in lines), lines
    mace_log = (trained.run_dir / "logs" / "member-r1_run-123.log").read_text()
    assert "Param group 0: lr = 0.001" in mace_log
    done = subprocess.run(
        [str(MACE_PYTHON), "-c", MODEL_REPORT, str(data["train"]), str(data["valid"]),
         str(MEMBER), str(trained.model_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = report[str(MEMBER)], report[str(trained.model_path)]
    assert after["atomic_numbers"] == before["atomic_numbers"] == [31, 78]
    assert after["heads"] == ["Default"]
    # Training starts from the member itself (weights, scale, E0s): MACE's evaluation before
    # the first epoch is the member's own error on the valid frames.
    [initial] = [r for r in _results(trained.run_dir) if r["mode"] == "eval" and r["epoch"] is None]
    assert initial["rmse_f"] == pytest.approx(before["valid_force_rmse_eV_per_A"], rel=1e-6)
    train_rmse = "train_force_rmse_eV_per_A"
    assert after[train_rmse] <= before[train_rmse], report


def _results(run_dir: Path) -> list[dict]:
    [path] = (run_dir / "results").glob("*_train.txt")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
