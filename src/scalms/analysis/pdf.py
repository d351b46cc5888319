"""Pair distribution functions, full and partial, averaged over the frames of a trajectory.

Distances are computed with torch on frame chunks and atom blocks, so memory stays bounded
(tens of MB per chunk) whatever the trajectory's length: in float64 on the CPU (a distance lands
in the bin an exact count puts it in), float32 on a GPU (where float64 is slow; within ~1e-5 Å
of an edge a distance may land in the neighbouring bin). See docs/analysis.md for the
definitions, the two normalisation modes and the cost of each precision.
"""

from __future__ import annotations

import math

import numpy as np
from ase.data import chemical_symbols

from scalms.analysis._common import Element, element_number, frames_array, present
from scalms.analysis._cpu import pair_counts as numpy_pair_counts
from scalms.analysis._cpu import wants_torch
from scalms.analysis.results import PDF_MODES, PairDistribution

_BLOCK_ATOMS = 256
"""Atoms per block of the distance matrix: a block's distances stay in the CPU cache."""
_CHUNK_DISTANCES = 2**23
"""Distances per (frame chunk x atom block) tensor: 32 MB in float32 (64 in float64), a few such
alive at once."""
PRECISIONS = ("float64", "float32")


def parse_pair(pair: str | tuple[Element, Element]) -> tuple[int, int]:
    """The atomic numbers (A, B) of a pair written "Pt-Ga", "78-31" or as a 2-tuple.

    A is the reference element (it normalises), B the neighbour element.
    """
    if isinstance(pair, str):
        parts = pair.split("-")
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise ValueError(
                f"a pair is two elements joined by '-', like 'Pt-Ga' or '78-31'; got {pair!r}"
            )
    elif isinstance(pair, tuple | list) and len(pair) == 2:
        parts = list(pair)
    else:
        raise ValueError(f"a pair is 'A-B' or a tuple (A, B); got {pair!r}")
    return element_number(parts[0]), element_number(parts[1])


def partial_pair_distribution(
    positions: np.ndarray,
    numbers: np.ndarray,
    pair: str | tuple[Element, Element],
    **kwargs,
) -> PairDistribution:
    """The A-B partial PDF: B neighbours around A atoms, normalised by A (see `pair_distribution`).

    `numbers` (N,) are the atomic numbers; `pair` is "Pt-Ga", "78-31" or a tuple. Other keyword
    arguments go to `pair_distribution`.
    """
    z_a, z_b = parse_pair(pair)
    numbers = np.asarray(numbers)
    for z in (z_a, z_b):
        if not np.any(numbers == z):
            raise ValueError(
                f"no {chemical_symbols[z]} atoms for the pair {chemical_symbols[z_a]}-"
                f"{chemical_symbols[z_b]}; elements present: {present(numbers)}"
            )
    label = f"{chemical_symbols[z_a]}-{chemical_symbols[z_b]}"
    return pair_distribution(
        positions, mask_a=numbers == z_a, mask_b=numbers == z_b, label=label, **kwargs
    )


