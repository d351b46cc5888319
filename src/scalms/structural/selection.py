"""Which frames of which runs a structural analysis describes.

Inputs are what every analysis takes (`scalms.io.results.open_runs`): scalms results and
trajectory files, or any trajectory ASE reads. Each run of each file becomes one named
:class:`SelectedRun` holding only its chosen frames.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.trajectory import Trajectory


class SelectionError(ScalmsError):
    """The frame selection is empty or the runs cannot be described together."""


@dataclass(frozen=True)
class FrameSelection:
    """Saved frames ``start``, ``start + every``, ... before ``stop`` (None: to the end)."""

    every: int = 10
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise SelectionError(f"--every must be at least 1, got {self.every}")
        if self.start < 0 or (self.stop is not None and self.stop < 0):
            raise SelectionError("--start and --stop count saved frames from 0; give them >= 0")

    def indices(self, n_frames: int) -> np.ndarray:
        return np.arange(n_frames)[self.as_slice()]

    def as_slice(self) -> slice:
        return slice(self.start, self.stop, self.every)

    def describe(self) -> str:
        stop = "end" if self.stop is None else str(self.stop)
        return f"frames {self.start}..{stop} every {self.every}"


@dataclass(frozen=True)
class SelectedRun:
    """The chosen frames of one run: ``frames`` index the run's saved frames."""

    name: str
    path: Path
    frames: np.ndarray
    trajectory: Trajectory

    @property
    def n_atom_frames(self) -> int:
        return self.trajectory.n_frames * self.trajectory.n_atoms

    def atoms(self) -> list[Atoms]:
        """The selected frames as ASE Atoms (positions, cell, periodicity)."""
        traj = self.trajectory
        return [
            Atoms(
                numbers=traj.numbers, positions=traj.positions[i], cell=traj.cell[i], pbc=traj.pbc
            )
            for i in range(traj.n_frames)
        ]


def _safe(text: str) -> str:
    """A name usable as an HDF5 group and in file names."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "run"


def _names(candidates: list[tuple[str, str]]) -> list[str]:
    """Short unique names from (model, structure): the structure where that is unique, the
    structure and model where models tell runs apart, then a counter (a file given twice)."""
    structures = [structure for _, structure in candidates]
    names = []
    for model, structure in candidates:
        clash = [m for m, s in candidates if s == structure]
        if structures.count(structure) > 1 and len(set(clash)) == len(clash):
            names.append(_safe(f"{structure}.{model}"))
        else:
            names.append(_safe(structure))
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}.{seen[name]}")
    return unique


def select_runs(
    paths: Sequence[Path | str],
    selection: FrameSelection,
    models: Sequence[str] | None = None,
    structures: Sequence[str] | None = None,
) -> list[SelectedRun]:
    """Every run of ``paths`` (only these ``models``/``structures`` where given), with the frames
    of ``selection``; an empty selection is refused, naming the run and its frame count."""
    from scalms.io.results import open_runs

    if not paths:
        raise SelectionError("give at least one trajectory or results file")
    picked = []
    for path in map(Path, paths):
        runs = open_runs(path)
        for ref in runs.select(list(models or []), list(structures or [])):
            where = f"{path} ({ref.model}/{ref.structure}"
            if ref.n_frames == 0:
                raise SelectionError(f"{where}) has no saved frame yet: nothing to describe")
            frames = selection.indices(ref.n_frames)
            if frames.size == 0:
                raise SelectionError(
                    f"no frame selected from {where}: {ref.n_frames} frames, "
                    f"{selection.describe()}); lower --start"
                )
            picked.append((path, ref, runs, frames))
    names = _names([(ref.model, ref.structure) for _, ref, _, _ in picked])
    selected = []
    for name, (path, ref, runs, frames) in zip(names, picked, strict=True):
        trajectory = runs.read(ref, selection.as_slice())  # only the selected frames
        if trajectory.pbc.any():
            raise SelectionError(
                f"{path} ({ref.model}/{ref.structure}) is periodic: analyze cluster reads "
                "nanoparticles (depth below their surface, distance from their centre)"
            )
        if trajectory.n_frames != frames.size:
            raise SelectionError(
                f"{path} ({ref.model}/{ref.structure}): read {trajectory.n_frames} frames, "
                f"expected {frames.size}; is the file still being written?"
            )
        selected.append(SelectedRun(name, path, frames, trajectory))
    return selected
