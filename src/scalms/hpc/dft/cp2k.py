"""CP2K labels through ASE's CP2K calculator (``ase.calculators.cp2k``, the CP2K shell).

Defaults: the thesis's Appendix B settings (PBE, DZVP-MOLOPT-SR-GTH basis, GTH-PBE
pseudopotentials: Ga q13, Pt q18; Fermi-Dirac smearing with added orbitals; EPS_SCF 1e-6;
spin-unrestricted when the electron count is odd) where they converge, and what was measured
where they did not. Measured with Debian's CP2K 2023.1 on a rattled Ga4 tetrahedron (2.75 Å
edges, 0.1 Å rattle, seed 1) and Ga3Pt (2.65 Å, seed 5), 2 OpenMP threads on a 2-core machine
that other jobs shared (so the times are high and only comparable with each other):

- Net force. CP2K's default GPW puts the whole valence density, Ga's 3d semicore included, on
  the plane-wave grid; at the thesis's 400 Ry the Ga4 forces summed to 2.2 eV/Å, 0.15 at 600,
  0.03-0.06 at 800 (depending on where the cluster sits on the grid) and 0.026 at 1000 Ry, at
  250-720 s a single point. GAPW (``METHOD GAPW``) treats the hard part of the density on
  atom-centred grids. In a 9 Å box its Ga4 net force was 0.073, 0.064, 0.045, 0.003, 0.0002
  and 0.0007 eV/Å at 300, 400, 500, 600, 800 and 1000 Ry, the largest force difference from
  1000 Ry 0.047, 0.026, 0.021, 0.002 and 0.0007 eV/Å, the energy within 0.1 meV from 600 Ry on
  (in an 8 Å box 400 Ry gave 0.005: below 600 Ry the net force depends on where the cluster
  sits on the grid). Ga3Pt: 0.056 at 400 Ry, 0.008 at 500 and 600. Default: GAPW, 600 Ry,
  REL_CUTOFF 60 Ry (40 and 60 gave the same GPW forces at 400 Ry), EPS_DEFAULT 1e-12.
  ``benchmarks/cp2k_net_force.py`` measures the curve for both methods.
- Poisson solver for clusters. ASE's choice, Martyna-Tuckerman, needs a box about twice the
  size of the electron density: its Ga4 forces moved by 0.2 eV/Å between 10, 12 and 14 Å boxes
  (600 Ry). The wavelet solver (isolated boundary conditions; cubic boxes only) gave the same
  forces (within 0.013 eV/Å) and energy (9 meV) with 3 and 4 Å of vacuum. Default: wavelet, a
  cubic box with 3 Å of vacuum (``DFTSettings.vacuum_A``; 9 Å for Ga4).
- SCF. Broyden mixing, alpha 0.4 with 8 steps kept: 17 steps where the thesis-era 0.2 with 4
  took 25. An odd electron count is held a doublet (FIXED_MAGNETIC_MOMENT 1 with the smearing):
  20 steps for Ga3Pt instead of 31 with a free moment. Electronic temperature 1000 K.
- Consistency. The stored energy is CP2K's total energy, which includes the electronic entropy
  term (-TS) of the smearing: the free energy, whose derivatives the forces are (the tests check
  this against central finite differences).
- Cost with these defaults: a Ga4 single point takes 23 SCF steps (9 Å box), Ga3Pt 21 UKS
  steps; a restart from the previous frame's wavefunction (same composition and box, in the
  same CP2K shell) 14-18. A step took 2.3 s (Ga4, 500 Ry, machine lightly loaded) to 6.7 s
  (600 Ry, three other jobs running); a UKS step about 1.5 times an RKS one.

ASE returns an energy even when the SCF did not converge: the part of CP2K's output written for
each frame is read, and "SCF run NOT converged" raises :class:`SCFNotConverged`.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import time
import warnings
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Rydberg

from scalms.errors import ScalmsError
from scalms.hpc.dft._common import (
    LabellerCalculator,
    box_text,
    boxed,
    elements_in_order,
    is_cluster,
    is_odd,
    n_electrons,
    program_of,
    require_program,
    scratch_dir,
    threads,
)
from scalms.hpc.dft.settings import DFTSettings
from scalms.hpc.labels import InfoValue, Label, SCFNotConverged

DEFAULT_CUTOFF_RY = 600.0
QS_METHOD = "GAPW"
DEFAULT_VACUUM_A = 3.0
REL_CUTOFF_RY = 60.0
DEFAULT_SMEARING_K = 1000.0
DEFAULT_EPS_SCF = 1e-6
EPS_DEFAULT = 1e-12
MIXING_ALPHA = 0.4
MIXING_BUFFER = 8
DEFAULT_BASIS = "DZVP-MOLOPT-SR-GTH"
BASIS_FILE = "BASIS_MOLOPT"
POTENTIAL_FILE = "GTH_POTENTIALS"
GTH_FUNCTIONALS = ("PBE", "BLYP", "BP", "PADE", "LDA")
DATA_DIR = Path("/usr/share/cp2k")
"""Debian's CP2K data; ``CP2K_DATA_DIR`` overrides it, as it does for CP2K itself."""

