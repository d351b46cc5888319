"""Which candidate frames to label: the committee disagrees most on them, and they differ.

A round's candidates are MD frames the committee has evaluated. A frame's uncertainty is its
largest per-atom force spread (one bad atom is enough to make a frame worth a label). Frames are
picked greedily: above the spread threshold, largest spread first, each at least a minimum
distance in descriptor space from every frame already picked, so one stretch of MD that the
committee gets wrong does not fill the whole labelling budget with near-copies.

Pure numpy: arrays in, numbers and a :class:`~scalms.analysis.learning.Selection` out; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scalms.analysis.learning import Selection

CONSTANT_COLUMN_RTOL = 1e-10
"""A feature column whose standard deviation is below this fraction of its largest magnitude is
constant: its spread is rounding noise that standardising would blow up to order one."""


def frame_max_spread(per_atom: np.ndarray, n_atoms: Sequence[int]) -> np.ndarray:
    """Largest per-atom force spread of each frame, (F,), in the unit of `per_atom` (eV/Å).

    `per_atom` holds every frame's atoms one frame after another (sum of `n_atoms` values), as
    :func:`scalms.benchmark.metrics.committee_of` returns its ``force_spread_eV_per_A``.
    """
    values = np.asarray(per_atom, dtype=float)
    counts = np.asarray(n_atoms, dtype=int)
    if values.ndim != 1:
        raise ValueError(f"per-atom spreads must be one value per atom, got shape {values.shape}")
    if counts.ndim != 1:
        raise ValueError(f"n_atoms must be one count per frame, got shape {counts.shape}")
    if counts.size and counts.min() < 1:
        raise ValueError(f"every frame needs at least one atom, got n_atoms {counts.tolist()}")
    if int(counts.sum()) != values.size:
        raise ValueError(
            f"{values.size} per-atom spreads for frames of {int(counts.sum())} atoms in all"
        )
    if counts.size == 0:
        return np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.maximum.reduceat(values, starts)


def frame_features(per_atom_descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """One feature vector per frame, (F, W), scaled so that distances compare across models.

    Each frame's (n_atoms, W) descriptors are averaged over its atoms (so frames of any size and
    composition compare), each of the W columns is then standardised over the frames (zero mean,
    unit standard deviation; a constant column becomes 0), and everything is divided by sqrt(W).
    The Euclidean distance between two rows is then the root-mean-square difference per
    component, in units of the candidates' own standard deviation: a distance of 1 means
    "typically one standard deviation apart", whatever the model's descriptor width.
    """
    if len(per_atom_descriptors) == 0:
        raise ValueError("no frames to describe")
    means = []
    width = None
    for i, frame in enumerate(per_atom_descriptors):
        frame = np.asarray(frame, dtype=float)
        if frame.ndim != 2 or frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(
                f"frame {i}: descriptors must be (n_atoms, width) with both > 0, got {frame.shape}"
            )
        if width is None:
            width = frame.shape[1]
        elif frame.shape[1] != width:
            raise ValueError(f"frame {i} has descriptors of width {frame.shape[1]}, not {width}")
        if not np.isfinite(frame).all():
            raise ValueError(f"frame {i} has non-finite descriptors")
        means.append(frame.mean(axis=0))
    stacked = np.stack(means)
    centred = stacked - stacked.mean(axis=0)
    std = centred.std(axis=0)
    scale = np.abs(stacked).max(axis=0)
    constant = std <= CONSTANT_COLUMN_RTOL * scale
    features = np.zeros_like(centred)
    varying = ~constant
    features[:, varying] = centred[:, varying] / std[varying]
    return features / np.sqrt(width)


def select_frames(
    spread: np.ndarray,
    features: np.ndarray | None,
    threshold_eV_per_A: float,
    max_count: int,
    min_distance: float,
) -> Selection:
    """Pick frames to label from the (F,) per-frame max spreads and (F, W) features.

    Candidates with spread strictly above `threshold_eV_per_A` are visited by spread, largest
    first (ties: lower index first). A visited candidate is picked when its Euclidean feature
    distance to every earlier pick is at least `min_distance`; otherwise it counts as
    ``too_close``. Visiting stops as soon as `max_count` frames are picked, so ``too_close``
    counts only the candidates rejected before that; the above-threshold candidates never
    visited are in ``above_threshold`` and in neither ``picked`` nor ``too_close``.

    ``nearest`` gives, per pick, the distance to its nearest earlier pick (None for the first
    pick, and for every pick when `features` is None). `features` may be None only when
    `min_distance` is 0, which makes the picks the top `max_count` spreads above the threshold.
    """
    spread = np.asarray(spread, dtype=float)
    if spread.ndim != 1:
        raise ValueError(f"spread must be one value per frame, got shape {spread.shape}")
    if not np.isfinite(spread).all():
        raise ValueError(f"{int((~np.isfinite(spread)).sum())} frames have a non-finite spread")
    if not np.isfinite(threshold_eV_per_A) or threshold_eV_per_A < 0:
        raise ValueError(f"spread threshold must be >= 0 eV/Å, got {threshold_eV_per_A}")
    if not np.isfinite(min_distance) or min_distance < 0:
        raise ValueError(f"minimum descriptor distance must be >= 0, got {min_distance}")
    if isinstance(max_count, bool) or int(max_count) != max_count or max_count < 1:
        raise ValueError(f"at most max_count frames are picked: it must be >= 1, got {max_count}")
    if features is None:
        if min_distance > 0:
            raise ValueError(f"a minimum distance of {min_distance} needs the frames' features")
    else:
        features = np.asarray(features, dtype=float)
        if features.ndim != 2 or features.shape[0] != spread.size:
            raise ValueError(
                f"features must be one row per frame ({spread.size}), got shape {features.shape}"
            )
        if not np.isfinite(features).all():
            raise ValueError("features must be finite")

    above = np.flatnonzero(spread > threshold_eV_per_A)
    order = above[np.argsort(-spread[above], kind="stable")]  # stable: ties keep index order
    picked: list[int] = []
    nearest: list[float | None] = []
    too_close = 0
    for candidate in order:
        if len(picked) >= max_count:
            break
        distance = None
        if features is not None and picked:
            distance = float(np.min(np.linalg.norm(features[picked] - features[candidate], axis=1)))
            if distance < min_distance:
                too_close += 1
                continue
        picked.append(int(candidate))
        nearest.append(distance)
    return Selection(
        picked=picked,
        above_threshold=int(above.size),
        too_close=too_close,
        threshold_eV_per_A=float(threshold_eV_per_A),
        min_distance=float(min_distance),
        max_count=int(max_count),
        nearest=nearest,
    )
