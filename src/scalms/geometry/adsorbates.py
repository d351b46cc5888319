"""Molecules placed around a roughly spherical nanoparticle, none closer than a set distance.

The particle's radius is the mean distance from its centre of mass of its ``n_radius_atoms``
furthest atoms. Each molecule is tried along a random direction: its centre starts
``distance_from_radius_A`` beyond the radius and steps ``distance_increment_A`` further out while
any of its atoms comes closer than ``min_distance_A`` to an atom already there, for at most
``max_attempts`` positions; then a new direction is drawn. After ``max_directions`` failed
directions the surface counts as saturated and placement of that molecule stops, so a run
always ends and says how many molecules it placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError


@dataclass(frozen=True)
class PlacementSettings:
    """Distances in Å; the thesis's defaults, tuned for propane."""

    distance_from_radius_A: float = 2.0
    min_distance_A: float = 2.0
    max_attempts: int = 10
    distance_increment_A: float = 0.5
    n_radius_atoms: int = 10
    random_orientation: bool = True
    max_directions: int = 200
    vacuum_A: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in ("distance_from_radius_A", "distance_increment_A", "vacuum_A"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.min_distance_A <= 0:
            problems.append("min_distance_A must be positive")
        for name in ("max_attempts", "n_radius_atoms", "max_directions"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if problems:
            raise ScalmsError("; ".join(problems))


@dataclass
class Placement:
    """The particle with its molecules, and how many of each kind were asked for and placed."""

    atoms: Atoms
    radius_A: float
    requested: dict[str, int]
    placed: dict[str, int] = field(default_factory=dict)

    @property
    def saturated(self) -> bool:
        return any(self.placed[name] < n for name, n in self.requested.items())


def load_molecule(spec: str) -> tuple[str, Atoms]:
    """A molecule by name (ASE's g2 set: propane, methane, ethylene, H2, ...) or from a file."""
    from ase.build import molecule as ase_molecule
    from ase.collections import g2

    path = Path(spec)
    if path.suffix and path.is_file():
        from scalms.io.structures import read_frames

        return path.stem, read_frames(path)[-1]
    aliases = {"propane": "C3H8", "ethane": "C2H6", "methane": "CH4", "propene": "C3H6_Cs"}
    name = aliases.get(spec.lower(), spec)
    if name not in g2.names:
        raise ScalmsError(
            f"unknown molecule '{spec}': give a structure file or a name from ASE's g2 set "
            "(propane, methane, ethane, C3H8, H2O, ...)"
        )
    return spec.lower() if spec.lower() in aliases else spec, ase_molecule(name)


def split_evenly(total: int, kinds: list[str]) -> dict[str, int]:
    """``total`` molecules shared over ``kinds``; the first kinds take the remainder."""
    base, extra = divmod(total, len(kinds))
    return {kind: base + (i < extra) for i, kind in enumerate(kinds)}


def particle_radius(positions: np.ndarray, masses: np.ndarray, n_furthest: int) -> float:
    """Mean distance from the centre of mass of the ``n_furthest`` outermost atoms."""
    com = masses @ positions / masses.sum()
    distances = np.sort(np.linalg.norm(positions - com, axis=1))
    return float(distances[-min(n_furthest, len(distances)) :].mean())


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (scipy's Rotation.random)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_matrix()


def place_molecules(
    particle: Atoms,
    molecules: list[tuple[str, Atoms]],
    count: int,
    settings: PlacementSettings = PlacementSettings(),
) -> Placement:
    """Place ``count`` molecules, shared evenly over the kinds in ``molecules``, around
    ``particle``. Returns the combined system with tags 0 for the particle and 1, 2, ... for
    each molecule, in a box with ``vacuum_A`` around everything and no periodicity."""
    if count < 0:
        raise ScalmsError(f"the number of molecules must not be negative, got {count}")
    if not molecules:
        raise ScalmsError("no molecules given")
    names = [name for name, _ in molecules]
    if len(set(names)) != len(names):
        raise ScalmsError(f"a molecule is listed twice: {names}")
    rng = np.random.default_rng(settings.seed)
    masses = particle.get_masses()
    com = masses @ particle.positions / masses.sum()
    radius = particle_radius(particle.positions, masses, settings.n_radius_atoms)
    placement = Placement(particle.copy(), radius, split_evenly(count, names))
    placement.atoms.set_tags(0)
    occupied = [particle.positions]
    tag = 1
    for name, template in molecules:
        centred = template.positions - template.get_center_of_mass()
        placement.placed[name] = 0
        for _ in range(placement.requested[name]):
            positions = _place_one(centred, com, radius, np.vstack(occupied), settings, rng)
            if positions is None:  # the surface is saturated for this molecule
                break
            piece = template.copy()
            piece.positions = positions
            piece.set_tags(tag)
            placement.atoms += piece
            occupied.append(positions)
            placement.placed[name] += 1
            tag += 1
    placement.atoms.pbc = False
    placement.atoms.center(vacuum=settings.vacuum_A)
    return placement


def _place_one(centred, com, radius, occupied, settings: PlacementSettings, rng):
    """Positions of one molecule clear of ``occupied``, or None when every direction failed."""
    for _ in range(settings.max_directions):
        direction = _random_direction(rng)
        shape = centred @ _random_rotation(rng).T if settings.random_orientation else centred
        for attempt in range(settings.max_attempts):
            distance = radius + settings.distance_from_radius_A
            distance += attempt * settings.distance_increment_A
            positions = shape + com + distance * direction
            gaps = np.linalg.norm(positions[:, None, :] - occupied[None, :, :], axis=-1)
            if gaps.min() >= settings.min_distance_A:
                return positions
    return None