NOT_CONVERGED = re.compile(r"SCF run NOT converged")
CONVERGED = re.compile(r"SCF run converged in\s+(\d+)\s+steps")

POISSON_ISOLATED = """    &POISSON
      PERIODIC NONE
      PSOLVER WAVELET
    &END POISSON
"""
FIXED_MOMENT = "        FIXED_MAGNETIC_MOMENT {}\n"
INPUT_TEMPLATE = """&FORCE_EVAL
  &DFT
{poisson}    &QS
      METHOD {method}
      EPS_DEFAULT {eps_default:.1E}
    &END QS
    &MGRID
      REL_CUTOFF [Ry] {rel_cutoff:g}
    &END MGRID
    &SCF
      EPS_SCF {eps_scf:.1E}
      ADDED_MOS {added_mos:d}
      &SMEAR ON
        METHOD FERMI_DIRAC
        ELECTRONIC_TEMPERATURE [K] {smearing_K:g}
{fixed_moment}      &END SMEAR
      &MIXING
        METHOD BROYDEN_MIXING
        ALPHA {alpha:g}
        NBUFFER {buffer:d}
      &END MIXING
    &END SCF
  &END DFT
&END FORCE_EVAL
"""


def data_dir() -> Path:
    return Path(os.environ.get("CP2K_DATA_DIR") or DATA_DIR)


def _split_name(value: str, default_file: str) -> tuple[Path, str]:
    """``NAME`` (looked up in the default file of the data folder) or ``FILE:NAME`` (a file
    name in the data folder or a path) -> (file, name)."""
    if ":" in value:
        file, name = value.rsplit(":", 1)
    else:
        file, name = default_file, value
    path = Path(file)
    return (path if path.is_absolute() or path.parent != Path(".") else data_dir() / path), name


@cache
def _entries(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    """Element -> [(names of the entry, line index)] of a CP2K basis or potential file."""
    found: dict[str, list[tuple[list[str], int]]] = {}
    lines = path.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0][:1].isalpha() and not line.lstrip().startswith("#"):
            found.setdefault(words[0], []).append((words[1:], index))
    return found


def _has(path: Path, element: str, name: str) -> bool:
    return any(name in names for names, _ in _entries(path).get(element, []))


@cache
def _valence(path: Path, element: str, name: str) -> int:
    """Valence electrons of a GTH potential: the sum of the occupations on the line after its
    name (``2 1 10`` for Ga GTH-PBE-q13)."""
    lines = path.read_text(errors="replace").splitlines()
    for names, index in _entries(path).get(element, []):
        if name in names:
            return sum(int(word) for word in lines[index + 1].split())
    raise KeyError(element)


@cache
def cp2k_version(program: str) -> str:
    """``CP2K 2023.1`` from ``program --version`` (a fraction of a second), or ``CP2K``."""
    try:
        result = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "CP2K"
    match = re.search(r"CP2K version ([\w.]+)", result.stdout)
    return f"CP2K {match.group(1)}" if match else "CP2K"