def pair_distribution(
    positions: np.ndarray,
    *,
    mask_a: np.ndarray | None = None,
    mask_b: np.ndarray | None = None,
    r_max_A: float = 10.0,
    n_bins: int = 200,
    mode: str = "shell",
    label: str = "all",
    frame_chunk: int | None = None,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    device: str = "cpu",
    precision: str | None = None,
) -> PairDistribution:
    """Histogram of the distances from reference atoms (A) to neighbour atoms (B), over frames.

    positions: (F, N, 3) in Å. mask_a, mask_b: None (every atom), an (N,) boolean array (fixed
    labels such as elements) or an (F, N) boolean array (labels that change per frame, such as
    cluster labels). An atom is never its own neighbour: pairs (i, i) are left out by index,
    while two distinct atoms at the same place do count.

    Bins are n_bins equal intervals [r_lo, r_hi) of [0, r_max_A] (r = r_max_A exactly falls in
    the last). With C the number of A-B pairs per bin summed over all frames:
    - mode "shell": g = C / (V_shell * sum_f N_A(f)), V_shell = 4/3 pi (r_hi^3 - r_lo^3), in 1/Å^3:
      the mean number density of B atoms at distance r from an A atom. Only A's count normalises,
      so g_AB = g_BA * N_B / N_A.
    - mode "pair-fraction" (thesis equation 3.1): g = C / sum_f P(f), P(f) = N_A(f) N_B(f) minus
      the atoms in both sets, the number of ordered A-B pairs of frame f; dimensionless. For the
      full PDF of one frame this is 1/(N(N-1)) sum_i sum_{j!=i}, and the bins sum to the fraction
      of pairs closer than r_max_A.
    With fixed masks the sums over frames are F N_A and F P; with per-frame masks each frame adds
    its own counts, so frames with more A atoms weigh more, and frames with none add nothing.

    cell ((3, 3) or (F, 3, 3), Å) and pbc ((3,) bool) turn on the minimum-image convention along
    the periodic axes; give them for periodic bulk only (a nanoparticle's vacuum box needs none).
    frame_chunk: frames per torch call (default: chosen to keep each tensor near 32 MB).
    device: "cpu" or "cuda". precision: "float64" or "float32" for the distances (after
    centring each frame); None: float64 on the CPU, float32 on other devices. In float64 every
    distance lands in the bin an exact count gives; in float32 (error ~1e-5 Å) one within that
    of a bin edge may land in the neighbouring bin.
    """
    if mode not in PDF_MODES:
        raise ValueError(f"mode must be one of {PDF_MODES}, got {mode!r}")
    if r_max_A <= 0 or n_bins < 1:
        raise ValueError(f"need r_max_A > 0 and n_bins >= 1, got {r_max_A} and {n_bins}")
    if precision is None:
        precision = "float64" if str(device).startswith("cpu") else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dtype = np.dtype(precision)
    positions = frames_array(positions, "positions")
    n_frames, n_atoms = positions.shape[:2]
    mask_a = _mask(mask_a, n_frames, n_atoms, "mask_a")
    mask_b = _mask(mask_b, n_frames, n_atoms, "mask_b")
    # One pass over the blocks i <= j serves both orders when A and B are the same atoms.
    symmetric = mask_a.shape == mask_b.shape and np.array_equal(mask_a, mask_b)
    dynamic = mask_a.ndim == 2 or mask_b.ndim == 2
    if dynamic:
        mask_a = np.broadcast_to(mask_a, (n_frames, n_atoms))
        mask_b = np.broadcast_to(mask_b, (n_frames, n_atoms))
    n_reference, n_pairs = _normalisers(mask_a, mask_b, n_frames)
    if n_pairs == 0:
        raise ValueError(f"no {label} pairs in any frame: the masks select no distinct A-B pair")

    periodic = _periodic_setup(cell, pbc, n_frames, r_max_A, dtype)
    rows = np.flatnonzero(mask_a.any(axis=0) if dynamic else mask_a)
    cols = rows if symmetric else np.flatnonzero(mask_b.any(axis=0) if dynamic else mask_b)
    row_blocks = _blocks(rows)
    col_blocks = row_blocks if symmetric else _blocks(cols)
    block_pairs = []
    for i, block_i in enumerate(row_blocks):
        for j, block_j in enumerate(col_blocks):
            if symmetric and j < i:
                continue
            block_pairs.append((block_i, block_j, 2.0 if symmetric and j > i else 1.0))
    histogram = (positions, block_pairs, mask_a, mask_b, dynamic, periodic, r_max_A, n_bins)
    if wants_torch(device):
        counts = _torch_pair_counts(*histogram, device=device, dtype=dtype, frame_chunk=frame_chunk)
    else:  # on a CPU NumPy is as fast, without torch's seconds of import
        counts = numpy_pair_counts(*histogram, dtype=dtype)
    edges = np.linspace(0.0, r_max_A, n_bins + 1)
    if mode == "shell":
        shell_volume = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        g = counts / (shell_volume * n_reference)
    else:
        g = counts / n_pairs
    return PairDistribution(
        r_A=0.5 * (edges[1:] + edges[:-1]),
        g=g,
        mode=mode,
        label=label,
        n_frames=n_frames,
        r_max_A=float(r_max_A),
    )


