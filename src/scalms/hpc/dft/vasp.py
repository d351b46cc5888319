"""VASP labels through ASE's VASP calculator (``ase.calculators.vasp.Vasp``).

Defaults are the thesis's (section 3.3.1): PBE, ENCUT 400 eV, EDIFF 1e-7 eV, ISPIN 2, the
Γ point alone (KPOINTS ``Gamma 1 1 1``) for clusters, which are put in a vacuum box (VASP is
periodic only). A periodic frame gets the Γ point too: scalms labels large liquid or rattled
supercells, where that is the usual choice. Smearing is VASP's own default unless an electronic
temperature is given (then Fermi-Dirac, ISMEAR -1, SIGMA = k_B T).

POTCARs come from ``$VASP_PP_PATH/<set>/<element><suffix>/POTCAR`` as ASE looks them up: the
set is ``potpaw_PBE`` (or the settings' ``pseudopotential``), the suffix ASE's "minimal" choice
(``Ga_d`` for Ga) unless the settings name one per element (``{"Ga": "Ga_d"}``).

The stored energy is VASP's free energy (TOTEN), the one its forces are the derivatives of; the
σ→0 extrapolation is kept in ``info`` as ``energy_sigma0_eV``. A frame whose electronic SCF
stopped at NELM without reaching EDIFF (read from OUTCAR by ASE's ``read_convergence``) is
refused.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import kB

from scalms.errors import ScalmsError
from scalms.hpc.dft._common import (
    LabellerCalculator,
    box_text,
    boxed,
    elements_in_order,
    is_cluster,
    require_program,
    scratch_dir,
    threads,
)
from scalms.hpc.dft.settings import DFTSettings
from scalms.hpc.labels import InfoValue, Label, SCFNotConverged

DEFAULT_ENCUT_EV = 400.0
DEFAULT_VACUUM_A = 5.0
DEFAULT_EDIFF_EV = 1e-7
DEFAULT_COMMAND = "vasp_std"
PP_SETS = {"PBE": "potpaw_PBE", "LDA": "potpaw"}
"""ASE's aliases for the POTCAR sets (``pp``): the folder each names under VASP_PP_PATH."""


