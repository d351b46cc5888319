"""Test structures, tolerances and helpers shared by the test suite and by users' own checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.cluster import Icosahedron

from scalms.files import atomic_write_text

ENERGY_PER_ATOM_TOL_EV = 1e-4
"""TorchSim and ASE energies of the same model and frame must agree to this, per atom."""
FORCE_TOL_EV_PER_A = 1e-3
"""... and their forces to this, per component."""

GA_FCC_LATTICE_A = 3.9
"""fcc lattice constant giving the ~2.75 Å Ga-Ga distance (gallium itself is orthorhombic)."""


def ga_cluster(
    shells: int = 3,
    solute: str = "Pt",
    n_solute: int = 1,
    seed: int = 0,
    box_A: float = 40.0,
    rattle_A: float = 0.0,
) -> Atoms:
    """An icosahedral Ga cluster with ``n_solute`` random sites swapped to ``solute``, centred
    in a cubic vacuum box without periodicity (55 atoms for 3 shells, 147 for 4)."""
    atoms = Icosahedron("Ga", noshells=shells, latticeconstant=GA_FCC_LATTICE_A)
    rng = np.random.default_rng(seed)
    sites = rng.choice(len(atoms), size=n_solute, replace=False)
    atoms.symbols[sites] = solute
    atoms.set_cell([box_A] * 3)
    atoms.center()
    atoms.pbc = False
    if rattle_A:
        atoms.rattle(stdev=rattle_A, seed=seed)
    return atoms


def ga_bulk(repeat: int = 2, rattle_A: float = 0.05, seed: int = 0) -> Atoms:
    """A periodic fcc Ga-like cell (a stand-in for liquid bulk in tests), slightly rattled."""
    atoms = bulk("Ga", "fcc", a=GA_FCC_LATTICE_A, cubic=True).repeat(repeat)
    atoms.rattle(stdev=rattle_A, seed=seed)
    return atoms


def write_model_config(folder: Path, text: str, name: str = "model_config.yaml") -> Path:
    """Write a model config for a test and return its path."""
    return atomic_write_text(Path(folder) / name, text)


def write_jiggling_run(
    path: Path,
    atoms: Atoms | None = None,
    *,
    n_frames: int = 6,
    time_step_fs: float = 2.0,
    save_interval: int = 5,
    jiggle_A: float = 0.1,
    random_walk: bool = False,
    velocities: bool = True,
    model: str = "lj",
    structure: str = "c",
    seed: int = 0,
) -> Path:
    """A complete H5MD run of ``atoms`` (default :func:`ga_cluster`) whose atoms move by a normal
    ``jiggle_A`` per frame around their sites, or step by it as a random walk; zero forces and
    velocities, potential energy -1 eV. For analyses and readers that need a run without MD."""
    from scalms.io.trajectory import TrajectoryWriter

    atoms = ga_cluster() if atoms is None else atoms
    rng = np.random.default_rng(seed)
    with TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=time_step_fs,
        save_interval=save_interval,
        model=model,
        structure=structure,
        parameters={},
        target_step=save_interval * (n_frames - 1),
        velocities=velocities,
    ) as writer:
        positions = atoms.positions.copy()
        for i in range(n_frames):
            moved = rng.normal(scale=jiggle_A, size=positions.shape)
            if random_walk:
                positions += moved
                frame = positions
            else:
                frame = atoms.positions + moved
            writer.append(
                step=save_interval * i,
                positions=frame,
                cell=atoms.cell.array,
                velocities=np.zeros_like(frame) if velocities else None,
                forces=np.zeros_like(frame),
                potential_energy=-1.0,
            )
        writer.mark_complete()
    return Path(path)
