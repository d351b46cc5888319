"""`scalms geometry` end to end: build, alloy, melt with a model in its child, resume, place."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from tests.conftest import frames_on_disk, needs_env, wait_for

runner = CliRunner()
SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
# Lennard-Jones (epsilon 0.1 eV) melts a 50-atom cluster well below 650 K; 4 fs steps suit
# gallium's mass. 50 + 375 + 625 steps: the last stage (2.5 ps) is long enough to measure the
# atoms' diffusion.
LJ_MELT = [
    "--target-K", "650", "--hot-K", "1200", "--equilibrate-ps", "0.2", "--hot-ps", "1.5",
    "--final-ps", "2.5", "--time-step-fs", "4", "--save-interval", "10", "--device", "cpu",
]  # fmt: skip


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _min_distance(atoms) -> float:
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def _rows(out):
    import csv

    with open(out / "particles.csv") as handle:
        return {row["label"]: row for row in csv.DictReader(handle)}


def test_building_without_melting_needs_no_model_and_reports_true_counts(tmp_path):
    out = tmp_path / "np"
    result = _invoke(
        "geometry", "nanoparticle", "--size", 40, "--size", 150, "--no-melt", "-o", out,
        "--solute", "Pt", "--solute", "Bi", "--count", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert len(rows) == 4
    for label, row in rows.items():
        atoms = read(out / row["final"])
        assert len(atoms) == int(row["n_atoms"])
        solute = row["solute"]
        assert (np.array(atoms.get_chemical_symbols()) == solute).sum() == 2
        assert label == f"Ga{len(atoms) - 2}{solute}2"
        assert abs(len(atoms) - int(row["target_atoms"])) / int(row["target_atoms"]) < 0.2
        assert _min_distance(atoms) > 2.4
        assert not atoms.pbc.any()
    manifest = json.loads((out / "geometry.json").read_text())
    assert manifest["protocol"] is None and "SevenNet-0" in manifest["request"]["surface_energies"]
    again = _invoke("geometry", "nanoparticle", "--size", 40, "--no-melt", "-o", out)
    assert again.exit_code == 2 and "geometry resume" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "40"], "melting needs a model"),
        (["--size", "40", "--no-melt", "--element", "Bi"], "no bulk crystal for Bi"),
        (["--size", "40", "--no-melt", "--solute", "Pt"], "either --fraction or --count"),
        (["--size", "40", "--no-melt", "--solute", "Pt", "--count", "1", "--order", "x"],
         "unknown order"),
        (["--size", "40", "--model", "lj", "--hot-K", "3000"], "boiling point"),
        (["--size", "40", "--no-melt", "--surface-energies", "missing.json"], "not found"),
        (["--size", "0", "--no-melt"], "at least 1 atom"),
    ],
)  # fmt: skip
def test_bad_requests_stop_with_one_message(tmp_path, builtin_config, args, message):
    result = _invoke("geometry", "nanoparticle", *args, "-o", tmp_path / "x", "-c", builtin_config)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_resume_of_a_folder_that_is_no_geometry_run_says_so(tmp_path):
    result = _invoke("geometry", "resume", tmp_path)
    assert result.exit_code == 2 and "not a geometry run" in result.output


def _melt_command(out, config):
    return [
        *SCALMS, "geometry", "nanoparticle", "--size", "50", "--model", "lj", "-c", str(config),
        "--solute", "Pt", "--count", "1", "--order", "after", "-o", str(out), *LJ_MELT,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def lj_melt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("melt")
    config = folder / "model_config.yaml"
    config.write_text("builtin:\n  models:\n    lj: {}\n")
    result = subprocess.run(_melt_command(folder / "np", config), capture_output=True, text=True)
    return folder / "np", config, result


@pytest.mark.slow
def test_a_short_hot_stage_leaves_a_liquid_particle(lj_melt):
    out, _, result = lj_melt
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(out)
    host = next(r for r in rows.values() if not r["solute"])
    assert host["liquid"] == "True" and float(host["D_cm2_per_s"]) > 5e-6
    assert float(host["lindemann"]) > 0.08  # 0.14 here; a solid scores 0.02-0.05
    assert float(host["q6_final"]) < 0.5 * float(host["q6_crystal"])
    assert abs(float(host["final_T_K"]) - 650) < 120
    melted = read(out / host["final"])
    assert _min_distance(melted) > 1.9  # compressed dimers relaxed, nothing fused
    # The PDF of the melt lost the crystal's sharp shells beyond the first.
    from scalms.analysis import pair_distribution
    from scalms.io.results import read_run

    trajectory = read_run(out / "melt" / "MD_dynamics_results.h5", "lj", host["label"])
    crystal = pair_distribution(trajectory.positions[:1], r_max_A=8, n_bins=80).g
    liquid = pair_distribution(trajectory.positions[-50:], r_max_A=8, n_bins=80).g
    assert liquid[40:].max() < 0.5 * crystal[40:].max()  # beyond 4 Å
    assert (out / "report.html").exists() and (out / f"analysis/pdf_{host['label']}.png").exists()
    assert (out / "melt" / "report.html").exists()


@pytest.mark.slow
def test_the_melt_report_shows_the_version_start_and_thermostat_it_ran_with(lj_melt):
    out, _, result = lj_melt
    assert result.returncode == 0, result.stdout + result.stderr
    from scalms import __version__

    page = (out / "melt" / "report.html").read_text()
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td></tr>", page))
    assert cells["scalms"] == __version__
    assert datetime.fromisoformat(cells["started"]) <= datetime.now(UTC)
    # No --thermostat-time-fs given: the run used 100 time steps of 4 fs.
    assert float(cells["thermostat_time_fs"]) == pytest.approx(400.0)


@pytest.mark.slow
def test_solutes_added_after_melting_sit_on_the_melted_positions(lj_melt):
    out, _, _ = lj_melt
    rows = _rows(out)
    host = read(out / next(r for r in rows.values() if not r["solute"])["final"])
    alloy_row = next(r for r in rows.values() if r["solute"] == "Pt")
    alloy = read(out / alloy_row["final"])
    assert alloy_row["solute_added"] == "after melting"
    np.testing.assert_allclose(alloy.positions, host.positions, atol=1e-8)
    assert (alloy.numbers == 78).sum() == 1 and (alloy.numbers == 31).sum() == len(host) - 1
    # Only the host was melted: one MD run.
    melt = json.loads((out / "melt" / "dynamics.json").read_text())
    assert [s["label"] for s in melt["structures"]] == [host.get_chemical_formula()]


@pytest.mark.slow
def test_a_melt_killed_with_sigkill_resumes_to_the_same_particle(lj_melt, tmp_path):
    whole, config, _ = lj_melt
    cut = tmp_path / "np"
    process = subprocess.Popen(
        _melt_command(cut, config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    label = next(r for r in _rows(whole).values() if not r["solute"])["label"]
    trajectory = cut / "melt" / "trajectories" / "lj" / f"{label}.h5md"
    # The kill must come in the hot stage, after frames are on disk: wait for the file to read
    # back 45 frames, however long a loaded machine takes to get there.
    try:
        wait_for(
            lambda: frames_on_disk(trajectory) >= 45 or process.poll() is not None,
            "the melt's 45th frame on disk",
        )
        assert process.poll() is None, f"the melt ended early (exit code {process.poll()})"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (cut / f"{label}.extxyz").exists()
    resumed = subprocess.run(
        [*SCALMS, "geometry", "resume", str(cut)], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a, b = read(whole / f"{label}.extxyz"), read(cut / f"{label}.extxyz")
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    assert _rows(cut).keys() == _rows(whole).keys()


@pytest.mark.slow
def test_a_bulk_cell_melts_under_npt_and_changes_its_volume(tmp_path, builtin_config):
    out = tmp_path / "bulk"
    result = _invoke(
        "geometry", "bulk", "--repeat", 2, 1, 2, "--model", "lj", "-c", builtin_config, "-o", out,
        "--target-K", 300, "--hot-K", 900, "--equilibrate-ps", 0.1, "--hot-ps", 0.3,
        "--final-ps", 0.2, "--time-step-fs", 4, "--save-interval", 5, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = _rows(out).values()
    assert row["label"] == "Ga32_bulk"
    crystal = read(out / "crystals" / "Ga32_bulk.extxyz")
    final = read(out / row["final"])
    assert final.pbc.all() and len(final) == 32
    assert abs(final.get_volume() / crystal.get_volume() - 1) > 0.01  # the barostat moved it


def test_alloy_writes_the_exact_count_into_every_frame(tmp_path):
    from scalms.testing import ga_cluster

    frames = [ga_cluster(4, n_solute=0, rattle_A=0.05, seed=s) for s in range(3)]
    write(tmp_path / "traj.extxyz", frames)
    result = _invoke(
        "geometry", "alloy", tmp_path / "traj.extxyz", "--element", "Au", "--fraction", 0.05,
        "--seed", 4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = read(tmp_path / "traj_Ga140Au7.xyz", index=":")
    assert len(written) == 3
    for original, alloyed in zip(frames, written, strict=True):
        assert (alloyed.numbers == 79).sum() == 7
        np.testing.assert_allclose(alloyed.positions, original.positions, atol=1e-8)
    np.testing.assert_array_equal(written[0].numbers, written[2].numbers)
    missing = _invoke("geometry", "alloy", tmp_path / "nope.xyz", "--element", "Au", "--count", 1)
    assert missing.exit_code == 2 and "not found" in missing.output


def test_adsorbates_on_a_trajectory_frame_report_what_was_placed(tmp_path):
    from scalms.testing import ga_cluster

    write(tmp_path / "np.extxyz", [ga_cluster(4, seed=s, rattle_A=0.05) for s in range(4)])
    out = tmp_path / "np_propane.xyz"
    result = _invoke(
        "geometry", "adsorbates", tmp_path / "np.extxyz", "--molecule", "propane", "--count", 6,
        "--seed", 2, "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "frame" in result.output and "propane: placed 6 of 6" in result.output
    atoms = read(out)
    assert len(atoms) == 147 + 6 * 11 and atoms.get_chemical_formula() == "C18H48Ga146Pt"
    full = _invoke(
        "geometry", "adsorbates", tmp_path / "np.extxyz", "--count", 300, "--max-attempts", 1,
        "--max-directions", 10, "-o", tmp_path / "full.xyz",
    )  # fmt: skip
    assert full.exit_code == 0 and "saturated" in full.output
    bad = _invoke("geometry", "adsorbates", tmp_path / "np.extxyz", "--molecule", "kryptonite")
    assert bad.exit_code == 2 and "unknown molecule" in bad.output


@pytest.mark.sevennet
@needs_env("sevennet")
def test_sevennet_runs_the_readme_melt_protocol_through_its_environment(tmp_path):
    """The README demo's melt with the embedded default model, its stages cut to 60 steps: the
    model's own environment, TorchSim, every stage's frames, the solute, the report. Whether a
    particle melts is the protocol's physics, checked with Lennard-Jones above (the model is
    not the point there, and 124 s of SevenNet-0 MD would be); SevenNet-0's melt of Ga50 and
    Ga140 is recorded in docs/geometry.md."""
    config = tmp_path / "model_config.yaml"
    config.write_text("SevenNet:\n  models:\n    7net-0: {}\n")
    out = tmp_path / "np"
    result = subprocess.run(
        [
            *SCALMS, "geometry", "nanoparticle", "--size", "50", "--solute", "Pt", "--count", "1",
            "--model", "7net-0", "-c", str(config), "-o", str(out), "--device", "cpu",
            "--time-step-fs", "2", "--save-interval", "5", "--equilibrate-ps", "0.02",
            "--hot-K", "1000", "--hot-ps", "0.06", "--final-ps", "0.04",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = _rows(out).values()  # the solute goes in before melting, as in the demo
    assert (row["label"], row["solute_added"]) == ("Ga49Pt", "before")
    assert row["liquid"] == "" and row["D_cm2_per_s"] == ""  # 0.04 ps: too short to judge
    particle = read(out / row["final"])
    assert (particle.numbers == 78).sum() == 1 and len(particle) == int(row["n_atoms"]) == 50
    assert _min_distance(particle) > 2.1  # nothing fused at 1000 K
    from scalms.io.results import read_run

    trajectory = read_run(out / "melt" / "MD_dynamics_results.h5", "7net-0", row["label"])
    assert trajectory.attrs["backend"] == "torchsim"
    assert list(trajectory.step) == list(range(0, 61, 5))  # 10 + 30 + 20 steps
    assert np.isfinite(trajectory.potential_energy).all()
    assert -4.0 < trajectory.potential_energy[0] / len(particle) < -2.0  # eV/atom: bound Ga
    assert (out / "report.html").exists()


def test_the_readme_geometry_commands_make_the_files_they_name(tmp_path):
    """README's commands, built without the GPU-length melt: the names it shows exist."""
    out = tmp_path / "particles"
    built = _invoke(
        "geometry", "nanoparticle", "--size", 342, "--size", 653, "--size", 1568,
        "--solute", "Pt", "--solute", "Bi", "--fraction", 0.01, "--no-melt", "--out", out,
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    assert sorted(int(r["n_atoms"]) for r in _rows(out).values()) == [
        330,
        330,
        670,
        670,
        1550,
        1550,
    ]
    assert (out / "Ga1534Pt16.extxyz").exists() and (out / "Ga327Bi3.extxyz").exists()
    alloyed = _invoke(
        "geometry", "alloy", out / "Ga1534Pt16.extxyz", "--element", "Au", "--count", 16
    )
    assert alloyed.exit_code == 0, alloyed.output
    assert read(out / "Ga1534Pt16_Ga1518Au16Pt16.xyz").get_chemical_formula() == "Au16Ga1518Pt16"
    placed = _invoke(
        "geometry", "adsorbates", out / "Ga1534Pt16.extxyz", "--molecule", "propane",
        "--count", 200,
    )  # fmt: skip
    assert placed.exit_code == 0, placed.output
    assert "propane: placed 200 of 200" in placed.output
    assert len(read(out / "Ga1534Pt16_propane200.xyz")) == 1550 + 200 * 11
