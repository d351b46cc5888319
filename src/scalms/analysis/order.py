"""Is it liquid? Two order parameters for a particle: the Lindemann index and Steinhardt's Q6.

- Lindemann index (over a window of frames): the mean relative fluctuation of the interatomic
  distances, delta = 2 / (N (N - 1)) sum_{i<j} sqrt(<r_ij^2> - <r_ij>^2) / <r_ij>. A solid
  vibrates about fixed distances (delta of a few 0.01); above about 0.1 atoms swap places and
  the particle is liquid (the Lindemann criterion, for windows of many atomic hops: over a few
  ps a liquid particle scores less, 0.06-0.15 in the tests here).
- Global bond-orientational order Q6 (one frame): Steinhardt, Nelson and Ronchetti's
  Q_l = sqrt(4 pi / (2l + 1) sum_m |<Y_lm(bond)>|^2), the average over every bond shorter than a
  cutoff. A crystal keeps its bond directions (fcc 0.575, icosahedral order 0.663); in a liquid
  they point everywhere and Q6 falls towards zero as bonds average out.

Pure functions on arrays; positions in Å. scipy supplies the spherical harmonics.
"""

from __future__ import annotations

import numpy as np


def lindemann_index(positions: np.ndarray) -> float:
    """Lindemann index of the frames ``positions`` (F, N, 3), N >= 2, F >= 2."""
    positions = np.asarray(positions, dtype=np.float64)
    n_frames, n_atoms = positions.shape[:2]
    if n_frames < 2 or n_atoms < 2:
        raise ValueError("the Lindemann index needs at least 2 frames of at least 2 atoms")
    upper = np.triu_indices(n_atoms, k=1)

    def distances(frame):  # one frame's distance matrix at a time keeps memory at N^2
        return np.linalg.norm(frame[:, None, :] - frame[None, :, :], axis=-1)[upper]

    # Sums of the change from the first frame: the variance then loses no digits to cancellation.
    first = distances(positions[0])
    total = np.zeros_like(first)
    total_sq = np.zeros_like(first)
    for frame in positions[1:]:
        change = distances(frame) - first
        total += change
        total_sq += change**2
    mean_change = total / n_frames
    spread = np.sqrt(np.clip(total_sq / n_frames - mean_change**2, 0.0, None))
    return float(np.mean(spread / (first + mean_change)))


def bond_order(positions: np.ndarray, cutoff_A: float, l: int = 6) -> float:  # noqa: E741
    """Global Steinhardt Q_l of one frame ``positions`` (N, 3) over bonds shorter than
    ``cutoff_A`` (take the first minimum of the PDF). Zero when there are no bonds."""
    from scipy.special import sph_harm_y

    positions = np.asarray(positions, dtype=np.float64)
    i, j = np.triu_indices(len(positions), k=1)
    bonds = positions[j] - positions[i]
    lengths = np.linalg.norm(bonds, axis=1)
    bonds, lengths = bonds[lengths < cutoff_A], lengths[lengths < cutoff_A]
    if len(bonds) == 0:
        return 0.0
    polar = np.arccos(np.clip(bonds[:, 2] / lengths, -1.0, 1.0))
    azimuth = np.arctan2(bonds[:, 1], bonds[:, 0])
    # A bond and its reverse share |Y_lm| for even l, so counting each bond once is enough.
    q_lm = np.array([sph_harm_y(l, m, polar, azimuth).mean() for m in range(-l, l + 1)])
    return float(np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(q_lm) ** 2)))