class CP2KLabeller:
    """Energies and forces from CP2K, one frame at a time, through one CP2K shell.

    The shell keeps its SCF state between frames of the same composition and box, so a frame
    close to the previous one (a finite-difference step, the next rattled frame) starts from the
    previous wavefunction. A new composition, box or spin state starts a new shell.
    """

    name = "cp2k"

    def __init__(self, settings: DFTSettings, qs_method: str = QS_METHOD):
        """``qs_method``: GAPW (the default) or GPW (CP2K's own default, the thesis's runs)."""
        self.settings = settings
        self.qs_method = qs_method.upper()
        self.vacuum_A = float(
            settings.vacuum_A if settings.vacuum_A is not None else DEFAULT_VACUUM_A
        )
        self.cutoff_Ry = float(settings.cutoff or DEFAULT_CUTOFF_RY)
        self.eps_scf = float(settings.scf_convergence or DEFAULT_EPS_SCF)
        self.smearing_K = float(settings.smearing_K or DEFAULT_SMEARING_K)
        self.functional = settings.functional.upper()
        self.basis_path, self.basis_set = _split_name(
            settings.basis_set or DEFAULT_BASIS, BASIS_FILE
        )
        # GTH potentials exist for these functionals; CP2K users take GTH-PBE for the others.
        family = self.functional if self.functional in GTH_FUNCTIONALS else "PBE"
        potential = settings.pseudopotential or f"GTH-{family}"
        self.potential_path, self.potential = _split_name(potential, POTENTIAL_FILE)
        base = settings.command or os.environ.get("ASE_CP2K_COMMAND") or "cp2k.psmp"
        self.base_command = base
        self._calc = None
        self._key: tuple | None = None
        self._runs = 0
        self._dir: Path | None = None
        self._checked: set[tuple[str, ...]] = set()
        self._last: Label | None = None

    # -- what the frames record
    def describe(self) -> dict[str, InfoValue]:
        found = _which(self.base_command)
        return {
            "code": "cp2k",
            "program": cp2k_version(found) if found else "CP2K",
            "functional": self.functional,
            "method": self.qs_method,
            "cutoff_Ry": self.cutoff_Ry,
            "rel_cutoff_Ry": REL_CUTOFF_RY,
            "basis_set": self.basis_set,
            "pseudopotential": self.potential,
            "spin": _spin_word(self.settings.spin),
            "smearing": f"Fermi-Dirac {self.smearing_K:g} K",
            "scf_convergence": self.eps_scf,
            "max_scf": self.settings.max_scf,
            "eps_default": EPS_DEFAULT,
            "poisson": "wavelet (clusters)",
            "mixing": f"Broyden {MIXING_ALPHA:g}, {MIXING_BUFFER} steps kept",
            "vacuum_A": self.vacuum_A,
        }

    # -- before any work
    def check(self, atoms: Atoms) -> None:
        """Program on PATH, basis and potential files present and holding every element."""
        require_program(self.base_command, "CP2K", "--dft-command")
        elements = tuple(elements_in_order(atoms))
        if elements in self._checked:
            return
        for path, name, what in (
            (self.basis_path, self.basis_set, "basis"),
            (self.potential_path, self.potential, "potential"),
        ):
            if not path.is_file():
                raise ScalmsError(f"CP2K {what} file {path} does not exist (set CP2K_DATA_DIR)")
            for element in elements:
                if not _has(path, element, name):
                    raise ScalmsError(f"CP2K has no {name} {what} for {element} in {path}")
        self._spin(atoms)  # refuses a restricted run of an odd electron count here, not later
        self._checked.add(elements)

    def _electrons(self, atoms: Atoms) -> float:
        valence = {
            element: _valence(self.potential_path, element, self.potential)
            for element in elements_in_order(atoms)
        }
        return n_electrons(atoms, valence)

    def _spin(self, atoms: Atoms) -> tuple[bool, int | None, int | None]:
        """(UKS, multiplicity, fixed moment): the settings' choice, else UKS for an odd electron
        count, held a doublet (one unpaired electron: a fixed moment converged Ga3Pt in 20 SCF
        steps instead of 31). Spin asked for an even count starts as a triplet (the Pt atom's
        ground state) with a free moment."""
        odd = is_odd(self._electrons(atoms))
        spin = self.settings.spin
        if odd and spin is not False:
            return True, 2, 1
        if spin:
            return True, 3, None
        if odd:
            raise ScalmsError(
                f"CP2K: {atoms.get_chemical_formula()} has an odd number of electrons; a "
                f"restricted (--no-spin) run cannot hold it: drop --no-spin"
            )
        return False, None, None

    # -- the ASE calculator
    def _command(self) -> str:
        command = self.base_command
        words = command.split()
        shell_mode = "-s" in words or "--shell" in words or program_of(command).endswith("shell")
        if not shell_mode:
            command += " -s"  # ASE talks to CP2K's interactive shell
        # CP2K refuses a PROJECT name over 80 characters: run in the scratch folder and give
        # ASE a short relative label (ASE starts the command through a shell).
        folder = shlex.quote(str(self._scratch()))
        omp = threads(self.settings.threads)
        # CP2K's stderr (MPI's abort notice) goes to a file: the reason is in the output
        return f"cd {folder} && exec env OMP_NUM_THREADS={omp} {command} 2>>cp2k.stderr"

    def _scratch(self) -> Path:
        if self._dir is None:
            self._dir = scratch_dir(self.settings.workdir, "cp2k").resolve()
        return self._dir

    def _input(self, electrons: float, isolated: bool, fixed_moment: int | None) -> str:
        # Enough empty orbitals that the smeared occupation of the highest one is negligible.
        added = max(20, math.ceil(0.1 * electrons))
        return INPUT_TEMPLATE.format(
            poisson=POISSON_ISOLATED if isolated else "",
            method=self.qs_method,
            fixed_moment="" if fixed_moment is None else FIXED_MOMENT.format(fixed_moment),
            eps_default=EPS_DEFAULT,
            rel_cutoff=REL_CUTOFF_RY,
            eps_scf=self.eps_scf,
            added_mos=added,
            smearing_K=self.smearing_K,
            alpha=MIXING_ALPHA,
            buffer=MIXING_BUFFER,
        )

    def _new_calculator(self, atoms: Atoms, spin: tuple[bool, int | None, int | None]):
        from ase.calculators.cp2k import CP2K

        self._runs += 1
        return CP2K(
            label=f"run{self._runs:04d}",
            command=self._command(),
            xc=self.functional,
            cutoff=self.cutoff_Ry * Rydberg,
            max_scf=self.settings.max_scf,
            basis_set=self.basis_set,
            basis_set_file=str(self.basis_path),
            pseudo_potential=self.potential,
            potential_file=str(self.potential_path),
            stress_tensor=False,
            uks=spin[0],
            multiplicity=spin[1],
            poisson_solver=None,  # ours, in the input: ASE's "auto" would choose MT
            inp=self._input(self._electrons(atoms), is_cluster(atoms), spin[2]),
        )

    def calculator(self):
        """An ASE calculator labelling through this labeller (same shell, box and spin)."""
        return LabellerCalculator(self)

    # -- one frame
    def label(self, atoms: Atoms) -> Label:
        self.check(atoms)
        work = boxed(atoms, self.vacuum_A, cubic=True)  # the wavelet solver's box
        spin = self._spin(work)
        key = (
            tuple(work.numbers),
            tuple(work.pbc),
            tuple(np.round(work.cell.array, 8).ravel()),
            spin,
        )
        if key != self._key:
            self.close()
            self._calc = self._new_calculator(work, spin)
            self._key = key
        calc = self._calc
        if self._last is not None and calc.results and not calc.check_state(work):
            # the frame just labelled: ASE would not run CP2K again, so there is no new output
            last = self._last
            return replace(
                last, forces_eV_per_A=last.forces_eV_per_A.copy(), extra=dict(last.extra)
            )
        output = self._scratch() / f"{calc.label}.out"
        offset = output.stat().st_size if output.exists() else 0
        work.calc = calc
        started = time.perf_counter()
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces(), dtype=float)
        except (AssertionError, RuntimeError, OSError, ValueError) as err:
            # The shell died (CP2K aborted): its output says why.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # ASE: "shell not ready"
                self.close()
            raise ScalmsError(f"CP2K failed: {_abort_reason(output, offset) or err}") from err
        wall = time.perf_counter() - started
        text = _read_from(output, offset)
        if NOT_CONVERGED.search(text) or not CONVERGED.search(text):
            self.close()  # the next frame starts from a fresh guess, not this failed SCF
            raise SCFNotConverged(
                f"CP2K: SCF not converged in {self.settings.max_scf} steps for "
                f"{atoms.get_chemical_formula()} (see {output}); frame refused"
            )
        steps = int(CONVERGED.findall(text)[-1])
        extra: dict[str, InfoValue] = {"spin_polarised": spin[0], "dft_box_A": box_text(work)}
        self._last = Label(energy, forces, wall, scf_steps=steps, extra=extra)
        return self._last

    def close(self) -> None:
        if self._calc is not None:
            self._calc.close()
        self._calc = None
        self._key = None
        self._last = None


