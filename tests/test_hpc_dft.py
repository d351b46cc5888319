"""The DFT codes through ASE: real CP2K and pw.x single points, VASP inputs without VASP, and
the one-line refusals of bad set-ups.

The CP2K tests run the defaults (the settings scalms labels with) on rattled Ga4 and Ga3Pt
tetrahedra: the forces sum to about zero, the Pt atom's force in the spin-polarised Ga3Pt is the
derivative of the stored energy (central finite differences), and an SCF stopped after one step
is refused, not stored.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Icosahedron

from scalms.errors import ScalmsError
from scalms.hpc.dft import DFT_CODES, DFTSettings, is_dft_code, make_dft_labeller
from scalms.hpc.dft._common import boxed, threads
from scalms.hpc.dft.cp2k import DEFAULT_VACUUM_A as CP2K_VACUUM_A
from scalms.hpc.labels import SCFNotConverged, labelled_frame
from tests.conftest import require_programs

NET_FORCE_TOL_EV_PER_A = 0.05
FD_TOL_EV_PER_A = 0.02
FD_STEP_A = 0.01
GA_PAW = Path(
    "/usr/share/doc/quantum-espresso/examples/PP/simple_transport/scf/"
    "Ga.pbe-dn-kjpaw_psl.0.2.upf.gz"
)


def tetrahedron(formula: str, edge_A: float, rattle_A: float, seed: int) -> Atoms:
    """A rattled tetrahedral cluster (seeded), without periodicity, in a cubic box that holds
    it with half an Å more than CP2K's default vacuum: the labeller computes it in that box, and
    finite-difference steps keep it there (the cluster is never moved relative to the grid)."""
    corners = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * edge_A / np.sqrt(8)
    atoms = Atoms(formula, positions=corners)
    atoms.rattle(stdev=rattle_A, seed=seed)
    atoms.center(vacuum=CP2K_VACUUM_A + 0.5)
    atoms.set_cell([atoms.cell.lengths().max()] * 3)
    atoms.center()
    atoms.pbc = False
    return atoms


def displaced(atoms: Atoms, index: int, axis: int, step_A: float) -> Atoms:
    moved = atoms.copy()
    moved.positions[index, axis] += step_A
    return moved


def finite_difference_force(labeller, atoms: Atoms, index: int, axis: int) -> float:
    """-dE/dx of one component by central differences of the labeller's stored energies."""
    plus = labeller.label(displaced(atoms, index, axis, FD_STEP_A)).energy_eV
    minus = labeller.label(displaced(atoms, index, axis, -FD_STEP_A)).energy_eV
    return -(plus - minus) / (2 * FD_STEP_A)


def dft_settings(tmp_path: Path, **changes) -> DFTSettings:
    return DFTSettings(threads=2, workdir=tmp_path / "scratch", **changes)


# -- the registry


def test_dft_codes_are_known_and_anything_else_is_refused_in_one_line(tmp_path):
    assert DFT_CODES == ("cp2k", "vasp", "espresso")
    assert is_dft_code("CP2K") and is_dft_code("espresso") and not is_dft_code("7net-0")
    for code in DFT_CODES:
        labeller = make_dft_labeller(code, dft_settings(tmp_path))
        assert labeller.name == code
        described = labeller.describe()
        assert described["code"] == code
        assert all(isinstance(v, str | int | float | bool) for v in described.values())
        assert any(key.startswith("cutoff_") for key in described)  # the unit is in the key
    with pytest.raises(ScalmsError, match="unknown DFT code 'gaussian'") as err:
        make_dft_labeller("gaussian", dft_settings(tmp_path))
    assert "\n" not in str(err.value)


# -- shared pieces


def test_a_cluster_without_room_is_boxed_and_one_with_room_keeps_its_cell():
    bare = Atoms("Ga2", positions=[[0, 0, 0], [2.5, 0, 0]])
    box = boxed(bare, 5.0)
    assert np.allclose(box.cell.lengths(), [13.0, 10.0, 10.0])  # extent + 2 x 5 Å, whole Å
    assert np.allclose(box.positions.mean(axis=0), box.cell.lengths() / 2)
    assert np.allclose(box.get_distance(0, 1), 2.5)
    assert np.allclose(boxed(bare, 5.0, cubic=True).cell.lengths(), 13.0)
    roomy = tetrahedron("Ga4", 2.75, 0.1, 1)
    kept = boxed(roomy, CP2K_VACUUM_A, cubic=True)
    assert np.allclose(kept.positions, roomy.positions) and np.allclose(kept.cell, roomy.cell)
    huge = roomy.copy()
    huge.set_cell([40.0] * 3)
    huge.center()
    assert boxed(huge, 5.0).cell.lengths().max() < 15.0  # no 40 Å of vacuum to pay for
    bulk = Atoms("Ga", cell=[3.0] * 3, pbc=True)
    assert np.allclose(boxed(bulk, 5.0).cell.lengths(), 3.0)


