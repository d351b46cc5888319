"""One round of `scalms learn` labelled by real CP2K on a tiny Ga4 cluster: its labelling killed
with SIGKILL mid-way, then finished as a job of a real single-node SLURM (`scalms hpc submit --
learn step DIR label`); its training killed once a member has a checkpoint; the same `learn run`
command then ends the round. No labelled frame is computed twice."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.hpc.slurm.jobs import job_status
from tests.conftest import needs_env, require_programs, wait_for
from tests.slurm_cluster import PROGRAMS, single_node_cluster
from tests.test_hpc_dft import tetrahedron
from tests.test_learn import CONFIG, MEMBERS, frames_on_disk, kill_when

pytestmark = [pytest.mark.slow, needs_env("mace")]
runner = CliRunner()
SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
NET_FORCE_LIMIT = 0.3
"""eV/Å: 300 Ry keeps CP2K's net force on Ga4 near 0.1 (600 Ry, the default, costs 3x)."""
PICKS = 3


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def submit_and_wait(job, *command) -> list:
    """``scalms hpc submit --dir JOB -- COMMAND`` on a single-node SLURM; each task's status."""
    before = os.environ.get("SLURM_CONF")
    with single_node_cluster(job.parent / "slurm") as cluster:
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            invoke(
                "hpc", "submit", "--dir", job, "--partition", "debug", "--cpus-per-task", "2",
                "--mem", "2G", "--time", "30", "--", *command,
            )  # fmt: skip
            statuses = []

            def finished() -> bool:
                statuses[:] = job_status(job)
                return all(s.finished for s in statuses)

            wait_for(finished, "the job finished")
            return statuses
        finally:
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before


def test_a_cp2k_round_killed_while_labelling_and_training_labels_nothing_twice(tmp_path):
    require_programs("cp2k.psmp", *PROGRAMS)
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root), as in CI")
    config = tmp_path / "model_config.yaml"
    config.write_text(CONFIG)
    start = tmp_path / "Ga4.extxyz"
    write(start, tetrahedron("Ga4", 2.75, 0.1, 1), format="extxyz")
    out = tmp_path / "loop"
    command = [
        "learn", "run", start, "--committee", MEMBERS[0], "--committee", MEMBERS[1],
        "--labeller", "cp2k", "--cutoff", "300", "--rounds", "1", "--md-steps", "30",
        "--save-interval", "10", "--temperature-K", "300", "--select", str(PICKS),
        "--spread-threshold", "0", "--epochs", "4",
        "--net-force-threshold", str(NET_FORCE_LIMIT), "--device", "cpu",
        "--model-config", config, "--out", out,
    ]  # fmt: skip
    text = invoke(*command, "--stop-after", "select")
    assert f"picked {PICKS} of {PICKS} frames" in text
    assert "label, package, train, evaluate, report" in invoke("learn", "status", out)

    # the labelling step, killed once CP2K has finished a frame (each takes seconds)
    round_one = out / "round-01"
    labelled = round_one / "labelled.extxyz"
    kill_when(
        [*SCALMS, "learn", "step", str(out), "label"],
        lambda: frames_on_disk(labelled) >= 1,
        "CP2K labelled a frame",
    )
    kept = read(labelled, ":")
    assert 1 <= len(kept) < PICKS, "the labelling was not stopped mid-way"

    # the rest of it as a SLURM job
    statuses = submit_and_wait(tmp_path / "job", "learn", "step", out, "label")
    log = statuses[0].log.read_text() if statuses[0].log else ""
    assert [s.state for s in statuses] == ["done"], log
    after = read(labelled, ":")
    assert [a.info["candidate"] for a in after] == json.loads(
        (round_one / "round.json").read_text()
    )["record"]["selection"]["picked"]
    for old, new in zip(kept, after, strict=False):  # the frames from before the kill: untouched
        assert new.info["wall_time_s"] == old.info["wall_time_s"]
        assert np.array_equal(new.arrays["REF_forces"], old.arrays["REF_forces"])
    for atoms in after:
        assert atoms.info["calc_name"] == "cp2k" and atoms.info["calc_cutoff_Ry"] == 300
        assert atoms.info["scf_steps"] > 1 and atoms.info["learn_round"] == 1
        assert np.linalg.norm(atoms.arrays["REF_forces"].sum(axis=0)) < NET_FORCE_LIMIT
    record = json.loads((round_one / "round.json").read_text())["record"]
    assert record["labelled_now"] == PICKS - len(kept)

    # the training, killed once the first member has a checkpoint; the same command ends it
    kill_when(
        [*SCALMS, *map(str, command)],
        lambda: any((round_one / "train").glob("*/checkpoints/*.pt")),
        "the first member has a training checkpoint",
    )
    stamp = labelled.stat().st_mtime_ns
    text = invoke(*command)
    assert "continuing the learning loop" in text
    assert labelled.stat().st_mtime_ns == stamp  # not labelled again
    record = json.loads((round_one / "round.json").read_text())["record"]
    assert record["dataset"] == {"train": PICKS - 1, "valid": 1}
    dataset = [*read(round_one / "dataset" / "train.extxyz", ":"),
               *read(round_one / "dataset" / "valid.extxyz", ":")]  # fmt: skip
    by_candidate = {a.info["candidate"]: a for a in after}
    assert sorted(a.info["candidate"] for a in dataset) == sorted(by_candidate)
    for atoms in dataset:
        labels = by_candidate[atoms.info["candidate"]]
        assert np.array_equal(atoms.arrays["REF_forces"], labels.arrays["REF_forces"])
    assert "learn-loop-" + MEMBERS[0] + "-r1" in config.read_text()
    assert "complete" in invoke("learn", "status", out)
