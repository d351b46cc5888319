"""`scalms learn` end to end on a CPU: a 50-atom Ga-Pt particle, a committee of two tiny MACE
models (seeds 1 and 2, ML_training/make_learn_committee.py) and SevenNet-0 as the teacher that
labels. Two rounds: the held-out error and the spread must fall, the picks must be the frames of
largest spread no two of which are close. (A loop killed while labelling and while training:
tests/test_learn_cp2k.py, where CP2K's labels take long enough to kill in between.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations

import numpy as np
import pytest
from ase.io import read

from tests.conftest import REPO, needs_env, wait_for

pytestmark = [pytest.mark.slow, needs_env("sevennet"), needs_env("mace")]

SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
DATA = REPO / "tests" / "data" / "learn"
START = DATA / "Ga47Pt3.extxyz"
HELD_OUT = DATA / "Ga47Pt3_held_out.extxyz"
MODELS = REPO / "ML_training" / "models"
MEMBERS = ("mace-committee-GaPt-s1", "mace-committee-GaPt-s2")
THRESHOLD = 0.05
MIN_DISTANCE = 0.8
CONFIG = f"""SevenNet:
  models:
    7net-0: {{}}
MACE:
  models:
    {MEMBERS[0]}:
      model_path: {MODELS / (MEMBERS[0] + ".model")}
      options: {{default_dtype: float32}}
    {MEMBERS[1]}:
      model_path: {MODELS / (MEMBERS[1] + ".model")}
      options: {{default_dtype: float32}}
"""


def learn_command(config, out, rounds=2, *extra) -> list[str]:
    return [
        *SCALMS, "learn", "run", str(START), "--committee", MEMBERS[0], "--committee", MEMBERS[1],
        "--labeller", "7net-0", "--rounds", str(rounds), "--md-steps", "120",
        "--save-interval", "10", "--temperature-K", "600", "--select", "4",
        "--spread-threshold", str(THRESHOLD), "--min-descriptor-distance", str(MIN_DISTANCE),
        "--held-out", str(HELD_OUT), "--train", str(REPO / "ML_training/data/GaPt_train.extxyz"),
        "--epochs", "8", "--device", "cpu", "--model-config", str(config), "--out", str(out),
        *extra,
    ]  # fmt: skip


def run_learn(*args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    return done


def rounds_of(out) -> list[dict]:
    found = sorted(out.glob("round-*/round.json"))
    return [json.loads(p.read_text())["record"] for p in found]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learn")
    config = folder / "model_config.yaml"
    config.write_text(CONFIG)
    out = folder / "loop"
    done = run_learn(*learn_command(config, out))
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, config, out, done.stdout


def test_two_rounds_lower_the_held_out_error_and_the_spread(learned):
    _, _, out, _ = learned
    records = rounds_of(out)
    assert [r["round"] for r in records] == [0, 1, 2]
    errors = [r["held_out"]["committee_force_mae_eV_per_A"] for r in records]
    assert errors[2] < errors[0], errors
    # the spread on the MD frames: round 1's frames before and after training on them, and the
    # frames each round's MD made, by the committee that ran it
    first, second = records[1], records[2]
    assert np.mean(first["spread_after_eV_per_A"]) < np.mean(first["spread_before_eV_per_A"])
    assert np.mean(second["spread_before_eV_per_A"]) < np.mean(first["spread_before_eV_per_A"])


def test_picks_are_the_largest_spreads_no_two_within_the_distance(learned):
    _, _, out, _ = learned
    for index in (1, 2):
        saved = np.load(out / f"round-{index:02d}" / "selection.npz")
        spread, picked = saved["max_spread_eV_per_A"], list(saved["picked"])
        assert picked, f"round {index} picked nothing"
        assert all(spread[i] > THRESHOLD for i in picked)
        assert list(spread[picked]) == sorted(spread[picked], reverse=True)
        features = saved["features"]
        for a, b in combinations(picked, 2):
            assert np.linalg.norm(features[a] - features[b]) >= MIN_DISTANCE
        # a frame left out with a larger spread than the last pick lies close to a pick
        for i in np.flatnonzero(spread > spread[picked[-1]]):
            if i not in picked:
                nearest = min(np.linalg.norm(features[i] - features[p]) for p in picked)
                assert nearest < MIN_DISTANCE
        labelled = read(out / f"round-{index:02d}" / "labelled.extxyz", ":")
        assert [a.info["candidate"] for a in labelled] == picked
        assert all("REF_forces" in a.arrays for a in labelled)


def test_the_final_committee_is_registered_and_reported(learned):
    _, config, out, _ = learned
    text = config.read_text()
    for member in MEMBERS:  # the round in the name: a loop taken further adds, never replaces
        assert f"learn-loop-{member}-r2:" in text
    assert (out / "report.html").stat().st_size > 0
    assert (out / "round-01" / "report.html").stat().st_size > 0
    status = run_learn(*SCALMS, "learn", "status", str(out))
    assert status.returncode == 0 and "complete" in status.stdout


def test_a_rerun_of_a_finished_loop_computes_nothing(learned):
    _, config, out, _ = learned
    patterns = ("round-*/labelled.extxyz", "round-*/evaluation.h5", "round-*/spread.h5",
                "round-*/md/trajectories/*/*", "round-*/train/*/*.model")  # fmt: skip
    before = {p: p.stat().st_mtime_ns for pattern in patterns for p in out.glob(pattern)}
    assert len(before) >= 12
    done = run_learn(*learn_command(config, out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "continuing" in done.stdout


def kill_when(command, condition, what: str) -> None:
    """Start ``command``, SIGKILL its process group (and its children) once ``condition()``."""
    from tests.test_hpc_rattle import kill_group

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for(lambda: condition() or process.poll() is not None, what)
        assert process.poll() is None, f"the loop ended before {what}"
    finally:
        kill_group(process)


def frames_on_disk(path) -> int:
    try:
        return len(read(path, ":")) if path.exists() else 0
    except Exception:  # a frame half-written at the moment of reading
        return 0