def test_threads_come_from_the_settings_then_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "7")
    assert threads(None) == 7
    assert threads(3) == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert threads(None) >= 1


def test_the_labellers_calculator_gives_its_labels_to_a_bfgs():
    from ase.calculators.emt import EMT
    from ase.optimize import BFGS

    from scalms.hpc.dft._common import LabellerCalculator
    from scalms.hpc.labels import CalculatorLabeller

    labeller = CalculatorLabeller("emt", EMT())
    atoms = Icosahedron("Pt", noshells=2)
    atoms.rattle(stdev=0.1, seed=3)
    expected = labeller.label(atoms)
    atoms.calc = LabellerCalculator(labeller)
    assert atoms.get_potential_energy() == pytest.approx(expected.energy_eV)
    assert np.allclose(atoms.get_forces(), expected.forces_eV_per_A)
    BFGS(atoms, logfile=None).run(fmax=0.5, steps=20)
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.5


# -- CP2K: bad set-ups, one line each


def test_cp2k_missing_program_is_one_line(tmp_path):
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path, command="cp2k-not-installed"))
    with pytest.raises(ScalmsError, match="'cp2k-not-installed' is not on PATH") as err:
        labeller.check(tetrahedron("Ga4", 2.75, 0.1, 1))
    assert "\n" not in str(err.value)


def test_cp2k_missing_basis_file_is_one_line(tmp_path, monkeypatch):
    require_programs("cp2k.psmp")
    monkeypatch.setenv("CP2K_DATA_DIR", str(tmp_path / "no-data"))
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path))
    with pytest.raises(ScalmsError, match=r"CP2K basis file .*BASIS_MOLOPT does not exist"):
        labeller.check(tetrahedron("Ga4", 2.75, 0.1, 1))


def test_cp2k_element_without_the_basis_is_named_with_the_file(tmp_path):
    require_programs("cp2k.psmp")
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path))
    atoms = tetrahedron("Ga3La", 2.75, 0.0, 1)
    with pytest.raises(ScalmsError) as err:
        labeller.check(atoms)
    assert str(err.value) == (
        "CP2K has no DZVP-MOLOPT-SR-GTH basis for La in /usr/share/cp2k/BASIS_MOLOPT"
    )


def test_cp2k_restricted_run_of_an_odd_electron_count_is_refused_before_running(tmp_path):
    require_programs("cp2k.psmp")
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path, spin=False))
    with pytest.raises(ScalmsError, match="odd number of electrons"):
        labeller.check(tetrahedron("Ga3Pt", 2.65, 0.1, 5))


def test_cp2k_abort_is_one_line_with_cp2ks_reason(tmp_path):
    require_programs("cp2k.psmp")
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path, functional="XPBE"))
    with pytest.raises(ScalmsError) as err:
        labeller.label(tetrahedron("Ga4", 2.75, 0.1, 1))
    assert str(err.value) == "CP2K failed: unknown subsection XPBE of section XC_FUNCTIONAL"


# -- CP2K: real single points with the defaults


@pytest.mark.slow
def test_cp2k_ga4_forces_sum_to_zero_and_a_labelled_frame_is_not_recomputed(tmp_path):
    require_programs("cp2k.psmp")
    atoms = tetrahedron("Ga4", 2.75, 0.1, 1)
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path))
    try:
        label = labeller.label(atoms)
        forces = label.forces_eV_per_A
        assert forces.shape == (4, 3)
        assert np.linalg.norm(forces.sum(axis=0)) < NET_FORCE_TOL_EV_PER_A
        assert label.scf_steps is not None and label.scf_steps > 1
        again = labeller.label(atoms.copy())  # the same frame: ASE keeps it, CP2K is not rerun
        assert again.energy_eV == label.energy_eV and np.array_equal(again.forces_eV_per_A, forces)
    finally:
        labeller.close()
    frame = labelled_frame(atoms, label, labeller.name, labeller.describe(), "rattle")
    assert frame.info["REF_energy"] == label.energy_eV
    assert frame.info["calc_code"] == "cp2k" and frame.info["scf_steps"] == label.scf_steps
    assert np.allclose(frame.positions, atoms.positions)  # the stored frame is the one given


