"""Where solute atoms sit in a nanoparticle over time: distance from the centre, and the surface."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols

from scalms.analysis._common import Element, element_number, frames_array, present, select_atoms
from scalms.analysis._cpu import surface_trace, wants_torch
from scalms.analysis.results import SoluteTrace

_CHUNK_PROJECTIONS = 2**22
"""Values per frame chunk (projections and positions; 32 MB in float64)."""


def solute_trace(
    positions: np.ndarray,
    masses: np.ndarray,
    numbers: np.ndarray,
    *,
    traced: Element | np.ndarray,
    time_fs: np.ndarray,
    n_surface: int = 5,
    surface_elements: Sequence[Element] = (),
    device: str = "cpu",
) -> SoluteTrace:
    """Distance of each traced atom from the first frame's centre of mass, and the local surface.

    positions: (F, N, 3) Å; masses: (N,) amu; numbers: (N,) atomic numbers; time_fs: (F,).
    traced: an element (symbol or atomic number) or an (N,) boolean mask.
    The origin is the mass-weighted centre of frame 0, kept for every frame, so a drifting
    particle shows as drift. For traced atom s in frame f, with u = (r_s - c0) / |r_s - c0|, the
    surface is the mean of the `n_surface` largest projections (r_i - c0) . u over the candidate
    atoms i: the atoms of `surface_elements`, or all atoms (the traced one included) when empty.
    Both distance_A and surface_A are in Å; the surface is NaN where a traced atom sits exactly
    at the origin (no direction).
    """
    positions = frames_array(positions, "positions")
    n_frames, n_atoms = positions.shape[:2]
    masses = np.asarray(masses, dtype=np.float64)
    numbers = np.asarray(numbers)
    time_fs = np.asarray(time_fs, dtype=np.float64)
    if masses.shape != (n_atoms,) or numbers.shape != (n_atoms,):
        raise ValueError(
            f"masses and numbers need one entry per atom ({n_atoms}), "
            f"got {masses.shape} and {numbers.shape}"
        )
    if time_fs.shape != (n_frames,):
        raise ValueError(f"time_fs needs one entry per frame ({n_frames}), got {time_fs.shape}")
    indices, symbol = select_atoms(numbers, traced)

    surface_numbers = [element_number(element) for element in surface_elements]
    if surface_numbers:
        candidates = np.flatnonzero(np.isin(numbers, surface_numbers))
        if candidates.size == 0:
            names = ", ".join(chemical_symbols[z] for z in surface_numbers)
            raise ValueError(
                f"no atoms of the surface elements ({names}); elements present: {present(numbers)}"
            )
    else:
        candidates = np.arange(n_atoms)
    if not 1 <= n_surface <= candidates.size:
        raise ValueError(
            f"n_surface must be between 1 and the {candidates.size} candidate surface atoms, "
            f"got {n_surface}"
        )

    centre = masses @ positions[0] / masses.sum()
    if wants_torch(device):
        distance, surface = _torch_trace(positions, centre, indices, candidates, n_surface, device)
    else:  # on a CPU NumPy is as fast, without torch's seconds of import
        distance, surface = surface_trace(positions, centre, indices, candidates, n_surface)
    return SoluteTrace(
        time_fs=time_fs,
        indices=indices,
        distance_A=distance,
        surface_A=surface,
        symbol=symbol,
        n_surface=n_surface,
        surface_elements=tuple(chemical_symbols[z] for z in surface_numbers),
        n_atoms=n_atoms,
    )


def _torch_trace(positions, centre, indices, candidates, n_surface: int, device: str):
    """The distances and surfaces of `solute_trace`, (F, S) each in Å, through torch."""
    import torch

    n_frames, n_atoms = positions.shape[:2]
    distance = np.empty((n_frames, indices.size))
    surface = np.empty((n_frames, indices.size))
    device = torch.device(device)
    # per frame: the projections, and the frame's positions relative to the centre
    frame_chunk = max(1, _CHUNK_PROJECTIONS // ((indices.size + 3) * n_atoms))
    candidates_t = torch.as_tensor(candidates, device=device)
    indices_t = torch.as_tensor(indices, device=device)
    for start in range(0, n_frames, frame_chunk):
        stop = min(start + frame_chunk, n_frames)
        relative = torch.from_numpy(np.array(positions[start:stop] - centre, dtype=np.float64))
        relative = relative.to(device)
        solute = relative[:, indices_t]  # (C, S, 3)
        length = torch.linalg.vector_norm(solute, dim=-1)  # (C, S)
        direction = solute / length[..., None]  # NaN at the origin, which is what we report
        projection = direction @ relative[:, candidates_t].transpose(1, 2)  # (C, S, candidates)
        furthest = torch.topk(projection, n_surface, dim=-1).values
        distance[start:stop] = length.cpu().numpy()
        surface[start:stop] = furthest.mean(dim=-1).cpu().numpy()
    return distance, surface
