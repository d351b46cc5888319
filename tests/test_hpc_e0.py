"""``scalms hpc e0``: isolated-atom energies in the JSON and the IsolatedAtom frames MACE reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import managed_python
from scalms.hpc.e0 import isolated_atom
from scalms.hpc.reference_file import read_reference
from scalms.models import FAMILIES
from tests.conftest import needs_env, require_programs
from tests.test_bad_input import refused

runner = CliRunner()
SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]


def e0(tmp_path, config, *args: str):
    result = runner.invoke(
        app,
        ["hpc", "e0", *args, "-c", str(config), "--device", "cpu", "-o", str(tmp_path / "E0.json")],
    )
    assert result.exit_code == 0, result.output
    return result


def test_an_isolated_atom_sits_alone_in_the_middle_of_a_non_periodic_box_with_its_spin():
    atom = isolated_atom("Ga", 15.0)
    assert len(atom) == 1 and not atom.pbc.any()
    np.testing.assert_allclose(atom.cell.lengths(), [15.0] * 3)
    np.testing.assert_allclose(atom.positions[0], [7.5] * 3)
    assert atom.get_initial_magnetic_moments()[0] == 1.0  # Ga: one unpaired p electron
    assert isolated_atom("Pt").get_initial_magnetic_moments()[0] == 2.0  # 5d9 6s1


def test_e0_with_emt_writes_the_json_mace_reads_and_isolated_atom_frames(tmp_path, builtin_config):
    e0(tmp_path, builtin_config, "--element", "Pt", "--calculator", "emt")
    table = json.loads((tmp_path / "E0.json").read_text())
    # MACE reads a .json E0 file with json.load and int(key) for the atomic numbers.
    assert {int(k): v for k, v in table.items()} == {78: pytest.approx(table["78"])}
    atom = isolated_atom("Pt")
    atom.calc = EMT()
    assert table["78"] == pytest.approx(atom.get_potential_energy()) and table["78"] != 0
    [frame] = read_reference(tmp_path / "E0.xyz")
    assert frame.info["config_type"] == "IsolatedAtom" and len(frame) == 1
    assert frame.info["REF_energy"] == pytest.approx(table["78"])
    np.testing.assert_array_equal(frame.arrays["REF_forces"], np.zeros((1, 3)))
    assert frame.info["calc_name"] == "emt" and frame.info["e0_box_A"] == 15.0


@pytest.mark.slow
def test_a_rerun_keeps_the_elements_done_and_refuses_another_calculator(tmp_path, builtin_config):
    e0(tmp_path, builtin_config, "-e", "Pt", "--calculator", "emt")
    first = read_reference(tmp_path / "E0.xyz")[0].info["wall_time_s"]
    result = e0(tmp_path, builtin_config, "-e", "Pt", "-e", "Ag", "--calculator", "emt")
    assert "Pt: kept from E0.xyz" in result.output
    frames = read_reference(tmp_path / "E0.xyz")
    assert [f.get_chemical_symbols()[0] for f in frames] == ["Ag", "Pt"]  # by atomic number
    assert frames[1].info["wall_time_s"] == first  # not recomputed
    assert list(json.loads((tmp_path / "E0.json").read_text())) == ["47", "78"]
    refused(
        tmp_path, "hpc", "e0", "-e", "Pt", "--calculator", "lj", "-c", builtin_config,
        "-o", tmp_path / "E0.json",
        message="holds Ag made with calc_name='emt', not 'lj': choose another --out",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "Xx", "--calculator", "emt"], "unknown element(s): Xx"),
        (["-e", "Ga", "--calculator", "nosuch"], "unknown calculator 'nosuch'"),
        (["-e", "Ga", "--calculator", "emt"], "model 'emt' does not know element(s)"),
        (["-e", "Pt", "--calculator", "emt", "--box-A", "0"], "0.0 is not in the range x>0"),
        (["-e", "Pt", "--calculator", "emt", "-o", "e0.txt"], "file ending in .json"),
        (
            ["-e", "Ga", "--calculator", "cp2k", "--dft-command", "no-cp2k-here"],
            "the program 'no-cp2k-here' is not on PATH",
        ),
        (["-e", "Ga", "--calculator", "lj", "-c", "missing.yaml"], "no model config missing.yaml"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(
    tmp_path, builtin_config, args, message
):
    config = builtin_config.rename(tmp_path / "model_config.yaml")
    out = [] if "-o" in args else ["-o", tmp_path / "E0.json"]
    config_args = [] if "-c" in args else ["-c", config]
    refused(tmp_path, "hpc", "e0", *args, *out, *config_args, "--device", "cpu", message=message)


def test_an_element_cp2k_has_no_basis_for_is_refused_before_it_runs(tmp_path):
    require_programs("cp2k.psmp")
    refused(
        tmp_path, "hpc", "e0", "-e", "Og", "--calculator", "cp2k", "-o", tmp_path / "E0.json",
        message="CP2K has no DZVP-MOLOPT-SR-GTH basis for Og",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.mace
@needs_env("mace")
def test_mace_reads_the_e0_json_and_the_isolated_atom_frames(tmp_path, builtin_config):
    e0(tmp_path, builtin_config, "-e", "Pt", "-e", "Au", "--calculator", "emt")
    script = f"""
import json
from mace.tools.scripts_utils import get_atomic_energies
from mace.data.utils import KeySpecification, load_from_xyz
from_json = get_atomic_energies("{tmp_path / "E0.json"}", None, None)
keys = KeySpecification(info_keys={{"energy": "REF_energy", "stress": "REF_stress",
                                   "head": "head"}}, arrays_keys={{"forces": "REF_forces"}})
from_frames, _ = load_from_xyz("{tmp_path / "E0.xyz"}", keys, extract_atomic_energies=True)
print(json.dumps({{"json": from_json, "frames": from_frames}}))
"""
    python = managed_python(FAMILIES["mace"])
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout.strip().splitlines()[-1])
    table = json.loads((tmp_path / "E0.json").read_text())
    expected = {k: pytest.approx(v) for k, v in table.items()}
    assert read["json"] == expected and read["frames"] == expected


@pytest.mark.slow
def test_e0_of_gallium_with_cp2k_is_spin_polarised_and_stored(tmp_path):
    require_programs("cp2k.psmp")
    result = subprocess.run(
        [*SCALMS, "hpc", "e0", "-e", "Ga", "--calculator", "cp2k", "--threads", "2",
         "-o", str(tmp_path / "E0.json"), "--scratch", "scratch",
         "--cutoff", "300", "--box-A", "10"],  # small: the pipeline, not a converged E0
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads((tmp_path / "E0.json").read_text())
    [frame] = read_reference(tmp_path / "E0.xyz")
    assert list(table) == ["31"] and table["31"] == pytest.approx(frame.info["REF_energy"])
    assert frame.info["calc_name"] == "cp2k" and frame.info["config_type"] == "IsolatedAtom"
    assert frame.info["calc_spin"] == "UKS" and frame.info["spin_polarised"]
    assert np.isfinite(table["31"]) and table["31"] < 0
