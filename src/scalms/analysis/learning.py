"""What a round of active learning produced: small records of numbers, units in the names.

The loop builds them and stores them as JSON (``round.json`` per round); the figures and the
report draw them (:mod:`scalms.plots.learn`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SelectedFrame:
    """One frame picked for labelling, and where it came from."""

    candidate: int
    """Index among the round's candidate frames (``candidates.extxyz``)."""
    structure: str
    md_frame: int
    """Saved-frame index in its MD run."""
    time_fs: float
    temperature_K: float
    """The thermostat's target when the frame was saved."""
    n_atoms: int
    max_spread_eV_per_A: float
    """Largest per-atom force spread of the committee on this frame."""
    min_distance: float | None
    """Descriptor distance to the nearest frame picked before it (None: the first pick)."""


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`scalms.analysis.frame_selection.select_frames` on one round's
    candidates."""

    picked: list[int]
    """Candidate indices, in the order picked (largest spread first)."""
    above_threshold: int
    """Candidates whose max spread passed the threshold."""
    too_close: int
    """Candidates above the threshold skipped for lying within the minimum distance of a pick."""
    threshold_eV_per_A: float
    min_distance: float
    max_count: int
    nearest: list[float | None] = field(default_factory=list)
    """Per pick: its descriptor distance to the nearest earlier pick (None for the first)."""


@dataclass(frozen=True)
class HeldOutErrors:
    """A committee's errors on the fixed held-out set, against its reference labels."""

    round: int
    member_force_mae_eV_per_A: dict[str, float]
    committee_force_mae_eV_per_A: float
    """Of the members' mean force."""
    committee_force_rmse_eV_per_A: float
    member_energy_mae_eV_per_atom: dict[str, float]
    mean_spread_eV_per_A: float
    """Mean per-atom force spread of the committee on the held-out frames."""
    n_frames: int


@dataclass
class RoundRecord:
    """Everything one round did, for its report and the report across rounds.

    Round 0 only evaluates the starting committee (``held_out``); rounds 1.. run MD with the
    previous committee, select, label, train, and evaluate the new committee.
    """

    round: int
    committee: list[str]
    """The committee this round ends with (model names)."""
    n_candidates: int = 0
    spread_before_eV_per_A: list[float] = field(default_factory=list)
    """Per candidate frame: the max per-atom spread of the previous committee."""
    spread_after_eV_per_A: list[float] = field(default_factory=list)
    """Per candidate frame: the max per-atom spread of this round's new committee."""
    selection: Selection | None = None
    selected: list[SelectedFrame] = field(default_factory=list)
    labelled: int = 0
    labelled_now: int = 0
    """Frames the labeller computed in this run (the rest were on disk already)."""
    dataset: dict[str, int] = field(default_factory=dict)
    """Frames in the training and validation sets after this round, and dropped ones."""
    held_out: HeldOutErrors | None = None
    stopped: str = ""
    """Why the loop stopped after this round ('' when it went on or ended as planned)."""
    wall_s: dict[str, float] = field(default_factory=dict)
    """Seconds per step."""

    @property
    def mean_spread_before(self) -> float:
        return (
            float(np.mean(self.spread_before_eV_per_A))
            if self.spread_before_eV_per_A
            else float("nan")
        )

    @property
    def mean_spread_after(self) -> float:
        return (
            float(np.mean(self.spread_after_eV_per_A))
            if self.spread_after_eV_per_A
            else float("nan")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundRecord:
        data = dict(data)
        if data.get("selection") is not None:
            data["selection"] = Selection(**data["selection"])
        data["selected"] = [SelectedFrame(**s) for s in data.get("selected", [])]
        if data.get("held_out") is not None:
            data["held_out"] = HeldOutErrors(**data["held_out"])
        return cls(**data)
