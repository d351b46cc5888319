"""What a DFT labelling run is asked for, common to every code; each code maps it to its input.

``None`` means the code's own scalms default (the thesis's settings, or what converges the net
force where the thesis's did not: see each code's module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DFTSettings:
    functional: str = "PBE"
    cutoff: float | None = None
    """Plane-wave cutoff: Ry for CP2K and Quantum ESPRESSO, eV for VASP (ENCUT)."""
    spin: bool | None = None
    """Spin-polarised. None: the code's default (VASP ISPIN 2 as in the thesis; CP2K UKS when the
    electron count is odd, smearing otherwise)."""
    scf_convergence: float | None = None
    """SCF energy threshold in the code's units (CP2K EPS_SCF, VASP EDIFF in eV, QE conv_thr Ry)."""
    max_scf: int = 100
    smearing_K: float | None = None
    """Electronic temperature (Fermi-Dirac), K; None for the code's default."""
    vacuum_A: float | None = None
    """Vacuum around a non-periodic cluster on every side (the box the code computes in); None:
    the code's default (CP2K 3 Å with its isolated-system Poisson solver; VASP and QE 5 Å,
    which see periodic images)."""
    threads: int | None = None
    """OpenMP threads of the DFT program; None: SLURM_CPUS_PER_TASK, else all cores."""
    command: str | None = None
    """The program to start (``cp2k.psmp``, ``vasp_std``, ``pw.x``); None: the code's ASE
    environment variable (ASE_CP2K_COMMAND; ASE_VASP_COMMAND or VASP_COMMAND), else its default
    (``cp2k.psmp``, ``vasp_std``, ``pw.x``)."""
    basis_set: str | None = None
    """CP2K basis (DZVP-MOLOPT-SR-GTH); ignored by the plane-wave codes."""
    pseudopotential: str | None = None
    """CP2K potential family (GTH-PBE), VASP POTCAR set (``potpaw_PBE``) or QE folder of UPF
    files."""
    pseudopotentials: dict[str, str] = field(default_factory=dict)
    """Per element: UPF file name (QE) or POTCAR variant such as ``Ga_d`` (VASP)."""
    workdir: Path = Path("dft_scratch")
    """Where the code's input and output files go (one subfolder per labeller)."""
