"""The embedded default, SevenNet-0, through its own environment and the real child protocol."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.io.static_results import is_complete, read_results, read_run_attrs
from scalms.testing import ENERGY_PER_ATOM_TOL_EV, FORCE_TOL_EV_PER_A, write_model_config

from .conftest import REPO, needs_env

pytestmark = [pytest.mark.sevennet, needs_env("sevennet")]
runner = CliRunner()
LIST_IN_A_FRESH_PARENT = """
import json, sys
from typer.testing import CliRunner
from scalms.cli import app
result = CliRunner().invoke(app, ["models", "list", "-c", sys.argv[1]])
heavy = {"torch", "torch_sim", "sevenn", "e3nn", "mace"} & set(sys.modules)
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "heavy": sorted(heavy)}))
"""


def test_readme_static_command_gives_matching_torchsim_and_ase_results(tmp_path, monkeypatch):
    """The README's command: Ga-Pt clusters in a 40 Å vacuum box (pbc False), both backends."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "static.h5"
    result = runner.invoke(
        app,
        [
            "static",
            "examples/Ga54Pt_icosahedron.xyz",
            "examples/Ga144Pt3_icosahedron.xyz",
            "examples/Ga32_periodic.extxyz",
            "--model",
            "7net-0",
            "--backend",
            "both",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "TorchSim against ASE" in result.output
    assert is_complete(out)
    results = read_results(out)
    for label in ("Ga54Pt_icosahedron", "Ga144Pt3_icosahedron"):
        (a,) = results["7net-0@torchsim"][label]
        (b,) = results["7net-0@ase"][label]
        assert not a.pbc.any() and a.cell.lengths() == pytest.approx([40.0] * 3)
        de = abs(a.get_potential_energy() - b.get_potential_energy()) / len(a)
        assert de < ENERGY_PER_ATOM_TOL_EV
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=FORCE_TOL_EV_PER_A)
        # A sane Ga cluster: bound, a few eV per atom, forces sum to ~zero (translation).
        assert -4.0 < a.get_potential_energy() / len(a) < -2.0
        np.testing.assert_allclose(a.get_forces().sum(axis=0), 0.0, atol=1e-3)
    # The periodic cell: stress from both backends, same sign and units (eV/Å³, Voigt).
    (a,) = results["7net-0@torchsim"]["Ga32_periodic"]
    (b,) = results["7net-0@ase"]["Ga32_periodic"]
    assert a.pbc.all()
    np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-5)
    assert abs(a.get_stress()[:3]).max() > 1e-3  # a strained cell: the check has teeth
    versions = read_run_attrs(out)["7net-0@torchsim"]["versions"]
    assert versions["sevenn"] and versions["torch-sim-atomistic"] == "0.6.2"


def test_models_list_reports_what_can_run_without_loading_models(tmp_path):
    config = write_model_config(
        tmp_path,
        f"""
SevenNet:
  models:
    7net-0: {{}}
    7net-custom:
      model_path: {tmp_path / "missing.pth"}
builtin:
  models:
    lj: {{}}
""",
    )
    # In a fresh parent, so that what it imported is its own: the children probe the models.
    completed = subprocess.run(
        [sys.executable, "-c", LIST_IN_A_FRESH_PARENT, str(config)],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.splitlines()[-1])
    assert result["exit_code"] == 0, result["output"]
    assert result["heavy"] == []  # the parent loaded no model package, no torch
    rows = {line.split()[1]: line for line in result["output"].splitlines() if "│" in line[:3]}

    def ready(row: str) -> str:
        return row.rstrip(" │").rsplit("│", 1)[-1].strip()

    assert ready(rows["7net-0"]) == "yes" and "SevenNet_0" in rows["7net-0"]
    assert ready(rows["7net-custom"]) == "no" and "not found" in rows["7net-custom"]
    assert ready(rows["lj"]) == "yes"


def test_unknown_element_for_sevennet_is_refused_with_its_name(tmp_path):
    from ase import Atoms

    from scalms.config import ModelEntry
    from scalms.evaluate import run_static

    structure = tmp_path / "Rn2.xyz"
    Atoms("Rn2", positions=[[0, 0, 0], [0, 0, 4.0]]).write(structure)
    entry = ModelEntry(name="7net-0", family="sevennet")
    (outcome,) = run_static([structure], [entry], tmp_path / "out.h5", device="cpu").outcomes
    assert not outcome.ok
    assert "does not know element(s)" in outcome.reason and "Rn" in outcome.reason


def test_env_create_is_a_no_op_when_the_environment_is_current():
    result = runner.invoke(app, ["env", "create", "sevennet"])
    assert result.exit_code == 0, result.output
    assert "sevennet: up to date" in result.output


def test_env_list_reports_each_family_and_the_builtin_interpreter():
    result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "│" in line[:3]}
    assert set(rows) == {"sevennet", "mace", "orb", "mattersim", "nequip", "builtin"}
    assert " ok " in rows["sevennet"] and "sevenn 0.13.0" in rows["sevennet"]
    assert " ok " in rows["builtin"]


def test_sevennet_md_through_torchsim_and_ase_agrees_on_energies_and_temperature(tmp_path):
    """A short real MD run of SevenNet-0 on each backend, through its environment's child."""
    from scalms.io.results import read_run

    runs = {}
    for backend in ("torchsim", "ase"):
        workdir = tmp_path / backend
        result = runner.invoke(
            app,
            [
                "dynamics", "run", str(REPO / "examples" / "Ga54Pt_icosahedron.xyz"),
                "-w", str(workdir), "-c", str(REPO / "model_config.yaml"), "-m", "7net-0",
                "--backend", backend, "--device", "cpu", "--n-steps", "40",
                "--time-step-fs", "2", "--save-interval", "5", "--temperature-K", "450",
                "--trace", "Pt", "--net-force", "--no-plot",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[backend] = read_run(workdir / "MD_dynamics_results.h5", "7net-0", "Ga54Pt_icosahedron")
    ts, ase = runs["torchsim"], runs["ase"]
    assert ts.attrs["backend"] == "torchsim" and ase.attrs["backend"] == "ase"
    assert list(ts.step) == list(ase.step) == list(range(0, 41, 5))
    # Same structure, same model: the first frames' energies agree as in static evaluation.
    assert abs(ts.potential_energy[0] - ase.potential_energy[0]) / 55 < ENERGY_PER_ATOM_TOL_EV
    # Both thermostats start from 450 K; the runs differ in their random draws only.
    for run in (ts, ase):
        assert 250 < run.temperature_K[0] < 700
        assert 100 < run.temperature_K.mean() < 700
    assert abs(ts.temperature_K.mean() - ase.temperature_K.mean()) < 0.4 * ase.temperature_K.mean()
    per_atom = [run.potential_energy.mean() / 55 for run in (ts, ase)]
    assert abs(per_atom[0] - per_atom[1]) < 0.03  # eV/atom
    # SevenNet's forces are the gradient of one energy: they sum to zero up to float32 rounding.
    from scalms.io.analysis_files import load_record

    for backend in ("torchsim", "ase"):
        path = tmp_path / backend / "analysis" / "7net-0" / "Ga54Pt_icosahedron" / "net_force.json"
        assert load_record(path).magnitude_eV_per_A.max() < 1e-3
    total = ts.potential_energy + ts.kinetic_energy
    assert np.ptp(total) / 55 < 0.05  # no blow-up: a thermostat adds or removes little in 80 fs
