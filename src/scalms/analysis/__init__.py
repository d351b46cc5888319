"""Analyses of MD trajectories: pure functions, arrays in and result records out.

The functions take arrays (numpy, or torch tensors) so they serve any source; the `*_of`
conveniences take a `scalms.trajectory.Trajectory` and pass its arrays along. Nothing here reads
or writes files or plots. Definitions and units: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from scalms.analysis._common import Element
from scalms.analysis.diffusion import (
    centre_of_mass_drift,
    fit_diffusion,
    mean_squared_displacement,
    msd_direct,
    msd_fft,
    remove_centre_of_mass_drift,
    unwrap_positions,
)
from scalms.analysis.net_force import net_force
from scalms.analysis.pdf import pair_distribution, parse_pair, partial_pair_distribution
from scalms.analysis.results import (
    DiffusionFit,
    MeanSquaredDisplacement,
    NetForce,
    PairDistribution,
    SoluteTrace,
)
from scalms.analysis.trace import solute_trace

if TYPE_CHECKING:
    from scalms.trajectory import Trajectory

__all__ = [
    "DiffusionFit",
    "MeanSquaredDisplacement",
    "NetForce",
    "PairDistribution",
    "SoluteTrace",
    "centre_of_mass_drift",
    "fit_diffusion",
    "mean_squared_displacement",
    "msd_direct",
    "msd_fft",
    "msd_of",
    "net_force",
    "net_force_of",
    "pair_distribution",
    "parse_pair",
    "partial_pair_distribution",
    "pdf_of",
    "remove_centre_of_mass_drift",
    "solute_trace",
    "trace_of",
    "unwrap_positions",
]


def pdf_of(
    trajectory: Trajectory, pair: str | tuple[Element, Element] | None = None, **kwargs
) -> PairDistribution:
    """The full PDF of a run (pair None) or the partial one of `pair` ("Pt-Ga", "78-31", tuple).

    The minimum image is used only along the run's periodic axes. Other keyword arguments
    (r_max_A, n_bins, mode, frame_chunk, device, mask_a/mask_b for the full PDF) go to
    `pair_distribution`.
    """
    kwargs.setdefault("cell", trajectory.cell)
    kwargs.setdefault("pbc", trajectory.pbc)
    if pair is None:
        return pair_distribution(trajectory.positions, **kwargs)
    return partial_pair_distribution(trajectory.positions, trajectory.numbers, pair, **kwargs)


def trace_of(
    trajectory: Trajectory,
    element: Element,
    *,
    n_surface: int = 5,
    surface_elements: Sequence[Element] = (),
    device: str = "cpu",
) -> SoluteTrace:
    """Trace of the atoms of `element` from the first frame's centre of mass (`solute_trace`)."""
    return solute_trace(
        trajectory.positions,
        trajectory.masses,
        trajectory.numbers,
        traced=element,
        time_fs=trajectory.time_fs,
        n_surface=n_surface,
        surface_elements=surface_elements,
        device=device,
    )


def msd_of(
    trajectory: Trajectory, element: Element | np.ndarray, **kwargs
) -> MeanSquaredDisplacement:
    """MSD and diffusion coefficient of the atoms of `element` ("all", a mask) in a run.

    Along periodic axes the positions are unwrapped first (`unwrap_positions`, correct when the
    cell changes too). By default the displacement of the run's centre of mass (all atoms,
    weighted by their masses) is removed; `remove_drift=False` keeps it. Other keyword arguments
    go to `mean_squared_displacement`.
    """
    positions = trajectory.positions
    if trajectory.pbc.any():
        positions = unwrap_positions(positions, trajectory.cell, trajectory.pbc)
    return mean_squared_displacement(
        positions,
        frame_interval_fs=trajectory.frame_interval_fs,
        numbers=trajectory.numbers,
        traced=element,
        masses=trajectory.masses,
        **kwargs,
    )


def net_force_of(trajectory: Trajectory) -> NetForce:
    """Net force per frame of a run that saved its forces."""
    if trajectory.forces is None:
        raise ValueError(
            f"the run {trajectory.model}/{trajectory.structure} saved no forces, "
            "so its net force is unknown"
        )
    return net_force(trajectory.forces, trajectory.time_fs)
