"""Reference labels: a frame's energy and forces from any calculator, checked and stored.

A *labeller* computes one frame at a time. The DFT codes (``scalms.hpc.dft``) and MLIPs (an ASE
calculator inside the model's own environment) share this interface, so the rattle loop, the E0
job and the DFT-settings benchmark do not care which one labels.

Stored frames carry the reference under the keys MACE and ``scalms benchmark accuracy`` read:
``info["REF_energy"]`` (eV) and ``arrays["REF_forces"]`` (eV/Å), plus ``config_type``, the
labeller's settings (``calc_*`` keys) and the timing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"

InfoValue = str | int | float | bool


class SCFNotConverged(ScalmsError):
    """The DFT code's self-consistent field did not converge: the frame is refused, never stored."""


@dataclass
class Label:
    """One frame's reference: energy (eV), forces (eV/Å, one row per atom), wall time (s), SCF
    steps (DFT only) and anything else the code reports worth keeping (flat ``info`` values)."""

    energy_eV: float
    forces_eV_per_A: np.ndarray
    wall_s: float
    scf_steps: int | None = None
    extra: dict[str, InfoValue] = field(default_factory=dict)


class Labeller(Protocol):
    """What computes labels. ``name`` is the code or model name (``cp2k``, ``7net-0``)."""

    name: str

    def describe(self) -> dict[str, InfoValue]:
        """The settings that made the labels (cutoff, functional, spin...), flat, for ``info``."""
        ...

    def check(self, atoms: Atoms) -> None:
        """Raise :class:`ScalmsError` (one line) before any work when ``atoms`` cannot be
        labelled here: program missing, basis/POTCAR/pseudopotential missing, element unknown."""
        ...

    def calculator(self):
        """An ASE calculator with the same settings, for a BFGS pre-convergence."""
        ...

    def label(self, atoms: Atoms) -> Label:
        """Energy and forces of ``atoms`` (not modified); :class:`SCFNotConverged` if refused."""
        ...

    def close(self) -> None:
        """Stop whatever the labeller keeps running (a CP2K shell)."""
        ...


class CalculatorLabeller:
    """Labels from a plain ASE calculator: an MLIP in its child, or a classical potential."""

    def __init__(self, name: str, calculator, settings: dict[str, InfoValue] | None = None):
        self.name = name
        self._calculator = calculator
        self._settings = dict(settings or {})

    def describe(self) -> dict[str, InfoValue]:
        return dict(self._settings)

    def check(self, atoms: Atoms) -> None:
        pass  # the model's own element check runs where the model is loaded

    def calculator(self):
        return self._calculator

    def label(self, atoms: Atoms) -> Label:
        work = atoms.copy()
        work.calc = self._calculator
        started = time.perf_counter()
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
        return Label(energy, forces, time.perf_counter() - started)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ForceSummary:
    """What the thesis logged per rattled frame to tune the rattle amplitude."""

    energy_eV: float
    mean_abs_force_eV_per_A: float
    mean_force_eV_per_A: tuple[float, float, float]
    max_force_eV_per_A: float
    net_force_eV_per_A: float
    """|sum of the forces|: about zero for a consistent calculation (thesis Appendix B)."""
    wall_s: float

    def line(self) -> str:
        mean = ", ".join(f"{v:+.3f}" for v in self.mean_force_eV_per_A)
        return (
            f"E {self.energy_eV:.4f} eV, mean |F| {self.mean_abs_force_eV_per_A:.3f}, "
            f"mean F ({mean}), max |F| {self.max_force_eV_per_A:.3f}, "
            f"net |ΣF| {self.net_force_eV_per_A:.4f} eV/Å, {self.wall_s:.1f} s"
        )


def summarize(label: Label) -> ForceSummary:
    forces = np.asarray(label.forces_eV_per_A, dtype=float)
    norms = np.linalg.norm(forces, axis=1)
    return ForceSummary(
        energy_eV=float(label.energy_eV),
        mean_abs_force_eV_per_A=float(norms.mean()),
        mean_force_eV_per_A=tuple(float(v) for v in forces.mean(axis=0)),
        max_force_eV_per_A=float(norms.max()),
        net_force_eV_per_A=float(np.linalg.norm(forces.sum(axis=0))),
        wall_s=float(label.wall_s),
    )


def labelled_frame(
    atoms: Atoms,
    label: Label,
    labeller_name: str,
    settings: dict[str, InfoValue],
    config_type: str,
    **info: InfoValue,
) -> Atoms:
    """A copy of ``atoms`` (no calculator) with the reference stored under the MACE keys and
    how it was made in ``info``: ``config_type``, ``calc_name``, ``calc_<setting>``,
    ``wall_time_s``, ``scf_steps`` (DFT), ``net_force_eV_per_A`` and any ``info`` given."""
    frame = atoms.copy()
    frame.calc = None
    frame.info[ENERGY_KEY] = float(label.energy_eV)
    frame.arrays[FORCES_KEY] = np.asarray(label.forces_eV_per_A, dtype=float).copy()
    frame.info["config_type"] = config_type
    frame.info["calc_name"] = labeller_name
    for key, value in settings.items():
        frame.info[f"calc_{key}"] = value
    frame.info["wall_time_s"] = float(label.wall_s)
    if label.scf_steps is not None:
        frame.info["scf_steps"] = int(label.scf_steps)
    frame.info["net_force_eV_per_A"] = summarize(label).net_force_eV_per_A
    frame.info.update(label.extra)
    frame.info.update(info)
    return frame
