"""Read structure files (any format ASE reads, one or many frames) with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from scalms.errors import StructureError


@dataclass(frozen=True)
class StructureSource:
    """A structure file and the label its results are stored under."""

    label: str
    path: Path


def read_frames(path: Path | str) -> list[Atoms]:
    """Every frame of ``path``; raise :class:`StructureError` if it cannot be read."""
    import ase.io  # ase.io pulls in many format modules; keep it out of start-up

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"structure file not found: {path}")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:  # ASE raises many types for bad files; all mean "unreadable"
        raise StructureError(
            f"cannot read {path} as a structure ({type(err).__name__}: {err}); "
            "use a format ASE reads, e.g. extended XYZ"
        ) from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames or any(len(atoms) == 0 for atoms in frames):
        raise StructureError(f"{path} holds no atoms")
    return frames


def label_sources(paths: list[Path | str]) -> list[StructureSource]:
    """Give each file a unique label: its stem, with its parent folder added on a clash."""
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    labels = []
    for path, stem in zip(paths, stems, strict=True):
        label = stem if stems.count(stem) == 1 else f"{path.parent.name}_{stem}"
        while label in labels:
            label += "_"
        labels.append(label)
    return [StructureSource(label, path) for label, path in zip(labels, paths, strict=True)]


MIN_DISTANCE_A = 0.5
"""Two atoms closer than this (Å) are taken as one atom written twice: no bond is this short (the
shortest, H2's, is 0.74 Å), and a model fed such a pair returns huge or non-finite forces."""


def check_structure(atoms: Atoms, where: str = "structure") -> None:
    """Refuse a frame no model can evaluate: non-finite coordinates or cell, or two atoms (or an
    atom and a periodic image of another) closer than :data:`MIN_DISTANCE_A`.

    ``where`` names the frame in the message (e.g. ``"x.xyz, frame 3"``).
    """
    import numpy as np

    if not np.isfinite(atoms.positions).all():
        bad = int(np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))[0])
        raise StructureError(f"{where}: atom {bad} has a non-finite position (NaN or inf)")
    if not np.isfinite(atoms.cell.array).all():
        raise StructureError(f"{where}: the cell holds a non-finite number (NaN or inf)")
    if len(atoms) < 2 and not atoms.pbc.any():
        return
    if atoms.pbc.any():
        from ase.neighborlist import neighbor_list

        try:
            first, second, distance = neighbor_list("ijd", atoms, MIN_DISTANCE_A)
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as err:
            # a periodic direction with a zero-length cell vector cannot be imaged
            raise StructureError(f"{where}: its cell cannot be used ({err})") from None
    else:  # a k-d tree: ten times faster than ASE's neighbour list on a cluster
        from scipy.spatial import cKDTree

        pairs = cKDTree(atoms.positions).query_pairs(MIN_DISTANCE_A, output_type="ndarray")
        first, second = pairs[:, 0], pairs[:, 1]
        distance = np.linalg.norm(atoms.positions[first] - atoms.positions[second], axis=1)
    if len(first):
        k = int(np.argmin(distance))
        i, j = sorted((int(first[k]), int(second[k])))
        what = f"atoms {i} and {j}" if i != j else f"atom {i} and its own periodic image"
        raise StructureError(
            f"{where}: {what} are {distance[k]:.3f} Å apart (less than {MIN_DISTANCE_A} Å: "
            "an atom written twice?); remove the duplicate"
        )


def check_readable(paths: list[Path | str]) -> list[StructureSource]:
    """Label ``paths`` and read each once, so that a bad file stops a run before it starts:
    unreadable files, and frames :func:`check_structure` refuses."""
    if not paths:
        raise StructureError("no structure files given")
    sources = label_sources(paths)
    for source in sources:
        frames = read_frames(source.path)
        for i, atoms in enumerate(frames):
            check_structure(
                atoms, f"{source.path}, frame {i}" if len(frames) > 1 else str(source.path)
            )
    return sources