class VaspLabeller:
    """Energies and forces from VASP; inputs can be written without VASP (:meth:`write_inputs`)."""

    name = "vasp"

    def __init__(self, settings: DFTSettings):
        self.settings = settings
        self.vacuum_A = float(
            settings.vacuum_A if settings.vacuum_A is not None else DEFAULT_VACUUM_A
        )
        self.encut_eV = float(settings.cutoff or DEFAULT_ENCUT_EV)
        self.ediff_eV = float(settings.scf_convergence or DEFAULT_EDIFF_EV)
        self.functional = settings.functional.upper()
        self.pp = settings.pseudopotential or "PBE"
        self.command = (
            settings.command
            or os.environ.get("ASE_VASP_COMMAND")
            or os.environ.get("VASP_COMMAND")
            or DEFAULT_COMMAND
        )
        self._dir: Path | None = None
        self._key: tuple | None = None
        self._runs = 0
        self._run_dir: Path | None = None

    def describe(self) -> dict[str, InfoValue]:
        described: dict[str, InfoValue] = {
            "code": "vasp",
            "functional": self.functional,
            "cutoff_eV": self.encut_eV,
            "scf_convergence_eV": self.ediff_eV,
            "max_scf": self.settings.max_scf,
            "spin": "ISPIN 1" if self.settings.spin is False else "ISPIN 2",
            "kpoints": "Gamma 1 1 1",
            "potcar_set": self._pp_folder(),
            "vacuum_A": self.vacuum_A,
        }
        described["smearing"] = (
            f"Fermi-Dirac {self.settings.smearing_K:g} K"
            if self.settings.smearing_K
            else "VASP default"
        )
        setups = self._setups()
        if setups:
            described["potcars"] = ",".join(f"{el}{sfx}" for el, sfx in sorted(setups.items()))
        return described

    # -- POTCARs
    def _pp_folder(self) -> str:
        return PP_SETS.get(self.pp.upper(), self.pp)

    def _setups(self) -> dict[str, str]:
        """Element -> POTCAR suffix from the settings (``Ga_d`` or ``_d`` both mean ``_d``)."""
        setups = {}
        for element, variant in self.settings.pseudopotentials.items():
            setups[element] = variant[len(element) :] if variant.startswith(element) else variant
        return setups

    def _potcar(self, element: str) -> Path:
        from ase.calculators.vasp.setups import get_default_setups

        suffix = self._setups().get(element)
        if suffix is None:
            suffix = get_default_setups()["minimal"].get(element, "")
        return (
            Path(os.environ["VASP_PP_PATH"]) / self._pp_folder() / f"{element}{suffix}" / "POTCAR"
        )

    def check_potcars(self, atoms: Atoms) -> None:
        """VASP_PP_PATH set and a POTCAR for every element: one line naming the path looked at."""
        root = os.environ.get("VASP_PP_PATH")
        if not root:
            raise ScalmsError(
                "VASP: VASP_PP_PATH is not set: point it at the folder holding potpaw_PBE/"
            )
        if not Path(root).is_dir():
            raise ScalmsError(f"VASP: VASP_PP_PATH {root} is not a folder")
        for element in elements_in_order(atoms):
            potcar = self._potcar(element)
            if not (potcar.is_file() or potcar.with_suffix(".Z").is_file()):
                raise ScalmsError(f"VASP: no POTCAR for {element}: {potcar} does not exist")

    def check(self, atoms: Atoms) -> None:
        self.check_potcars(atoms)
        require_program(self.command, "VASP", "--dft-command (or ASE_VASP_COMMAND)")

    # -- inputs
    def _parameters(self) -> dict:
        parameters = {
            "xc": self.functional,
            "pp": self.pp,
            "encut": self.encut_eV,
            "ediff": self.ediff_eV,
            "ispin": 1 if self.settings.spin is False else 2,
            "nelm": self.settings.max_scf,
            "kpts": (1, 1, 1),
            "gamma": True,
            "lcharg": False,
        }
        if self.settings.smearing_K:
            parameters.update(ismear=-1, sigma=kB * self.settings.smearing_K)
        setups = self._setups()
        if setups:
            parameters["setups"] = setups
        return parameters

    def _calculator(self, directory: Path):
        from ase.calculators.vasp import Vasp

        command = f"env OMP_NUM_THREADS={threads(self.settings.threads)} {self.command}"
        return Vasp(directory=str(directory), command=command, **self._parameters())

    def write_inputs(self, atoms: Atoms, directory: Path | str) -> Path:
        """Write INCAR, POSCAR, KPOINTS and POTCAR for ``atoms`` into ``directory`` (made if
        missing) without running VASP; a cluster is boxed as :meth:`label` boxes it."""
        self.check_potcars(atoms)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        work = self._prepared(atoms)
        self._calculator(directory).write_input(work)
        return directory

    def _prepared(self, atoms: Atoms) -> Atoms:
        work = boxed(atoms, self.vacuum_A)
        if is_cluster(work):
            work.pbc = True  # VASP's box is periodic; the vacuum isolates the cluster
        return work

    # -- one frame
    def label(self, atoms: Atoms) -> Label:
        from ase.calculators.calculator import CalculationFailed

        self.check(atoms)
        work = self._prepared(atoms)
        key = (tuple(work.numbers), tuple(np.round(work.cell.array, 8).ravel()))
        if self._dir is None:
            self._dir = scratch_dir(self.settings.workdir, "vasp")
        if key != self._key or self._run_dir is None:
            # One folder per composition and box: VASP restarts from its WAVECAR within it.
            self._runs += 1
            self._run_dir = self._dir / f"run{self._runs:04d}"
            self._key = key
        calc = self._calculator(self._run_dir)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        work.calc = calc
        started = time.perf_counter()
        try:
            free_energy = float(work.get_potential_energy(force_consistent=True))
            forces = np.array(work.get_forces(), dtype=float)
        except CalculationFailed as err:
            raise ScalmsError(f"VASP failed in {self._run_dir}: {err}") from err
        wall = time.perf_counter() - started
        outcar = self._run_dir / "OUTCAR"
        steps = calc.get_number_of_iterations()
        if calc.converged is False or (steps is not None and steps >= self.settings.max_scf):
            self._key = None  # the next frame starts in a fresh folder
            raise SCFNotConverged(
                f"VASP: electronic SCF not converged to EDIFF {self.ediff_eV:g} eV in "
                f"{self.settings.max_scf} steps for {atoms.get_chemical_formula()} (see "
                f"{outcar}); frame refused"
            )
        extra: dict[str, InfoValue] = {
            "energy_sigma0_eV": float(work.get_potential_energy()),
            "dft_box_A": box_text(work),
        }
        return Label(free_energy, forces, wall, scf_steps=steps, extra=extra)

    def calculator(self):
        return LabellerCalculator(self)

    def close(self) -> None:
        pass  # VASP runs one process per frame: nothing stays running
