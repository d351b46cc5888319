"""What a finished training hands on: the model file and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalms.errors import ScalmsError


class TrainingError(ScalmsError):
    """A problem with a training's inputs or run that the user can fix (exit 2)."""


class TrainerFailed(TrainingError):
    """The trainer itself failed (a crash, not a refused input): exit 1, its log says why."""

    exit_code = 1


@dataclass(frozen=True)
class TrainedModel:
    name: str
    """The model's name in model_config.yaml (also the run folder's name)."""
    architecture: str
    """Its architecture key in model_config.yaml: ``MACE`` or ``SevenNet``."""
    model_path: Path
    """The deployable weights file (what the family's adapter loads through ``model_path``)."""
    run_dir: Path
    """``ML_training/runs/NAME/``: config, the trainer's log, checkpoints, curves, summary."""
    options: dict[str, Any] = field(default_factory=dict)
    """The entry's ``options`` (MACE: ``default_dtype``; a multi-head model: ``head``)."""
    test_file: Path | None = None
    """Held-out frames the new model is benchmarked on after registration."""
    trainer: str = ""
    """``mace`` or ``sevennet``: which log format :mod:`scalms.training.curves` reads."""
