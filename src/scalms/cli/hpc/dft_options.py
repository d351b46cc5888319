"""The DFT options every ``scalms hpc`` command that runs a DFT code shares (rattle, e0,
recompute), and the one place that turns them into a :class:`DFTSettings`.

Each option's default (None) leaves the choice to the code's module, where the thesis's
settings live; the help says the unit each code reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli.types import POSITIVE

PANEL = "DFT (cp2k, vasp, espresso)"

CutoffOption = Annotated[
    float | None,
    typer.Option(
        help="Plane-wave cutoff: Ry for CP2K and Quantum ESPRESSO, eV for VASP (ENCUT). "
        "Default: the code's module (converged net forces for CP2K).",
        click_type=POSITIVE,
        rich_help_panel=PANEL,
    ),
]
FunctionalOption = Annotated[
    str, typer.Option(help="Exchange-correlation functional.", rich_help_panel=PANEL)
]
SpinOption = Annotated[
    bool | None,
    typer.Option(
        "--spin/--no-spin",
        help="Spin-polarised (UKS, ISPIN 2, nspin 2). Default: the code's (VASP spin, CP2K "
        "spin for an odd electron count).",
        show_default=False,
        rich_help_panel=PANEL,
    ),
]
ScfConvergenceOption = Annotated[
    float | None,
    typer.Option(
        help="SCF energy threshold in the code's unit (CP2K EPS_SCF, VASP EDIFF eV, QE "
        "conv_thr Ry).",
        click_type=POSITIVE,
        rich_help_panel=PANEL,
    ),
]
MaxScfOption = Annotated[
    int,
    typer.Option(
        help="SCF steps before the frame is refused as not converged.",
        min=1,
        rich_help_panel=PANEL,
    ),
]
SmearingOption = Annotated[
    float | None,
    typer.Option(
        "--smearing-K",
        help="Electronic temperature of Fermi-Dirac smearing, K.",
        click_type=POSITIVE,
        rich_help_panel=PANEL,
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        help="OpenMP threads of the DFT program. Default: SLURM_CPUS_PER_TASK, else all cores.",
        min=1,
        rich_help_panel=PANEL,
    ),
]
DftCommandOption = Annotated[
    str | None,
    typer.Option(
        "--dft-command",
        help="Program to start (cp2k.psmp, vasp_std, pw.x, or 'srun vasp_std'). Default: the "
        "code's, or ASE_CP2K_COMMAND / ASE_VASP_COMMAND / ASE_ESPRESSO_COMMAND.",
        rich_help_panel=PANEL,
    ),
]
BasisSetOption = Annotated[
    str | None,
    typer.Option(help="CP2K basis set (DZVP-MOLOPT-SR-GTH).", rich_help_panel=PANEL),
]
PseudopotentialDirOption = Annotated[
    str | None,
    typer.Option(
        "--pseudopotential-dir",
        help="Where the pseudopotentials come from: CP2K potential family (GTH-PBE), VASP "
        "POTCAR set under VASP_PP_PATH (potpaw_PBE), or Quantum ESPRESSO's folder of UPF files.",
        rich_help_panel=PANEL,
    ),
]
PseudopotentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pseudopotential",
        help="Per element, EL=FILE: a UPF file (QE) or a POTCAR variant such as Ga=Ga_d (VASP); "
        "repeat.",
        rich_help_panel=PANEL,
    ),
]
ScratchOption = Annotated[
    Path | None,
    typer.Option(
        "--scratch",
        help="Folder for the DFT program's input and output files. Default: beside --out.",
        rich_help_panel=PANEL,
    ),
]


def parse_pseudopotentials(entries: list[str] | None) -> dict[str, str]:
    """``["Ga=Ga.pbe.UPF", ...]`` -> ``{"Ga": "Ga.pbe.UPF"}``, one line for a bad entry."""
    from ase.data import atomic_numbers

    from scalms.errors import ScalmsError

    table: dict[str, str] = {}
    for entry in entries or []:
        element, sep, name = entry.partition("=")
        element, name = element.strip(), name.strip()
        if not sep or not element or not name:
            raise ScalmsError(f"--pseudopotential '{entry}' is not EL=FILE (e.g. Ga=Ga.pbe.UPF)")
        if element not in atomic_numbers:
            raise ScalmsError(f"--pseudopotential '{entry}': unknown element '{element}'")
        if element in table and table[element] != name:
            raise ScalmsError(f"--pseudopotential: {element} given twice")
        table[element] = name
    return table


def dft_settings(
    cutoff: float | None = None,
    functional: str = "PBE",
    spin: bool | None = None,
    scf_convergence: float | None = None,
    max_scf: int = 100,
    smearing_K: float | None = None,
    threads: int | None = None,
    dft_command: str | None = None,
    basis_set: str | None = None,
    pseudopotential_dir: str | None = None,
    pseudopotential: list[str] | None = None,
    scratch: Path | None = None,
):
    """The :class:`~scalms.hpc.dft.settings.DFTSettings` of the options above."""
    from scalms.hpc.dft.settings import DFTSettings

    settings = DFTSettings(
        functional=functional,
        cutoff=cutoff,
        spin=spin,
        scf_convergence=scf_convergence,
        max_scf=max_scf,
        smearing_K=smearing_K,
        threads=threads,
        command=dft_command,
        basis_set=basis_set,
        pseudopotential=pseudopotential_dir,
        pseudopotentials=parse_pseudopotentials(pseudopotential),
    )
    if scratch is not None:
        from dataclasses import replace

        settings = replace(settings, workdir=scratch)
    return settings