@pytest.mark.slow
def test_cp2k_ga3pt_doublet_forces_are_energy_derivatives_and_sum_to_zero(tmp_path):
    require_programs("cp2k.psmp")
    atoms = tetrahedron("Ga3Pt", 2.65, 0.1, 5)  # 3 x 13 + 18 = 57 electrons: UKS doublet
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path))
    try:
        label = labeller.label(atoms)
        forces = label.forces_eV_per_A
        assert label.extra["spin_polarised"] is True
        assert np.linalg.norm(forces.sum(axis=0)) < NET_FORCE_TOL_EV_PER_A
        # the Pt atom's largest component: one finite difference (two more CP2K runs) checks the
        # spin-polarised forces against the energy; Ga4 above is not differenced as well, which
        # keeps the CP2K tests to about 4 minutes on 2 cores
        axis = int(np.abs(forces[3]).argmax())
        expected = finite_difference_force(labeller, atoms, 3, axis)
        assert forces[3, axis] == pytest.approx(expected, abs=FD_TOL_EV_PER_A)
    finally:
        labeller.close()


@pytest.mark.slow
def test_cp2k_scf_stopped_after_one_step_is_refused(tmp_path):
    require_programs("cp2k.psmp")
    labeller = make_dft_labeller("cp2k", dft_settings(tmp_path, max_scf=1))
    try:
        with pytest.raises(SCFNotConverged, match="SCF not converged in 1 steps") as err:
            labeller.label(tetrahedron("Ga4", 2.75, 0.1, 1))
    finally:
        labeller.close()
    assert "\n" not in str(err.value)


# -- VASP: inputs without VASP


def fake_potcars(root: Path, names: list[str]) -> Path:
    """A VASP_PP_PATH tree whose POTCARs hold only the lines ASE reads (TITEL, ZVAL)."""
    valence = {"Ga": 3.0, "Ga_d": 13.0, "Pt": 10.0}
    for name in names:
        folder = root / "potpaw_PBE" / name
        folder.mkdir(parents=True)
        (folder / "POTCAR").write_text(
            f"  PAW_PBE {name} 06Sep2000\n"
            f"   TITEL  = PAW_PBE {name} 06Sep2000\n"
            f"   POMASS =   69.723; ZVAL   =   {valence[name]:.3f}    mass and valenz\n"
            f" End of Dataset\n"
        )
    return root


def ga12pt() -> Atoms:
    atoms = Icosahedron("Ga", noshells=2, latticeconstant=3.9)
    atoms.symbols[5] = "Pt"
    atoms.pbc = False
    return atoms


def test_vasp_inputs_of_a_ga12pt_cluster_line_by_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VASP_PP_PATH", str(fake_potcars(tmp_path / "pp", ["Ga_d", "Pt"])))
    atoms = ga12pt()
    labeller = make_dft_labeller("vasp", dft_settings(tmp_path, pseudopotentials={"Ga": "Ga_d"}))
    folder = labeller.write_inputs(atoms, tmp_path / "inputs")
    incar = dict(
        (key.strip(), value.strip())
        for key, value in (
            line.split("=", 1) for line in (folder / "INCAR").read_text().split("\n") if "=" in line
        )
    )
    assert float(incar.pop("ENCUT")) == 400.0
    assert float(incar.pop("EDIFF")) == 1e-7
    assert incar.pop("ISPIN") == "2"
    assert incar.pop("GGA") == "PE"  # PBE
    assert incar.pop("NELM") == "100"
    assert incar.pop("LCHARG") == ".FALSE."
    assert incar == {}  # nothing else: VASP's defaults as in the thesis
    kpoints = (folder / "KPOINTS").read_text().splitlines()
    assert [line.strip() for line in kpoints[1:5]] == ["0", "Gamma", "1 1 1", "0 0 0"]
    poscar = (folder / "POSCAR").read_text().splitlines()
    assert poscar[5].split() == ["Ga", "Pt"] and poscar[6].split() == ["12", "1"]
    lengths = [float(poscar[i].split()[i - 2]) for i in (2, 3, 4)]
    extent = np.ptp(atoms.positions, axis=0)
    assert np.allclose(lengths, np.ceil(extent + 2 * 5.0))  # the cluster in a vacuum box
    positions = np.array([[float(x) for x in line.split()[:3]] for line in poscar[8:21]])
    assert np.allclose(positions[-1] - positions[0], atoms.positions[5] - atoms.positions[0])
    potcar = (folder / "POTCAR").read_text()
    titles = [line.split("=")[1].strip() for line in potcar.splitlines() if "TITEL" in line]
    assert titles == ["PAW_PBE Ga_d 06Sep2000", "PAW_PBE Pt 06Sep2000"]  # POSCAR's order


