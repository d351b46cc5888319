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


def check_readable(paths: list[Path | str]) -> list[StructureSource]:
    """Label ``paths`` and read each once, so that a bad file stops a run before it starts."""
    if not paths:
        raise StructureError("no structure files given")
    sources = label_sources(paths)
    for source in sources:
        read_frames(source.path)
    return sources
