"""One round of `scalms learn` labelled by real CP2K on a tiny Ga4 cluster, its labelling step
run as a job of a real single-node SLURM (`scalms hpc submit -- learn step DIR label`), the rest
of the round continued by the same `learn run` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.hpc.slurm.jobs import job_status
from tests.conftest import needs_env, require_programs, wait_for
from tests.slurm_cluster import PROGRAMS, single_node_cluster
from tests.test_hpc_dft import tetrahedron
from tests.test_learn import CONFIG, MEMBERS

pytestmark = [pytest.mark.slow, needs_env("mace")]
runner = CliRunner()
NET_FORCE_LIMIT = 0.3
"""eV/Å: 300 Ry keeps CP2K's net force on Ga4 near 0.1 (600 Ry, the default, costs 3x)."""


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_a_cp2k_round_with_its_labelling_submitted_to_slurm(tmp_path):
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
        "--labeller", "cp2k", "--cutoff", "300", "--rounds", "1", "--md-steps", "20",
        "--save-interval", "10", "--temperature-K", "300", "--select", "2",
        "--spread-threshold", "0", "--epochs", "1",
        "--net-force-threshold", str(NET_FORCE_LIMIT), "--device", "cpu",
        "--model-config", config, "--out", out,
    ]  # fmt: skip
    text = invoke(*command, "--stop-after", "select")
    assert "picked 2 of 2 frames" in text
    status = invoke("learn", "status", out)
    assert "label, package, train, evaluate, report" in status

    before = os.environ.get("SLURM_CONF")
    with single_node_cluster(tmp_path / "slurm") as cluster:
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            job = tmp_path / "job"
            invoke(
                "hpc", "submit", "--dir", job, "--partition", "debug", "--cpus-per-task", "2",
                "--mem", "2G", "--time", "30", "--", "learn", "step", out, "label",
            )  # fmt: skip
            statuses = []

            def finished() -> bool:
                statuses[:] = job_status(job)
                return all(s.finished for s in statuses)

            wait_for(finished, "the labelling job finished")
        finally:
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before
    log = statuses[0].log.read_text() if statuses[0].log else ""
    assert [s.state for s in statuses] == ["done"], log

    labelled = read(out / "round-01" / "labelled.extxyz", ":")
    assert len(labelled) == 2
    for atoms in labelled:
        assert atoms.info["calc_name"] == "cp2k" and atoms.info["calc_cutoff_Ry"] == 300
        assert atoms.info["scf_steps"] > 1
        assert np.linalg.norm(atoms.arrays["REF_forces"].sum(axis=0)) < NET_FORCE_LIMIT
        assert atoms.info["learn_round"] == 1 and "max_spread_eV_per_A" in atoms.info

    stamp = (out / "round-01" / "labelled.extxyz").stat().st_mtime_ns
    text = invoke(*command)  # the same command continues the round after the SLURM step
    assert "continuing the learning loop" in text
    record = json.loads((out / "round-01" / "round.json").read_text())
    assert record["record"]["dataset"] == {"train": 1, "valid": 1}
    assert record["record"]["labelled_now"] == 2  # by the SLURM job, and not again here:
    assert (out / "round-01" / "labelled.extxyz").stat().st_mtime_ns == stamp
    assert "learn-loop-" + MEMBERS[0] in config.read_text()
    assert "complete" in invoke("learn", "status", out)
