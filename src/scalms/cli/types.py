"""Option types shared by every command, so each reads the same everywhere."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import click
import typer

DEFAULT_CONFIG = Path("model_config.yaml")
"""Same as scalms.config.DEFAULT_CONFIG, repeated here to keep YAML out of start-up."""


class Backend(StrEnum):
    auto = "auto"
    torchsim = "torchsim"
    ase = "ase"
    both = "both"


ModelConfigOption = Annotated[
    Path,
    typer.Option(
        "--model-config",
        "-c",
        help="model_config.yaml listing the models (architecture -> models -> entry).",
        envvar="SCALMS_MODEL_CONFIG",
    ),
]
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name from the config; repeat for several. Default: every model listed.",
    ),
]
StructuresArgument = Annotated[
    list[Path],
    typer.Argument(help="Structure files in any format ASE reads; every frame is used."),
]
DeviceOption = Annotated[
    str,
    typer.Option(help="auto (CUDA when torch sees a GPU, else CPU), cpu, or cuda[:N]."),
]
BackendOption = Annotated[
    Backend,
    typer.Option(
        help="torchsim (batched), ase (frame by frame), auto (TorchSim with ASE as the "
        "fallback) or both (each, to compare them).",
        case_sensitive=False,
    ),
]
# Ranges are checked by the option types themselves, so a bad number stops the command with one
# "Invalid value" line (exit 2) before anything is read, started or written.
POSITIVE = click.FloatRange(min=0, min_open=True)
"""A float above zero (typer's own ``min`` cannot exclude the bound)."""
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds after which a model's child process is stopped.",
        click_type=POSITIVE,
    ),
]
MaxBatchAtomsOption = Annotated[
    int | None,
    typer.Option(
        help="Atoms per TorchSim batch; default: measured on a GPU, 2000 on a CPU.", min=1
    ),
]
SeedOption = Annotated[int, typer.Option(help="Random seed passed to every child.")]

# Analyses, shared by `scalms dynamics run` and `scalms analyze`.
PdfOption = Annotated[
    bool, typer.Option("--pdf/--no-pdf", help="Full pair distribution function of every run.")
]
PartialPdfOption = Annotated[
    list[str] | None,
    typer.Option(
        "--partial-pdf",
        help="Partial PDF of a pair, the first element normalising: Pt-Ga or 78-31. Repeat.",
    ),
]
TraceOption = Annotated[
    str | None,
    typer.Option(
        "--trace",
        help="Element (symbol or atomic number) whose distance from the centre of mass and "
        "from the adaptive surface is traced.",
    ),
]
SurfaceElementOption = Annotated[
    list[str] | None,
    typer.Option(
        "--surface-element",
        help="Elements counted as surface atoms for --trace; repeat. Default: all atoms.",
    ),
]
SurfaceAtomsOption = Annotated[
    int,
    typer.Option(help="Furthest atoms averaged into the surface along each solute's direction."),
]
NetForceOption = Annotated[
    bool,
    typer.Option("--net-force/--no-net-force", help="Net force per frame (a consistency check)."),
]
DiffusionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--diffusion",
        help="Element (or 'all') whose MSD and diffusion coefficient are computed, centre-of-mass "
        "drift removed; repeat for one MSD each.",
    ),
]
MsdMethodOption = Annotated[
    str, typer.Option(help="fft (every time origin) or direct (the thesis's subsampled origins).")
]
MsdMaxLagOption = Annotated[
    float,
    typer.Option("--msd-max-lag-fs", help="Longest lag time of the MSD, fs.", click_type=POSITIVE),
]
PdfRMaxOption = Annotated[
    float, typer.Option("--r-max-A", help="Largest distance, Å.", click_type=POSITIVE)
]
PdfBinsOption = Annotated[int, typer.Option(help="Number of bins.", min=1)]
MsdFitOption = Annotated[
    tuple[float, float] | None,
    typer.Option(
        "--msd-fit-fs", help="Fit window START END in fs. Default: 10% to 100% of max lag."
    ),
]
PlotOption = Annotated[
    bool, typer.Option("--plot/--no-plot", help="Draw the figures (PNG and HTML).")
]

# Time in trajectory files of other codes (scalms's own files carry it), for `analyze` and `io`.
InputTimeStepOption = Annotated[
    float | None,
    typer.Option(
        "--time-step-fs",
        help="MD time step of a trajectory file that does not state it (extxyz, XDATCAR, ...), fs.",
        click_type=POSITIVE,
    ),
]
InputSaveIntervalOption = Annotated[
    int | None,
    typer.Option(
        "--save-interval",
        help="MD steps between the frames of such a file (default: from its step numbers).",
        min=1,
    ),
]
FrameIntervalOption = Annotated[
    float | None,
    typer.Option(
        "--frame-interval-fs",
        help="Time between the frames of such a file, fs (instead of the two above).",
        click_type=POSITIVE,
    ),
]