def test_vasp_missing_potcar_names_the_path_looked_at(tmp_path, monkeypatch):
    root = fake_potcars(tmp_path / "pp", ["Ga"])
    monkeypatch.setenv("VASP_PP_PATH", str(root))
    labeller = make_dft_labeller("vasp", dft_settings(tmp_path))
    with pytest.raises(ScalmsError) as err:
        labeller.write_inputs(ga12pt(), tmp_path / "inputs")
    assert str(err.value) == (f"VASP: no POTCAR for Pt: {root}/potpaw_PBE/Pt/POTCAR does not exist")
    assert not (tmp_path / "inputs").exists()  # nothing half-written
    monkeypatch.delenv("VASP_PP_PATH")
    with pytest.raises(ScalmsError, match="VASP_PP_PATH is not set"):
        labeller.check(ga12pt())


def test_vasp_missing_program_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VASP_PP_PATH", str(fake_potcars(tmp_path / "pp", ["Ga", "Pt"])))
    monkeypatch.delenv("ASE_VASP_COMMAND", raising=False)
    monkeypatch.delenv("VASP_COMMAND", raising=False)
    labeller = make_dft_labeller("vasp", dft_settings(tmp_path))
    with pytest.raises(ScalmsError, match="VASP: the program 'vasp_std' is not on PATH") as err:
        labeller.label(ga12pt())
    assert "\n" not in str(err.value)


# -- Quantum ESPRESSO


def ga_paw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (
        gzip.open(GA_PAW, "rb") as packed,
        open(folder / "Ga.pbe-dn-kjpaw_psl.0.2.UPF", "wb") as out,
    ):
        shutil.copyfileobj(packed, out)
    return folder


def test_espresso_missing_upf_is_one_line(tmp_path):
    (tmp_path / "pseudo").mkdir()
    labeller = make_dft_labeller(
        "espresso", dft_settings(tmp_path, pseudopotential=str(tmp_path / "pseudo"))
    )
    with pytest.raises(ScalmsError) as err:
        labeller.check(Atoms("Ga2", positions=[[0, 0, 0], [2.7, 0, 0]]))
    assert str(err.value) == (
        f"Quantum ESPRESSO: no UPF file for Ga in {tmp_path / 'pseudo'}: name one with "
        f"--pseudopotential Ga=FILE.UPF"
    )
    named = make_dft_labeller(
        "espresso",
        dft_settings(
            tmp_path, pseudopotential=str(tmp_path / "pseudo"), pseudopotentials={"Ga": "Ga.UPF"}
        ),
    )
    with pytest.raises(ScalmsError, match=r"the pseudopotential for Ga, .*Ga\.UPF, does not exist"):
        named.check(Atoms("Ga"))


def ga2() -> Atoms:
    atoms = Atoms("Ga2", positions=[[0, 0, 0], [2.6, 0.1, 0.0]], pbc=False)
    atoms.center(vacuum=3.0)
    return atoms


@pytest.mark.slow
def test_espresso_ga2_single_point_with_the_ga_paw(tmp_path):
    require_programs("pw.x")
    pseudo = ga_paw(tmp_path / "pseudo")
    settings = dft_settings(tmp_path, pseudopotential=str(pseudo), cutoff=25.0, vacuum_A=3.0)
    labeller = make_dft_labeller("espresso", settings)
    label = labeller.label(ga2())
    forces = label.forces_eV_per_A
    assert label.scf_steps is not None and label.scf_steps > 1
    assert np.all(np.isfinite(forces)) and label.energy_eV < 0
    atoms = ga2()
    bond = atoms.positions[1] - atoms.positions[0]
    # a dimer: equal and opposite forces along the bond
    assert np.allclose(forces[0], -forces[1], atol=0.05)
    assert np.linalg.norm(np.cross(forces[0], bond / np.linalg.norm(bond))) < 0.05
    assert label.extra["spin_polarised"] is False  # 26 electrons


@pytest.mark.slow
def test_espresso_scf_stopped_after_one_step_is_refused(tmp_path):
    require_programs("pw.x")
    pseudo = ga_paw(tmp_path / "pseudo")
    settings = dft_settings(
        tmp_path, pseudopotential=str(pseudo), cutoff=25.0, vacuum_A=3.0, max_scf=1
    )
    labeller = make_dft_labeller("espresso", settings)
    with pytest.raises(SCFNotConverged, match="SCF not converged in 1 steps"):
        labeller.label(ga2())
