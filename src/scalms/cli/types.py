"""Option types shared by every command, so each reads the same everywhere."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

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
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds after which a model's child process is stopped."),
]
SeedOption = Annotated[int, typer.Option(help="Random seed passed to every child.")]