def _torch_pair_counts(
    positions,
    block_pairs,
    mask_a,
    mask_b,
    dynamic,
    periodic,
    r_max_A,
    n_bins,
    *,
    device,
    dtype,
    frame_chunk,
) -> np.ndarray:
    """The A-B pair counts per bin, (n_bins,), through torch on ``device`` in ``dtype``."""
    import torch

    device = torch.device(device)
    dtype = getattr(torch, dtype.name)
    n_frames = positions.shape[0]
    on_device = []
    for block_i, block_j, weight in block_pairs:
        self_pairs = block_i[:, None] == block_j[None, :]
        on_device.append(
            (
                torch.as_tensor(block_i, device=device),
                torch.as_tensor(block_j, device=device),
                torch.as_tensor(self_pairs, device=device) if self_pairs.any() else None,
                weight,
            )
        )
    largest_block = max(len(i) * len(j) for i, j, _ in block_pairs)
    if frame_chunk is None:
        per_frame = largest_block * (6 if periodic else 1)  # minimum image keeps xyz differences
        per_frame *= dtype.itemsize // 4  # the same bytes per chunk in either precision
        frame_chunk = max(1, _CHUNK_DISTANCES // per_frame)
    frames_per_histogram = max(1, 2**24 // largest_block)
    counts = torch.zeros(n_bins, dtype=torch.float64, device=device)
    for start in range(0, n_frames, frame_chunk):
        stop = min(start + frame_chunk, n_frames)
        frames = torch.from_numpy(np.array(positions[start:stop], dtype=np.float64)).to(device)
        # Centring keeps coordinates small, so float32 |x|^2 + |y|^2 - 2xy stays accurate.
        frames = (frames - frames.mean(dim=1, keepdim=True)).to(dtype)
        geometry = periodic.chunk(start, stop, device) if periodic else None
        if dynamic:
            in_a = torch.from_numpy(np.array(mask_a[start:stop])).to(device)
            in_b = torch.from_numpy(np.array(mask_b[start:stop])).to(device)
        for block_i, block_j, self_pairs, weight in on_device:
            distances = _distances(frames[:, block_i], frames[:, block_j], geometry)
            # Pairs that do not count are moved below 0, where histc ignores them.
            if dynamic:
                wanted = in_a[:, block_i, None] & in_b[:, None, block_j]
                distances.masked_fill_(~wanted, -1.0)
            if self_pairs is not None:
                distances.masked_fill_(self_pairs, -1.0)
            # histc counts in the distances' dtype: exact in float32 while one call sees fewer
            # than 2^24 distances.
            for part in distances.split(frames_per_histogram):
                histogram = torch.histc(part, bins=n_bins, min=0.0, max=r_max_A)
                counts += weight * histogram.double()
    return counts.cpu().numpy()


def _mask(mask: np.ndarray | None, n_frames: int, n_atoms: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones(n_atoms, dtype=bool)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"{name} must be a boolean array, got dtype {mask.dtype}")
    if mask.shape not in ((n_atoms,), (n_frames, n_atoms)):
        raise ValueError(
            f"{name} must have shape (atoms,) = ({n_atoms},) or (frames, atoms) = "
            f"({n_frames}, {n_atoms}), got {mask.shape}"
        )
    return mask


def _normalisers(mask_a: np.ndarray, mask_b: np.ndarray, n_frames: int) -> tuple[int, int]:
    """(sum over frames of N_A, sum over frames of ordered A-B pairs without self pairs)."""
    n_a = mask_a.sum(axis=-1, dtype=np.int64)
    n_b = mask_b.sum(axis=-1, dtype=np.int64)
    both = (mask_a & mask_b).sum(axis=-1, dtype=np.int64)
    pairs = n_a * n_b - both
    if mask_a.ndim == 1:
        return int(n_a) * n_frames, int(pairs) * n_frames
    return int(n_a.sum()), int(pairs.sum())


def _blocks(indices: np.ndarray) -> list[np.ndarray]:
    n_blocks = max(1, math.ceil(len(indices) / _BLOCK_ATOMS))
    return [block for block in np.array_split(indices, n_blocks) if len(block)]


class _Periodic:
    """Cell, inverse cell and periodic axes for the minimum-image convention."""

    def __init__(self, cell: np.ndarray, axes: np.ndarray, dtype):
        numpy_dtype = np.float64 if dtype.itemsize == 8 else np.float32
        self.cell = np.array(cell, dtype=numpy_dtype)  # (F, 3, 3)
        self.inverse = np.linalg.inv(cell).astype(numpy_dtype)
        self.axes = np.array(axes, dtype=numpy_dtype)

    def chunk(self, start: int, stop: int, device):
        import torch

        cell = torch.from_numpy(self.cell[start:stop]).to(device)
        inverse = torch.from_numpy(self.inverse[start:stop]).to(device)
        return cell, inverse, torch.from_numpy(self.axes).to(device)


def _periodic_setup(cell, pbc, n_frames: int, r_max_A: float, dtype) -> _Periodic | None:
    if pbc is None or not np.any(pbc):
        return None
    if cell is None:
        raise ValueError("pbc is set but no cell was given: the minimum image needs the cell")
    axes = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape == (3, 3):
        cell = np.broadcast_to(cell, (n_frames, 3, 3))
    if cell.shape != (n_frames, 3, 3):
        raise ValueError(f"cell must be (3, 3) or (frames, 3, 3), got {cell.shape}")
    # The minimum image finds every neighbour only within half the cell's narrowest width.
    volume = np.abs(np.linalg.det(cell))
    for axis in np.flatnonzero(axes):
        other = [k for k in range(3) if k != axis]
        area = np.linalg.norm(np.cross(cell[:, other[0]], cell[:, other[1]]), axis=-1)
        half_width = float(np.min(volume / area)) / 2
        if r_max_A > half_width:
            raise ValueError(
                f"r_max_A = {r_max_A} Å exceeds half the periodic cell's width ({half_width:.3f} Å)"
                " along a periodic axis; use a smaller r_max_A or a larger cell"
            )
    return _Periodic(cell, axes, dtype)


def _distances(xa, xb, geometry):
    """(C, a, b) distances between the atoms of two blocks, minimum image when periodic."""
    import torch

    if geometry is None:
        return torch.cdist(xa, xb)
    cell, inverse, axes = geometry
    difference = xa[:, :, None, :] - xb[:, None, :, :]
    fractional = difference @ inverse[:, None]
    fractional -= torch.round(fractional) * axes
    return torch.linalg.vector_norm(fractional @ cell[:, None], dim=-1)
