"""Everything ``scalms learn run`` is asked to do, checked before any work.

The settings are stored in the learning folder (``learn.json``) when a loop starts; a rerun with
the same folder continues it and must ask for the same loop (only ``rounds`` may grow, and the
device may change).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scalms.config import MODEL_NAME
from scalms.errors import ScalmsError

DEFAULT_SELECT = 20
DEFAULT_SPREAD_THRESHOLD_EV_PER_A = 0.1
DEFAULT_VALID_FRACTION = 0.1
TRAINABLE_FAMILIES = ("mace",)
"""Families whose members the loop fine-tunes. SevenNet fine-tunes only from its own bundled
checkpoints through scalms (``scalms train sevennet``), not from a committee member's weights."""


class LearnError(ScalmsError):
    """A learning loop that cannot start or continue as asked."""


class LearnStepFailed(LearnError):
    """A step's own work failed (MD, an evaluation, the labelling): what it finished is kept,
    and the same command continues it. Exit 1, as a failed child elsewhere in scalms."""

    exit_code = 1


@dataclass(frozen=True)
class LearnSettings:
    """One active-learning loop. Paths are absolute once checked (:meth:`resolved`)."""

    structures: tuple[Path, ...]
    committee: tuple[str, ...]
    """Model names of model_config.yaml: the starting committee, at least two."""
    labeller: str
    """A DFT code (cp2k, vasp, espresso) or a model of model_config.yaml (a teacher)."""
    rounds: int = 2
    md_steps: int = 200
    temperature_K: float = 600.0
    time_step_fs: float = 2.0
    save_interval: int = 10
    select: int = DEFAULT_SELECT
    spread_threshold_eV_per_A: float = DEFAULT_SPREAD_THRESHOLD_EV_PER_A
    min_descriptor_distance: float = 0.0
    """In units of the candidates' own standard deviation per descriptor component
    (:func:`scalms.analysis.frame_selection.frame_features`); 0 keeps every frame above the
    threshold."""
    held_out: Path | None = None
    """Labelled frames every round's committee is scored on; never trained on."""
    train: Path | None = None
    """Labelled frames the starting committee was trained on; kept in every round's dataset."""
    epochs: int = 20
    """Epochs of each member's fine-tune per round."""
    batch_size: int = 4
    lr: float | None = None
    valid_fraction: float = DEFAULT_VALID_FRACTION
    net_force_threshold_eV_per_A: float = 0.1
    max_force_eV_per_A: float = 20.0
    seed: int = 0
    device: str = "cpu"
    model_config: Path = Path("model_config.yaml")
    register_as: str | None = None
    """Prefix of the final committee's names in model_config.yaml (None: ``learn-<folder>``)."""
    dft: dict[str, Any] = field(default_factory=dict)
    """DFT settings (:class:`scalms.hpc.dft.settings.DFTSettings` fields) for a DFT labeller."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "structures", tuple(Path(p) for p in self.structures))
        object.__setattr__(self, "committee", tuple(self.committee))
        problems = []
        if len(set(self.committee)) < 2:
            problems.append(
                "a committee needs at least two different models (repeat --committee): their "
                "disagreement is what picks the frames"
            )
        if not self.structures:
            problems.append("give at least one structure to run MD on")
        for name, value, low in (
            ("--rounds", self.rounds, 1),
            ("--md-steps", self.md_steps, 1),
            ("--save-interval", self.save_interval, 1),
            ("--select", self.select, 1),
            ("--epochs", self.epochs, 1),
            ("--batch-size", self.batch_size, 1),
        ):
            if value < low:
                problems.append(f"{name} must be at least {low}, got {value}")
        if self.md_steps < self.save_interval:
            problems.append(
                f"--md-steps {self.md_steps} saves no frame with --save-interval "
                f"{self.save_interval}"
            )
        for name, value in (
            ("--temperature-K", self.temperature_K),
            ("--time-step-fs", self.time_step_fs),
            ("--net-force-threshold", self.net_force_threshold_eV_per_A),
            ("--max-force", self.max_force_eV_per_A),
        ):
            if not value > 0:
                problems.append(f"{name} must be above 0, got {value}")
        if not self.spread_threshold_eV_per_A >= 0:
            problems.append(
                f"--spread-threshold must be 0 or more, got {self.spread_threshold_eV_per_A}"
            )
        if not self.min_descriptor_distance >= 0:
            problems.append(
                f"--min-descriptor-distance must be 0 or more, got {self.min_descriptor_distance}"
            )
        if not 0 < self.valid_fraction < 1:
            problems.append(f"--valid-fraction must lie in (0, 1), got {self.valid_fraction}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"--lr must be above 0, got {self.lr}")
        if self.register_as is not None and not MODEL_NAME.match(self.register_as):
            problems.append(
                f"--register-as '{self.register_as}' may hold letters, digits and . _ + - only"
            )
        if problems:
            raise LearnError("; ".join(problems))

    def resolved(self) -> LearnSettings:
        """A copy with absolute paths, after checking that the input files exist."""
        from dataclasses import replace

        missing = [
            str(p)
            for p in (*self.structures, self.held_out, self.train, self.model_config)
            if p is not None and not Path(p).is_file()
        ]
        if missing:
            raise LearnError(f"file(s) not found: {', '.join(missing)}")
        _check_inputs(self)
        return replace(
            self,
            structures=tuple(p.absolute() for p in self.structures),
            held_out=self.held_out.absolute() if self.held_out else None,
            train=self.train.absolute() if self.train else None,
            model_config=self.model_config.absolute(),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        data["structures"] = [str(p) for p in self.structures]
        data["committee"] = list(self.committee)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnSettings:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("held_out", "train", "model_config"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        data["structures"] = tuple(Path(p) for p in data["structures"])
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """What a rerun must match to continue a folder: all but rounds and device."""
        data = self.to_dict()
        data.pop("rounds")
        data.pop("device")
        return data

    def changes(self, other: LearnSettings) -> list[str]:
        mine, theirs = self.identity(), other.identity()
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def _check_inputs(settings: LearnSettings) -> None:
    """Nanoparticles to run MD on; labelled frames where labels are needed: one line if not."""
    from scalms.hpc.package import reference_of
    from scalms.io.structures import read_frames

    for path in settings.structures:
        if read_frames(path)[-1].pbc.any():
            raise LearnError(
                f"{path} is periodic: the loop runs MD of nanoparticles (no cell, no "
                "periodicity); give a cluster"
            )
    for option, path in (("--held-out", settings.held_out), ("--train", settings.train)):
        if path is None:
            continue
        for index, atoms in enumerate(read_frames(path)):
            energy, forces = reference_of(atoms)
            if energy is None or forces is None:
                raise LearnError(
                    f"{option} {path}, frame {index}: no reference energy and forces "
                    "(REF_energy, REF_forces, or a calculator's results): give labelled frames"
                )
