"""Quantum ESPRESSO labels through ASE's ``Espresso`` calculator and ``EspressoProfile`` (pw.x).

Runs where pseudopotentials are given: a folder of UPF files (the settings' ``pseudopotential``,
else ``$ESPRESSO_PSEUDO``) and, per element, a file name (the settings' ``pseudopotentials``);
an element without one takes the folder's only UPF file whose name starts with the element.

Defaults: PBE, wave-function cutoff 50 Ry (charge density 8x for PAW/ultrasoft files, 4x for
norm-conserving ones), Fermi-Dirac smearing at 1000 K, spin-polarised (nspin 2, a free
moment started at 0.2) when the electron count is odd, ``conv_thr`` 1e-8 Ry, at most 100 SCF
steps, the Γ point (QE's Γ-only code path) for clusters, which are put in a vacuum box, and for
periodic frames (large supercells). Forces are always printed (``tprnfor``).

QE's total energy with smearing is the free energy (it includes -TS), the one its forces belong
to; ASE reads it as the energy. A run whose output says "convergence NOT achieved" is refused.
"""

from __future__ import annotations

import gzip
import os
import re
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Rydberg, kB

from scalms.errors import ScalmsError
from scalms.hpc.dft._common import (
    LabellerCalculator,
    box_text,
    boxed,
    elements_in_order,
    is_odd,
    n_electrons,
    require_program,
    scratch_dir,
    threads,
)
from scalms.hpc.dft.settings import DFTSettings
from scalms.hpc.labels import InfoValue, Label, SCFNotConverged

DEFAULT_ECUTWFC_RY = 50.0
DEFAULT_VACUUM_A = 5.0
DEFAULT_CONV_THR_RY = 1e-8
DEFAULT_SMEARING_K = 1000.0
MIXING_BETA = 0.3
STARTING_MAGNETIZATION = 0.2
DEFAULT_COMMAND = "pw.x"
NOT_CONVERGED = re.compile(r"convergence NOT achieved")
CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
ERROR = re.compile(r"Error in routine\s+(.*)\n\s*(.*)")


def _header(path: Path) -> str:
    """The start of a UPF file (gzipped or not), where the valence and type are."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as handle:
        return handle.read(20000)


def upf_valence(path: Path) -> float:
    """Valence electrons of a UPF pseudopotential (``z_valence``, v2; ``Z valence``, v1)."""
    text = _header(path)
    match = re.search(r'z_valence\s*=\s*"\s*([-+0-9.EeDd]+)', text) or re.search(
        r"([-+0-9.EeDd]+)\s+Z valence", text
    )
    if match is None:
        raise ScalmsError(f"Quantum ESPRESSO: no valence charge found in {path}")
    return float(match.group(1).replace("D", "E").replace("d", "e"))


def upf_is_soft(path: Path) -> bool:
    """PAW or ultrasoft: those need a denser charge-density cutoff than norm-conserving files."""
    text = _header(path)
    return bool(re.search(r'pseudo_type\s*=\s*"\s*(PAW|US|USPP)', text)) or bool(
        re.search(r"^\s*(US|PAW)\s", text, re.MULTILINE)
    )


class EspressoLabeller:
    """Energies and forces from Quantum ESPRESSO's pw.x, one run per frame."""

    name = "espresso"

    def __init__(self, settings: DFTSettings):
        self.settings = settings
        self.vacuum_A = float(
            settings.vacuum_A if settings.vacuum_A is not None else DEFAULT_VACUUM_A
        )
        self.ecutwfc_Ry = float(settings.cutoff or DEFAULT_ECUTWFC_RY)
        self.conv_thr_Ry = float(settings.scf_convergence or DEFAULT_CONV_THR_RY)
        self.smearing_K = float(settings.smearing_K or DEFAULT_SMEARING_K)
        self.functional = settings.functional.upper()
        folder = settings.pseudopotential or os.environ.get("ESPRESSO_PSEUDO")
        self.pseudo_dir = Path(folder) if folder else None
        self.command = settings.command or DEFAULT_COMMAND
        self._dir: Path | None = None
        self._runs = 0

    def describe(self) -> dict[str, InfoValue]:
        described: dict[str, InfoValue] = {
            "code": "espresso",
            "functional": self.functional,
            "cutoff_Ry": self.ecutwfc_Ry,
            "scf_convergence_Ry": self.conv_thr_Ry,
            "max_scf": self.settings.max_scf,
            "spin": {None: "nspin 2 if odd electrons", True: "nspin 2", False: "nspin 1"}[
                self.settings.spin
            ],
            "smearing": f"Fermi-Dirac {self.smearing_K:g} K",
            "kpoints": "gamma",
            "vacuum_A": self.vacuum_A,
        }
        if self.settings.pseudopotentials:
            described["pseudopotentials"] = ",".join(
                f"{el}:{name}" for el, name in sorted(self.settings.pseudopotentials.items())
            )
        return described

    # -- pseudopotentials
    def _pseudopotential(self, element: str) -> Path:
        if self.pseudo_dir is None:
            raise ScalmsError(
                "Quantum ESPRESSO: no pseudopotential folder: give --pseudopotential-dir "
                "(or set ESPRESSO_PSEUDO)"
            )
        if not self.pseudo_dir.is_dir():
            raise ScalmsError(
                f"Quantum ESPRESSO: pseudopotential folder {self.pseudo_dir} is missing"
            )
        named = self.settings.pseudopotentials.get(element)
        if named is not None:
            path = self.pseudo_dir / named
            if not path.is_file():
                raise ScalmsError(
                    f"Quantum ESPRESSO: the pseudopotential for {element}, {path}, does not exist"
                )
            return path
        candidates = sorted(
            path
            for path in self.pseudo_dir.iterdir()
            if path.suffix.lower() == ".upf"
            and re.match(rf"{element}([._\-]|$)", path.stem, re.IGNORECASE)
        )
        if len(candidates) == 1:
            return candidates[0]
        which = "no UPF file" if not candidates else f"{len(candidates)} UPF files"
        raise ScalmsError(
            f"Quantum ESPRESSO: {which} for {element} in {self.pseudo_dir}: name one with "
            f"--pseudopotential {element}=FILE.UPF"
        )

    def check(self, atoms: Atoms) -> None:
        """Pseudopotential folder and a UPF file for every element, then pw.x on PATH."""
        for element in elements_in_order(atoms):
            self._pseudopotential(element)
        self._spin(atoms)
        require_program(self.command, "Quantum ESPRESSO", "--dft-command")

    def _spin(self, atoms: Atoms) -> bool:
        if self.settings.spin is not None:
            return bool(self.settings.spin)
        valence = {el: upf_valence(self._pseudopotential(el)) for el in elements_in_order(atoms)}
        return is_odd(n_electrons(atoms, valence))

    # -- the input
    def _parameters(self, atoms: Atoms, outdir: Path) -> dict:
        elements = elements_in_order(atoms)
        files = {el: self._pseudopotential(el) for el in elements}
        soft = any(upf_is_soft(path) for path in files.values())
        system = {
            "ecutwfc": self.ecutwfc_Ry,
            "ecutrho": self.ecutwfc_Ry * (8 if soft else 4),
            "occupations": "smearing",
            "smearing": "fermi-dirac",
            "degauss": kB * self.smearing_K / Rydberg,
            "input_dft": self.functional,
        }
        if self._spin(atoms):
            system["nspin"] = 2  # the starting moments are the atoms' (see label)
        return {
            "input_data": {
                "control": {
                    "calculation": "scf",
                    "tprnfor": True,
                    "outdir": str(outdir),
                    "prefix": "scalms",
                    "disk_io": "low",
                },
                "system": system,
                "electrons": {
                    "conv_thr": self.conv_thr_Ry,
                    "electron_maxstep": self.settings.max_scf,
                    "mixing_beta": MIXING_BETA,
                },
            },
            "pseudopotentials": {el: path.name for el, path in files.items()},
            "kpts": None,  # the Γ point, through QE's Γ-only code path
        }

    # -- one frame
    def label(self, atoms: Atoms) -> Label:
        from subprocess import CalledProcessError

        from ase.calculators.espresso import Espresso, EspressoProfile

        self.check(atoms)
        work = boxed(atoms, self.vacuum_A)
        work.pbc = True  # pw.x is periodic; the vacuum isolates a cluster
        # ASE writes QE's starting_magnetization (a fraction of the valence) from these.
        work.set_initial_magnetic_moments(
            [STARTING_MAGNETIZATION if self._spin(work) else 0.0] * len(work)
        )
        if self._dir is None:
            self._dir = scratch_dir(self.settings.workdir, "espresso")
        self._runs += 1
        directory = self._dir / f"run{self._runs:04d}"
        profile = EspressoProfile(
            command=f"env OMP_NUM_THREADS={threads(self.settings.threads)} {self.command}",
            pseudo_dir=str(self.pseudo_dir.resolve()),
        )
        parameters = self._parameters(work, directory / "tmp")
        work.calc = Espresso(profile=profile, directory=str(directory), **parameters)
        output = directory / "espresso.pwo"
        started = time.perf_counter()
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces(), dtype=float)
        except (CalledProcessError, OSError, ValueError, IndexError, StopIteration) as err:
            text = output.read_text(errors="replace") if output.exists() else ""
            if NOT_CONVERGED.search(text):
                raise self._refused(atoms, output) from err
            found = ERROR.search(text)
            reason = f"{found.group(1).strip()}: {found.group(2).strip()}" if found else err
            raise ScalmsError(f"Quantum ESPRESSO failed ({reason}); see {output}") from err
        wall = time.perf_counter() - started
        text = output.read_text(errors="replace")
        if NOT_CONVERGED.search(text) or not CONVERGED.search(text):
            raise self._refused(atoms, output)
        steps = int(CONVERGED.findall(text)[-1])
        extra: dict[str, InfoValue] = {
            "spin_polarised": self._spin(work),
            "dft_box_A": box_text(work),
        }
        return Label(energy, forces, wall, scf_steps=steps, extra=extra)

    def _refused(self, atoms: Atoms, output: Path) -> SCFNotConverged:
        return SCFNotConverged(
            f"Quantum ESPRESSO: SCF not converged in {self.settings.max_scf} steps for "
            f"{atoms.get_chemical_formula()} (see {output}); frame refused"
        )

    def calculator(self):
        return LabellerCalculator(self)

    def close(self) -> None:
        pass  # pw.x runs once per frame: nothing stays running
