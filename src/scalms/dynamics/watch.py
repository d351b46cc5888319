"""Blow-up watch: the signs that an MD run has left physics, checked on every saved frame.

A run whose atoms overlap, or whose time step is too long for its forces, ends in NaN or in
temperatures of 1e15 K within a few steps; a frame like that must stop its run (the frames before
it are kept) instead of being saved as a finished result. The limits are the
``max_force_eV_per_A`` and ``max_temperature_K`` of :class:`~scalms.dynamics.settings.MDSettings`.
Pure numpy; the TorchSim engine runs the same tests on its batch tensors.
"""

from __future__ import annotations

import numpy as np

from scalms.dynamics.settings import MDSettings


def describe(step: int, what: str) -> str:
    """The message a stopped run carries: where and why."""
    return (
        f"blew up at step {step}: {what}; the frames before it are kept (a shorter time step, "
        "or a structure without overlapping atoms, avoids it)"
    )


def frame_problem(
    positions: np.ndarray,
    forces: np.ndarray,
    potential_energy: float,
    temperature_K: float,
    settings: MDSettings,
) -> str:
    """Why one frame is not physical ("" when it is). Positions Å, forces eV/Å, energy eV."""
    if not np.isfinite(positions).all():
        return "non-finite positions"
    if not np.isfinite(forces).all():
        return "non-finite forces"
    if not np.isfinite(potential_energy):
        return "non-finite energy"
    largest = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0
    if largest > settings.max_force_eV_per_A:
        return (
            f"a force of {largest:.3g} eV/Å, past the limit of {settings.max_force_eV_per_A:g} "
            "eV/Å (--max-force-eV-per-A)"
        )
    if not np.isfinite(temperature_K) or temperature_K > settings.max_temperature_K:
        return (
            f"a temperature of {temperature_K:.3g} K, past the limit of "
            f"{settings.max_temperature_K:g} K (--max-temperature-K)"
        )
    return ""
