"""The replay set of a multi-head fine-tune: the frames MACE replays as the foundation model's
own head (``pt_head``), so the fine-tuned model keeps what the foundation model knew.

MACE subsamples only its named replay sets (``num_samples_pt``); a local ``pt_train_file`` is
used whole and its per-head weight (``weight_pt_head``) is ignored. So scalms draws the frames
itself (seeded, without repetition, in the file's order) and writes each one's weight as
``config_weight``, which MACE reads from every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalms.files import atomic_path
from scalms.training.datasets import ISOLATED_ATOM, read_frames


@dataclass(frozen=True)
class ReplaySubset:
    path: Path
    frames: int
    """Frames written."""
    available: int
    """Frames of the source that could be drawn (isolated atoms are left out)."""


def replay_indices(available: int, samples: int, seed: int) -> list[int]:
    """Indices of the frames kept: all of them when ``samples`` covers them, else ``samples``
    drawn without repetition from (``seed``) alone, in increasing order."""
    import numpy as np

    if samples >= available:
        return list(range(available))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(available, size=samples, replace=False))


def write_replay_subset(
    source: Path, out: Path, samples: int, seed: int, weight: float
) -> ReplaySubset:
    """Draw up to ``samples`` frames of ``source`` into ``out`` (extended XYZ, written
    atomically), each with ``config_weight = weight``. Isolated-atom frames are left out: the
    replay head takes its E0s from the foundation model."""
    from ase.io import write

    frames = [
        frame
        for frame in read_frames(source, "replay")
        if frame.info.get("config_type") != ISOLATED_ATOM
    ]
    chosen = [frames[i] for i in replay_indices(len(frames), samples, seed)]
    for frame in chosen:
        frame.info["config_weight"] = weight
    with atomic_path(out) as tmp:
        write(tmp, chosen, format="extxyz")
    return ReplaySubset(out, len(chosen), len(frames))
