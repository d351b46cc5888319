"""NumPy kernels of the analyses on a CPU: no torch import.

Importing torch takes 3-9 s on a small machine, more than a PDF or an MSD of a few hundred atoms
over a few hundred frames takes to compute; and on the CPU these kernels are as fast as torch's
even for 1,568 atoms x 3,000 frames. The analyses therefore run them on a CPU and go to torch for
a GPU (:func:`wants_torch`). Each kernel computes what its torch counterpart in ``pdf``,
``diffusion`` or ``trace`` computes, from arrays those functions have already checked.
"""

from __future__ import annotations

import numpy as np

CPU_ENGINE = "numpy"
"""What runs the analyses on a CPU: "numpy", or "torch" (the GPU code path, on the CPU). NumPy
is as fast or faster there even for 1,568 atoms x 3,000 frames, before torch's import is
counted (docs/benchmarks.md)."""
_FLOAT64 = np.dtype(np.float64)
_CHUNK_VALUES = 2**21
"""Values per NumPy temporary (16 MB in float64): memory stays bounded for any trajectory."""


def wants_torch(device: str) -> bool:
    """Whether an analysis on ``device`` ("cpu", "cuda", "cuda:1", ...) runs through torch."""
    return not str(device).startswith("cpu") or CPU_ENGINE == "torch"


def msd_fft(positions: np.ndarray, max_lag: int, fast_length) -> np.ndarray:
    """`diffusion.msd_fft` in NumPy: (max_lag + 1, S) Å^2 from (F, S, 3) Å positions.

    ``fast_length(n)`` gives the FFT length for n samples (the torch version's choice).
    """
    n_frames, n_atoms = positions.shape[:2]
    n_fft = fast_length(n_frames + max_lag)
    n_origins = np.arange(n_frames, n_frames - max_lag - 1, -1, dtype=np.float64)
    msd = np.empty((max_lag + 1, n_atoms))
    per_chunk = max(1, _CHUNK_VALUES // (3 * n_fft))
    for start in range(0, n_atoms, per_chunk):
        r = np.array(positions[:, start : start + per_chunk], dtype=np.float64)
        r -= r.mean(axis=0)  # the MSD ignores offsets; smaller numbers round less
        square = np.einsum("fsi,fsi->fs", r, r)
        prefix = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(square, axis=0)])
        lags = np.arange(max_lag + 1)
        # sum_{t0 < F-m} d(t0) + sum_{t >= m} d(t) for every lag m
        squares = prefix[n_frames - lags] + prefix[n_frames] - prefix[lags]
        spectrum = np.fft.rfft(r, n=n_fft, axis=0)
        power = (spectrum.real**2 + spectrum.imag**2).sum(axis=-1)
        correlation = np.fft.irfft(power, n=n_fft, axis=0)[: max_lag + 1]
        chunk = (squares - 2.0 * correlation) / n_origins[:, None]
        chunk[0] = 0.0
        msd[:, start : start + per_chunk] = chunk
    return msd


def msd_direct(positions: np.ndarray, max_lag: int, origin_stride: int) -> np.ndarray:
    """`diffusion.msd_direct` in NumPy: every lag from every `origin_stride`-th origin."""
    n_frames, n_atoms = positions.shape[:2]
    msd = np.empty((max_lag + 1, n_atoms))
    per_chunk = max(1, _CHUNK_VALUES // (3 * -(-n_frames // origin_stride)))
    for start in range(0, n_atoms, per_chunk):
        r = np.asarray(positions[:, start : start + per_chunk], dtype=np.float64)
        for lag in range(max_lag + 1):
            # origins t0 = 0, stride, ... < F - lag, paired with t0 + lag: two strided views
            step = r[lag::origin_stride] - r[: n_frames - lag : origin_stride]
            msd[lag, start : start + per_chunk] = np.einsum("fsi,fsi->s", step, step) / len(step)
    return msd


def pair_counts(
    positions: np.ndarray,
    block_pairs: list[tuple[np.ndarray, np.ndarray, float]],
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    dynamic: bool,
    periodic,
    r_max_A: float,
    n_bins: int,
    *,
    dtype: np.dtype = _FLOAT64,
) -> np.ndarray:
    """`pdf.pair_distribution`'s histogram in NumPy: (n_bins,) A-B pair counts.

    block_pairs: (A atom indices, B atom indices, weight) per block of the distance matrix;
    periodic: None or the pdf module's `_Periodic` (cell and inverse (F, 3, 3), axes (3,));
    dtype: of the distances. A pair (i, i) never counts; with per-frame masks (dynamic) only
    wanted pairs count. A distance of exactly r_max_A counts in the last bin, as torch.histc's.
    """
    n_frames = positions.shape[0]
    counts = np.zeros(n_bins)
    scale = n_bins / r_max_A
    for rows, cols, weight in block_pairs:
        self_pairs = rows[:, None] == cols[None, :]
        per_chunk = max(1, _CHUNK_VALUES // (len(rows) * len(cols) * 3))
        for start in range(0, n_frames, per_chunk):
            stop = min(start + per_chunk, n_frames)
            frames = np.asarray(positions[start:stop], dtype=np.float64)
            # Centred as torch's are, so both round a distance on a bin edge alike.
            frames = (frames - frames.mean(axis=1, keepdims=True)).astype(dtype, copy=False)
            difference = frames[:, rows, None, :] - frames[:, None, cols, :]  # (C, a, b, 3)
            if periodic is not None:
                # (C, a, b, 3) @ (C, 1, 3, 3): batched 3x3 products, ten times einsum's speed
                fractional = difference @ periodic.inverse[start:stop, None]
                fractional -= np.round(fractional) * periodic.axes
                difference = fractional @ periodic.cell[start:stop, None]
            distance = np.sqrt(np.einsum("cabi,cabi->cab", difference, difference))
            keep = (distance <= r_max_A) & ~self_pairs
            if dynamic:
                keep &= mask_a[start:stop, rows, None] & mask_b[start:stop, None, cols]
            bins = np.minimum((distance[keep] * scale).astype(np.int64), n_bins - 1)
            counts += weight * np.bincount(bins, minlength=n_bins)
    return counts


def surface_trace(
    positions: np.ndarray,
    centre: np.ndarray,
    indices: np.ndarray,
    candidates: np.ndarray,
    n_surface: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`trace.solute_trace`'s distances and surfaces in NumPy: two (F, S) arrays in Å."""
    n_frames, n_atoms = positions.shape[:2]
    distance = np.empty((n_frames, indices.size))
    surface = np.empty((n_frames, indices.size))
    per_chunk = max(1, _CHUNK_VALUES // ((indices.size + 3) * n_atoms))
    for start in range(0, n_frames, per_chunk):
        stop = min(start + per_chunk, n_frames)
        relative = np.asarray(positions[start:stop], dtype=np.float64) - centre
        solute = relative[:, indices]
        length = np.linalg.norm(solute, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            direction = solute / length[..., None]  # NaN at the origin, which is what we report
        projection = direction @ relative[:, candidates].transpose(0, 2, 1)
        furthest = np.partition(projection, -n_surface, axis=-1)[..., -n_surface:]
        distance[start:stop] = length
        surface[start:stop] = furthest.mean(axis=-1)
    return distance, surface