def _which(command: str) -> str | None:
    import shutil

    try:
        return shutil.which(program_of(command))
    except ScalmsError:
        return None


def _spin_word(spin: bool | None) -> str:
    return {None: "UKS if odd electrons", True: "UKS", False: "RKS"}[spin]


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with open(path, errors="replace") as handle:
        handle.seek(offset)
        return handle.read()


ABORT_ART = re.compile(r"^\s*\*\s*(___|/   \\|\[ABORT\]|\\___/|\|(?!\S)|O/\||/\| \||/ \\)?")


def _abort_reason(path: Path, offset: int) -> str:
    """The message in CP2K's ABORT box (a framed text beside a small drawing), on one line."""
    lines = _read_from(path, offset).splitlines()
    marks = [index for index, line in enumerate(lines) if "[ABORT]" in line]
    if not marks:
        return ""
    start = end = marks[0]
    while start > 0 and not lines[start - 1].strip().startswith("****"):
        start -= 1
    while end + 1 < len(lines) and not lines[end + 1].strip().startswith("****"):
        end += 1
    words = [ABORT_ART.sub("", line).rstrip(" *") for line in lines[start : end + 1]]
    words = [word for word in words if word and not re.search(r"\.F:\d+$", word.strip())]
    return re.sub(r"\s+", " ", " ".join(words)).strip()
