"""`scalms dynamics`, `scalms analyze` and `scalms report` end to end, children included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.io.results import list_runs, read_run
from scalms.io.trajectory import read_trajectory, trajectory_info
from tests.conftest import EXAMPLES, frames_on_disk, wait_for

runner = CliRunner()
SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
CLUSTER = EXAMPLES / "Ga54Pt_icosahedron.xyz"
RATTLED = EXAMPLES / "Ga54Pt_rattled.extxyz"


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """LJ (TorchSim) on two nanoparticles with every analysis, and EMT, which lacks gallium."""
    folder = tmp_path_factory.mktemp("md")
    config = folder / "model_config.yaml"
    config.write_text("builtin:\n  models:\n    lj: {}\n    emt: {}\n")
    workdir = folder / "run"
    result = _invoke(
        "dynamics", "run", CLUSTER, RATTLED, "-w", workdir, "-c", config,
        "--n-steps", 20, "--time-step-fs", 2, "--save-interval", 5, "--device", "cpu",
        "--pdf", "--partial-pdf", "78-31", "--trace", "Pt", "--surface-element", "Ga",
        "--net-force", "--diffusion", "Pt", "--msd-max-lag-fs", 30,
    )  # fmt: skip
    return workdir, result


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_a_model_that_fails_leaves_the_others_finished_and_exits_1(finished_run):
    workdir, result = finished_run
    assert result.exit_code == 1, result.output
    assert "failed emt" in result.output and "does not know element" in result.output
    runs = {(r.model, r.structure): r for r in list_runs(workdir / "MD_dynamics_results.h5")}
    assert set(runs) == {("lj", "Ga54Pt_icosahedron"), ("lj", "Ga54Pt_rattled")}
    assert all(r.complete and r.n_frames == 5 for r in runs.values())


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_the_results_file_reads_back_every_frame_with_its_run_parameters(finished_run):
    workdir, _ = finished_run
    trajectory = read_run(workdir / "MD_dynamics_results.h5", "lj", "Ga54Pt_icosahedron")
    assert list(trajectory.step) == [0, 5, 10, 15, 20]
    assert trajectory.attrs["backend"] == "torchsim"
    assert trajectory.attrs["temperature_K"] == 450.0
    assert trajectory.forces.shape == (5, 55, 3)
    # Frame 0 is the structure as given.
    from ase.io import read

    np.testing.assert_allclose(trajectory.positions[0], read(CLUSTER).positions, atol=1e-10)


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_analyses_write_records_figures_and_the_report(finished_run):
    workdir, _ = finished_run
    index = json.loads((workdir / "analysis" / "index.json").read_text())
    captions = " | ".join(f["caption"] for f in index["figures"])
    for expected in ("Pair distribution", "Pt trace", "mean squared", "Net force", "summary"):
        assert expected in captions
    for figure in index["figures"]:
        assert (workdir / "analysis" / figure["png"]).read_bytes()[:4] == b"\x89PNG"
    rows = (workdir / "analysis" / "diffusion.csv").read_text().splitlines()
    assert rows[0].startswith("model,structure") and len(rows) == 3
    report = (workdir / "report.html").read_text()
    assert "Diffusion coefficients" in report and report.count("<img") == len(index["figures"])
    from scalms.io.analysis_files import load_record

    for run in ("Ga54Pt_icosahedron", "Ga54Pt_rattled"):
        record = load_record(workdir / "analysis" / "lj" / run / "pdf_Pt-Ga.json")
        assert record.label == "Pt-Ga" and record.g.shape == (200,)
        # A pair potential's forces cancel pair by pair: the net force is zero to rounding.
        force = load_record(workdir / "analysis" / "lj" / run / "net_force.json")
        assert force.magnitude_eV_per_A.shape == (5,)
        assert force.magnitude_eV_per_A.max() < 1e-10


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_analyze_reruns_an_analysis_on_existing_results_without_md(finished_run, tmp_path):
    workdir, _ = finished_run
    result = _invoke(
        "analyze", "diffusion", workdir / "MD_dynamics_results.h5", "--element", "Pt",
        "--method", "direct", "--msd-max-lag-fs", 20, "--out", tmp_path, "--no-plot",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lj" / "Ga54Pt_rattled" / "msd_Pt.json").exists()
    assert "direct" in (tmp_path / "diffusion.csv").read_text()
    result = _invoke("report", workdir)
    assert result.exit_code == 0 and "report.html" in result.output


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_status_and_resume_of_a_failed_model_name_what_is_missing(finished_run):
    workdir, _ = finished_run
    result = _invoke("dynamics", "status", workdir)
    assert result.exit_code == 0
    assert "0/5" in result.output and "incomplete" in result.output
    # A resume runs only what is missing: EMT fails again, for the same reason, and the finished
    # LJ runs are left as they were (not one frame rewritten).
    results = workdir / "MD_dynamics_results.h5"
    before = {(r.model, r.structure): r.n_frames for r in list_runs(results)}
    lj = workdir / "trajectories" / "lj" / "Ga54Pt_icosahedron.h5md"
    stamp = lj.stat().st_mtime_ns
    result = _invoke("dynamics", "resume", workdir)
    assert result.exit_code == 1, result.output
    assert "failed emt" in result.output and "does not know element" in result.output
    assert {(r.model, r.structure): r.n_frames for r in list_runs(results)} == before
    assert lj.stat().st_mtime_ns == stamp


@pytest.mark.slow  # shares the module fixture: two models through children, ~30-60 s
def test_a_used_working_dir_is_not_overwritten_by_accident(finished_run):
    workdir, _ = finished_run
    result = _invoke("dynamics", "run", CLUSTER, "-w", workdir, "-m", "lj", "--n-steps", 5)
    assert result.exit_code == 2
    assert "scalms dynamics resume" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partial-pdf", "Pt-Xx"], "Xx"),
        (["--ensemble", "nvt-magic"], "unknown ensemble"),
        (["--remove-trajectories"], "repack"),
        (["--backend", "both"], "unknown backend"),
    ],
)
def test_bad_options_stop_before_any_md(tmp_path, builtin_config, args, message):
    result = _invoke(
        "dynamics", "run", CLUSTER, "-w", tmp_path / "w", "-c", builtin_config, "-m", "lj",
        "--n-steps", 5, *args,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w" / "trajectories").exists()


def test_resume_of_a_folder_that_is_no_run_says_so(tmp_path):
    result = _invoke("dynamics", "resume", tmp_path)
    assert result.exit_code == 2 and "not an MD working directory" in result.output


def _md_command(workdir, config):
    return [
        *SCALMS, "dynamics", "run", str(CLUSTER), "-w", str(workdir), "-c", str(config),
        "-m", "lj", "--backend", "torchsim", "--device", "cpu", "--n-steps", "120",
        "--time-step-fs", "2", "--save-interval", "2", "--checkpoint-every", "5", "--seed", "3",
        "--no-plot",
    ]  # fmt: skip


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_frames(tmp_path, builtin_config):
    whole = subprocess.run(
        _md_command(tmp_path / "whole", builtin_config), capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stdout + whole.stderr
    process = subprocess.Popen(
        _md_command(tmp_path / "cut", builtin_config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    trajectory = tmp_path / "cut" / "trajectories" / "lj" / "Ga54Pt_icosahedron.h5md"
    try:
        wait_for(lambda: frames_on_disk(trajectory) >= 23, "23 frames of the run on disk")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # parent and child, no chance to clean up
        process.wait()
    info = trajectory_info(trajectory)
    assert not info.complete and info.n_frames < 61
    resumed = subprocess.run(
        [*SCALMS, "dynamics", "resume", str(tmp_path / "cut")], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a = read_trajectory(tmp_path / "whole" / "trajectories" / "lj" / "Ga54Pt_icosahedron.h5md")
    b = read_trajectory(trajectory)
    assert b.complete and list(b.step) == list(a.step) == list(range(0, 121, 2))
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.velocities, a.velocities, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.potential_energy, a.potential_energy, rtol=0, atol=1e-10)
    with h5py.File(tmp_path / "cut" / "MD_dynamics_results.h5", "r") as handle:
        assert handle["lj"]["Ga54Pt_icosahedron"]["particles/all/position/value"].shape[0] == 61
    # A second resume finds nothing to do and starts no child.
    again = subprocess.run(
        [*SCALMS, "dynamics", "resume", str(tmp_path / "cut")], capture_output=True, text=True
    )
    assert again.returncode == 0 and "61/61" in again.stdout
