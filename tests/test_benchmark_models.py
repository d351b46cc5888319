"""Real models against real DFT: SevenNet-0 and the tiny MACE model against the CP2K frames of
tests/data (made by tests/data/make_dft_frames.py), through their own environments; and the
README's cost command. Each child costs 20-40 s of start-up, so one run serves several checks."""

import numpy as np
import pytest
from ase.io import read
from typer.testing import CliRunner

from scalms.benchmark.cost import read_rows
from scalms.cli import app
from scalms.io.benchmark_accuracy import model_attrs, read_frames
from scalms.testing import write_model_config

from .conftest import REPO, needs_env
from .test_benchmark_accuracy import _csv

runner = CliRunner()
DFT_FRAMES = REPO / "tests" / "data" / "cp2k_GaPt_clusters.extxyz"
MACE_FILE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"


def test_shipped_cp2k_frames_are_converged_and_nearly_balanced():
    frames = read(DFT_FRAMES, ":")
    assert len(frames) >= 4
    assert {a.get_chemical_formula() for a in frames} >= {"Ga4", "Ga3Pt", "Ga2Pt2"}
    for atoms in frames:
        assert atoms.info["dft_code"].startswith("CP2K") and atoms.info["cutoff_Ry"] >= 800
        assert atoms.info["scf_steps"] > 0  # the script refuses frames whose SCF did not converge
        net = np.linalg.norm(atoms.get_forces().sum(axis=0))
        assert net == pytest.approx(atoms.info["net_force_eV_per_A"], abs=1e-6)  # 8 decimals
        assert net < 0.1  # eV/Å: 800 Ry; CP2K's default 400 Ry leaves about 2 eV/Å on Ga4


@pytest.mark.sevennet
@pytest.mark.mace
@needs_env("sevennet")
@needs_env("mace")
def test_readme_accuracy_command_then_a_mace_model_added_and_a_committee(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    workdir = tmp_path / "benchmark_accuracy"
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", "tests/data/cp2k_GaPt_clusters.extxyz", "--model", "7net-0",
         "--working-dir", str(workdir), "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sevennet = {r["model"]: r for r in _csv(workdir / "metrics.csv")}["7net-0"]
    # SevenNet-0 (bulk-trained, VASP PBE) on 4-atom clusters against CP2K PBE: it follows the
    # forces, damped (measured 0.39 eV/Å MAE, R² 0.72; docs/benchmarking_models.md).
    assert 0.1 < float(sevennet["force_mae_eV_per_A"]) < 0.8
    assert float(sevennet["force_r2"]) > 0.5
    assert float(sevennet["energy_aligned_mae_eV_per_atom"]) < 0.2
    assert float(sevennet["energy_mae_eV_per_atom"]) > 1000  # CP2K's total energies: offsets
    assert (workdir / "plots" / "7net-0" / "force_parity_pymatviz.html").is_file()
    assert all(r["flagged"] == "False" for r in _csv(workdir / "reference_net_force.csv"))
    first_run = model_attrs(workdir / "benchmark.h5")["7net-0"]["run_id"]

    config = write_model_config(
        tmp_path,
        f"SevenNet:\n  models:\n    7net-0: {{}}\nMACE:\n  models:\n    mace-tiny-GaPt:\n"
        f"      model_path: {MACE_FILE}\n      options: {{default_dtype: float64}}\n",
    )
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", "tests/data/cp2k_GaPt_clusters.extxyz", "-m", "mace-tiny-GaPt",
         "-c", str(config), "-w", str(workdir), "--device", "cpu", "--no-plot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "flat table made again" in result.output
    result = runner.invoke(
        app,
        ["benchmark", "analyze", str(workdir), "--committee", "7net-0",
         "--committee", "mace-tiny-GaPt"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "flat table made again" not in result.output  # no model changed since
    assert (workdir / "plots" / "committee_spread_vs_error.png").is_file()
    attrs = model_attrs(workdir / "benchmark.h5")
    assert attrs["7net-0"]["run_id"] == first_run  # the first model was not run again
    assert attrs["mace-tiny-GaPt"]["backend"] == "torchsim"
    rows = {r["model"]: r for r in _csv(workdir / "metrics.csv")}
    assert set(rows) == {"7net-0", "mace-tiny-GaPt", "committee(7net-0,mace-tiny-GaPt)"}
    # The tiny MACE learnt SevenNet-0 on 13-55 atom clusters: it is worse on Ga4 than its teacher.
    assert float(rows["mace-tiny-GaPt"]["force_mae_eV_per_A"]) > float(
        sevennet["force_mae_eV_per_A"]
    )
    committee = _csv(workdir / "committee_frames.csv")
    assert len(committee) == len(read(DFT_FRAMES, ":"))
    assert all(float(r["force_spread_max_eV_per_A"]) > 0 for r in committee)
    # Every rebuilt frame carries the reference and the model's own numbers.
    (frame, *_) = read_frames(workdir / "benchmark.h5", "mace-tiny-GaPt", "cp2k_GaPt_clusters")
    (dft, *_) = read(DFT_FRAMES, ":")
    np.testing.assert_array_equal(frame.arrays["REF_forces"], dft.get_forces())
    assert not np.allclose(frame.get_forces(), dft.get_forces(), atol=1e-3)


@pytest.mark.slow  # the cost path is tested with Lennard-Jones; this is the README's command
@pytest.mark.sevennet
@needs_env("sevennet")
def test_readme_cost_command_times_sevennet_md_by_size(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    workdir = tmp_path / "benchmark_cost"
    result = runner.invoke(
        app,
        ["benchmark", "cost", "examples/Ga54Pt_icosahedron.xyz",
         "examples/Ga144Pt3_icosahedron.xyz", "--model", "7net-0", "--steps", "5",
         "--cpu-threads", "1", "--device", "cpu", "--working-dir", str(workdir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_rows(workdir / "cost_summary.csv")
    assert [r["n_atoms"] for r in rows] == [55, 147]
    assert all(r["backend"] == "torchsim" and r["status"] == "ok" for r in rows)
    assert rows[1]["s_per_step"] > rows[0]["s_per_step"]  # more atoms, more time
    assert all(r["rss_MB_max"] > 500 for r in rows)  # torch and SevenNet in the child
    assert (workdir / "plots" / "cost_resources.png").is_file()


@pytest.mark.mace
@needs_env("mace")
def test_tiny_mace_errors_on_its_test_set_are_those_measured_when_it_was_trained(tmp_path):
    """ML_training/README.md gives 12.3 meV/atom and 96 meV/Å for the tiny MACE against the
    SevenNet-0 labels of GaPt_test.extxyz, computed by its training script with MACE's own
    code; the benchmark, reading REF_energy/REF_forces, finds the same numbers."""
    config = write_model_config(
        tmp_path,
        f"MACE:\n  models:\n    mace-tiny-GaPt:\n      model_path: {MACE_FILE}\n"
        "      options: {default_dtype: float64}\n",
    )
    workdir = tmp_path / "w"
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(REPO / "ML_training" / "data" / "GaPt_test.extxyz"),
         "-c", str(config), "-w", str(workdir), "--device", "cpu", "--no-plot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = _csv(workdir / "metrics.csv")
    assert 1000 * float(row["energy_mae_eV_per_atom"]) == pytest.approx(12.3, abs=1.0)
    assert 1000 * float(row["force_mae_eV_per_A"]) == pytest.approx(96, abs=3)
    assert row["n_frames"] == "5"
