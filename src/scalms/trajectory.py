"""The in-memory form of one MD run: what readers return and analyses, plots and exports take.

Units are ASE's metal units with time in femtoseconds: positions and cell in Å, velocities in
Å/fs, forces in eV/Å, energies in eV, masses in amu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ase.data import chemical_symbols


@dataclass(frozen=True)
class Trajectory:
    """Frames of one (model, structure) run, in the order they were saved.

    `positions`, `cell`, `step` and `time_fs` are always there; the per-frame observables are
    None when the run did not save them.
    """

    positions: np.ndarray  # (F, N, 3) Å
    numbers: np.ndarray  # (N,) atomic numbers
    masses: np.ndarray  # (N,) amu
    cell: np.ndarray  # (F, 3, 3) Å
    pbc: np.ndarray  # (3,) bool
    step: np.ndarray  # (F,) MD step of each frame
    time_fs: np.ndarray  # (F,) simulated time of each frame
    time_step_fs: float  # NaN when unknown (a file of another code that does not say)
    save_interval: int  # MD steps between saved frames
    velocities: np.ndarray | None = None  # (F, N, 3) Å/fs
    forces: np.ndarray | None = None  # (F, N, 3) eV/Å
    potential_energy: np.ndarray | None = None  # (F,) eV
    kinetic_energy: np.ndarray | None = None  # (F,) eV
    temperature_K: np.ndarray | None = None  # (F,)
    model: str = ""
    structure: str = ""
    complete: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)  # run parameters, software versions

    def __post_init__(self) -> None:
        n_frames, n_atoms = self.positions.shape[:2]
        if self.positions.shape != (n_frames, n_atoms, 3):
            raise ValueError(f"positions must be (frames, atoms, 3), got {self.positions.shape}")
        for name in ("numbers", "masses"):
            if len(getattr(self, name)) != n_atoms:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries for {n_atoms} atoms"
                )
        for name in ("cell", "step", "time_fs"):
            if len(getattr(self, name)) != n_frames:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} frames, positions {n_frames}"
                )

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.numbers]

    @property
    def frame_interval_fs(self) -> float:
        """Simulated time between two saved frames (NaN when the time step is unknown)."""
        return self.time_step_fs * self.save_interval

    @property
    def has_time(self) -> bool:
        """Whether the time between frames is known: the MSD and time plots need it."""
        return math.isfinite(self.time_step_fs) and self.time_step_fs > 0

    def select(self, frames: slice | np.ndarray) -> Trajectory:
        """A trajectory of the chosen frames only (`slice(n // 2, None)`: the second half)."""
        per_frame = (
            "positions",
            "cell",
            "step",
            "time_fs",
            "velocities",
            "forces",
            "potential_energy",
            "kinetic_energy",
            "temperature_K",
        )
        changes = {
            name: getattr(self, name)[frames]
            for name in per_frame
            if getattr(self, name) is not None
        }
        return replace(self, **changes)

    def atoms(self, frame: int = -1):
        """Frame `frame` as an ASE Atoms, with energy and forces attached when saved."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(
            numbers=self.numbers,
            positions=self.positions[frame],
            cell=self.cell[frame],
            pbc=self.pbc,
            masses=self.masses,
        )
        if self.velocities is not None:
            # ASE velocities are in Å per ASE time unit; ours are Å/fs.
            from ase.units import fs

            atoms.set_velocities(self.velocities[frame] / fs)
        results = {}
        if self.potential_energy is not None:
            results["energy"] = float(self.potential_energy[frame])
        if self.forces is not None:
            results["forces"] = self.forces[frame]
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms
