"""What the DFT labellers share: the box of a cluster, electron counts, threads, the program.

Nothing here runs a DFT code; each code's module (``cp2k``, ``vasp``, ``espresso``) builds its
input from these pieces.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from scalms.errors import ScalmsError

FIT_TOL_A = 1e-6


def is_cluster(atoms: Atoms) -> bool:
    """A frame without any periodic direction: a nanoparticle or molecule in vacuum."""
    return not any(atoms.pbc)


def _fits(atoms: Atoms, vacuum_A: float, cubic: bool) -> bool:
    """True when the frame's own cell is an orthorhombic (``cubic``: cubic) box holding the
    cluster with at least ``vacuum_A`` on every side and at most ``2 * vacuum_A`` more than
    that per axis (a cluster from MD in a 40 Å box is not computed in 40 Å of vacuum: grid
    codes pay for every Å³)."""
    cell = atoms.cell.array
    if atoms.cell.rank < 3 or not np.allclose(cell, np.diag(np.diag(cell))):
        return False
    lengths = np.diag(cell)
    if cubic and not np.allclose(lengths, lengths[0]):
        return False
    low = atoms.positions.min(axis=0)
    high = atoms.positions.max(axis=0)
    enough = (low >= vacuum_A - FIT_TOL_A) & (high <= lengths - vacuum_A + FIT_TOL_A)
    extent = high - low
    not_too_much = lengths <= (extent.max() if cubic else extent) + 4 * vacuum_A
    return bool(np.all(enough & not_too_much))


def boxed(atoms: Atoms, vacuum_A: float, cubic: bool = False) -> Atoms:
    """The frame as the code computes it: a copy (no calculator) of a periodic frame as it is;
    a cluster in its own cell when :func:`_fits`, else centred in a box of its extent plus
    ``2 * vacuum_A`` per axis (``cubic``: the largest of those on every axis), rounded up to
    whole Å (so the rattled frames of one cluster mostly share a box and a code can start from
    the previous frame's wavefunction). Moving the cluster as a whole changes neither the
    energy nor the forces of an isolated system."""
    work = atoms.copy()
    work.calc = None
    if not is_cluster(work) or _fits(work, vacuum_A, cubic):
        return work
    extent = work.positions.max(axis=0) - work.positions.min(axis=0)
    lengths = [math.ceil(length) for length in extent + 2 * vacuum_A]
    work.set_cell([max(lengths)] * 3 if cubic else lengths)
    work.center()
    return work


def box_text(atoms: Atoms) -> str:
    """The cell the code computed in, for the frame's ``info`` (``"12 12 13"``, Å)."""
    return " ".join(f"{length:g}" for length in atoms.cell.lengths())


def n_electrons(atoms: Atoms, valence: dict[str, float], charge: float = 0.0) -> float:
    """Valence electrons of ``atoms`` for the code's pseudopotentials (``valence`` per element)."""
    return float(sum(valence[symbol] for symbol in atoms.get_chemical_symbols())) - charge


def is_odd(electrons: float) -> bool:
    return round(electrons) % 2 == 1


def threads(requested: int | None) -> int:
    """OpenMP threads of the DFT program: the settings' number, else SLURM's
    ``SLURM_CPUS_PER_TASK`` (a job step's share of a node), else the cores this process may use."""
    if requested:
        return int(requested)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    return len(os.sched_getaffinity(0))


def program_of(command: str) -> str:
    """The program a command line starts, past ``env`` and ``VAR=value`` prefixes."""
    words = shlex.split(command)
    for word in words:
        if word == "env" or ("=" in word and not word.startswith(("-", "/", "."))):
            continue
        return word
    raise ScalmsError(f"the DFT command {command!r} names no program")


def require_program(command: str, code: str, option: str) -> str:
    """The path of the command's program; one line naming it and the fix when it is missing."""
    program = program_of(command)
    found = shutil.which(program)
    if found is None:
        raise ScalmsError(
            f"{code}: the program {program!r} is not on PATH (install it or give its command "
            f"with {option})"
        )
    return found


def scratch_dir(workdir: Path, code: str) -> Path:
    """A fresh folder for one labeller's input and output files, under ``workdir``: a new one
    per labeller, so SLURM array tasks sharing a working directory never share files."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{code}-", dir=workdir))


def elements_in_order(atoms: Atoms) -> list[str]:
    """Each element once, in order of first appearance."""
    return list(dict.fromkeys(atoms.get_chemical_symbols()))


class LabellerCalculator(Calculator):
    """An ASE calculator that asks a labeller (for a BFGS pre-convergence): the same settings,
    box, spin choice and SCF check as the stored labels, and the same running program."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, labeller):
        super().__init__()
        self.labeller = labeller

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        label = self.labeller.label(self.atoms)
        self.results = {
            "energy": label.energy_eV,
            "free_energy": label.energy_eV,
            "forces": label.forces_eV_per_A,
        }
