"""``scalms geometry alloy|adsorbates`` over structure files: read each file, change its atoms
with the pure functions of :mod:`scalms.geometry.alloy` and :mod:`scalms.geometry.adsorbates`,
and write the result whole (atomically), every request checked before the first file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.files import atomic_path
from scalms.geometry.adsorbates import (
    Placement,
    PlacementSettings,
    load_molecule,
    place_molecules,
)
from scalms.geometry.alloy import formula_label, substitute


def write_frames(path: Path, frames: list[Atoms] | Atoms) -> Path:
    """Extended XYZ at ``path``, written whole or not at all."""
    from ase.io import write

    with atomic_path(path) as tmp:
        write(tmp, frames, format="extxyz")
    return path


@dataclass(frozen=True)
class AlloyedFile:
    source: Path
    target: Path
    n_replaced: int
    n_frames: int


def alloy_files(
    paths: list[Path],
    element: str,
    *,
    fraction: float | None = None,
    count: int | None = None,
    host: str = "Ga",
    seed: int = 0,
    outs: list[Path] | None = None,
) -> list[AlloyedFile]:
    """Replace host atoms of every frame of each file by ``element`` (the same sites in every
    frame of a file) and write each beside its source, or to the matching ``outs`` path."""
    from scalms.io.structures import read_frames

    if outs and len(outs) != len(paths):
        raise ScalmsError(f"{len(paths)} structures but {len(outs)} --out files")
    alloyed_files = []
    for path in paths:  # every file is read and alloyed before the first is written
        frames = read_frames(path)
        alloyed = [
            substitute(f, element, fraction=fraction, count=count, host=host, seed=seed)
            for f in frames
        ]
        alloyed_files.append((path, frames, alloyed))
    done = []
    for i, (path, frames, alloyed) in enumerate(alloyed_files):
        target = outs[i] if outs else path.with_name(f"{path.stem}_{formula_label(alloyed[0])}.xyz")
        write_frames(target, alloyed)
        n = int((alloyed[0].numbers != frames[0].numbers).sum())
        done.append(AlloyedFile(path, target, n, len(frames)))
    return done


@dataclass(frozen=True)
class AdsorbedFile:
    source: Path
    target: Path
    frame: int
    n_frames: int
    placement: Placement


def adsorb_file(
    nanoparticle: Path,
    molecules: list[str],
    count: int,
    settings: PlacementSettings,
    out: Path | None = None,
) -> AdsorbedFile:
    """Place ``count`` molecules around a random frame (``settings.seed``) of ``nanoparticle``
    and write the result to ``out`` (default: beside it, named after what was placed)."""
    from scalms.io.structures import read_frames

    frames = read_frames(nanoparticle)
    frame = int(np.random.default_rng(settings.seed).integers(len(frames)))
    placement = place_molecules(
        frames[frame], [load_molecule(m) for m in molecules], count, settings
    )
    names = "_".join(f"{n}{placement.placed[n]}" for n in placement.placed)
    target = out or nanoparticle.with_name(f"{nanoparticle.stem}_{names}.xyz")
    write_frames(target, placement.atoms)
    return AdsorbedFile(nanoparticle, target, frame, len(frames), placement)
