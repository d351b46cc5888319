"""Wulff construction on any crystal lattice: the atoms of a bulk crystal inside the Wulff shape.

The Wulff shape of surface energies gamma_j on facet normals n_j is the polyhedron
{r : n_j . r <= lambda * gamma_j for every j}. Each lattice site r therefore enters the particle at
its own scale lambda(r) = max_j (n_j . r) / gamma_j, so sorting the sites by lambda(r) orders them
by when a growing Wulff shape takes them in, and every atom count the crystal allows is a prefix
of that order. The construction picks the allowed count closest to the target (or the nearest
above or below), which makes the reported count exact and the result deterministic.

Unlike ASE's ``wulff_construction`` (cubic and hexagonal lattices, one layer count per facet)
this works on any lattice, alpha-Ga's base-centred orthorhombic one included. spglib gives the
crystal's point group, which turns each listed facet into its family; scipy's half-space
intersection gives the polyhedron, its facets' area fractions and its circumradius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.geometry.crystals import SurfaceEnergies

ROUNDING = ("closest", "above", "below")
_SCALE_DECIMALS = (
    9  # sites whose scales agree to this many decimals (symmetry twins) enter together
)


@dataclass(frozen=True)
class Facet:
    """One facet family on the Wulff shape."""

    miller: tuple[int, int, int]
    energy_J_per_m2: float
    area_fraction: float  # of the shape's surface; 0 for a family the shape does not show


@dataclass(frozen=True)
class WulffParticle:
    """A crystalline particle cut from a bulk crystal, centred on the origin of its cell."""

    atoms: Atoms
    target_atoms: int
    facets: tuple[Facet, ...]
    surface_energies: SurfaceEnergies

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def equivalent_millers(bulk: Atoms, miller: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The Miller indices of every facet symmetry-equivalent to ``miller`` in ``bulk``.

    spglib's rotations act on fractional coordinates (x' = W x); a plane h . x = d is carried to
    h W^-1 . x' = d, and over a whole group the set {h W} is the same as {h W^-1}.
    """
    import warnings

    import spglib

    cell = (bulk.cell[:], bulk.get_scaled_positions(), bulk.numbers)
    with warnings.catch_warnings():  # spglib 2.5+ warns about its error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        symmetry = spglib.get_symmetry(cell, symprec=1e-3)
    if symmetry is None:
        raise ScalmsError("spglib could not find the symmetry of the bulk crystal")
    h = np.asarray(miller)
    return sorted({tuple(int(i) for i in h @ w) for w in symmetry["rotations"]})


def _planes(bulk: Atoms, energies: SurfaceEnergies):
    """Unit normals (Cartesian), surface energies and family index of every facet plane."""
    reciprocal = np.linalg.inv(bulk.cell[:]).T  # rows: reciprocal vectors without the 2 pi
    normals, gammas, family = [], [], []
    for index, (miller, gamma) in enumerate(energies.energies_J_per_m2.items()):
        for equivalent in equivalent_millers(bulk, miller):
            normal = np.asarray(equivalent) @ reciprocal
            normals.append(normal / np.linalg.norm(normal))
            gammas.append(gamma)
            family.append(index)
    return np.array(normals), np.array(gammas), np.array(family)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = np.pi * (1 + 5**0.5) * i
    return np.stack(
        [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1
    )


def _shape(normals: np.ndarray, gammas: np.ndarray, family: np.ndarray, n_families: int):
    """Circumradius at unit scale and the area fraction of each family."""
    from scipy.spatial import ConvexHull, HalfspaceIntersection, QhullError

    unbounded = ScalmsError(
        "these facets do not enclose a particle (some direction meets none of them); "
        "add facets facing the other directions"
    )
    # Bounded only if every direction meets some facet at a finite distance: the normals must
    # surround the origin (a direction almost parallel to every facet runs out of the shape).
    if np.min(np.max(_fibonacci_sphere(4000) @ normals.T, axis=1)) <= 1e-2:
        raise unbounded
    halfspaces = np.hstack([normals, -gammas[:, None]])  # n . r - gamma <= 0
    try:
        vertices = HalfspaceIntersection(halfspaces, np.zeros(3)).intersections
        hull = ConvexHull(vertices)
    except QhullError:
        raise unbounded from None
    areas = np.zeros(n_families)
    for simplex, equation in zip(hull.simplices, hull.equations, strict=True):
        a, b, c = vertices[simplex]
        plane = int(np.argmax(normals @ equation[:3]))  # the facet this triangle lies on
        areas[family[plane]] += 0.5 * np.linalg.norm(np.cross(b - a, c - a))
    return float(np.max(np.linalg.norm(vertices, axis=1))), areas / areas.sum()


def _sites_within(bulk: Atoms, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and numbers of the crystal's sites within ``radius`` of its cell origin."""
    cell = bulk.cell[:]
    # Repeats along each axis: the sphere's extent divided by the spacing of the lattice planes.
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)
    reach = np.ceil(radius / spacing).astype(int) + 1
    grid = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    positions = (grid @ cell)[:, None, :] + bulk.positions[None, :, :]
    numbers = np.broadcast_to(bulk.numbers, positions.shape[:2])
    positions, numbers = positions.reshape(-1, 3), numbers.reshape(-1)
    inside = np.linalg.norm(positions, axis=1) <= radius
    return positions[inside], numbers[inside]


def _pick_count(scales: np.ndarray, target: int, rounding: str) -> int:
    """The number of sites (a prefix of the sorted scales) closest to ``target``."""
    rounded = np.round(scales, _SCALE_DECIMALS)
    # Allowed counts: a shell of equal scales enters whole.
    allowed = np.flatnonzero(np.diff(rounded)) + 1
    allowed = np.append(allowed, len(rounded))
    if rounding == "above":
        candidates = allowed[allowed >= target]
        return int(candidates[0]) if len(candidates) else int(allowed[-1])
    if rounding == "below":
        candidates = allowed[allowed <= target]
        return int(candidates[-1]) if len(candidates) else int(allowed[0])
    return int(allowed[np.argmin(np.abs(allowed - target))])


def wulff_particle(
    bulk: Atoms,
    energies: SurfaceEnergies,
    target_atoms: int,
    rounding: str = "closest",
) -> WulffParticle:
    """The crystalline particle of ``bulk`` with the Wulff shape of ``energies`` whose atom
    count is the one the crystal allows closest to ``target_atoms`` (or the nearest ``above`` or
    ``below`` it). The shape is centred on the origin of the conventional cell (an atom for
    fcc, an inversion centre for alpha-Ga); positions are returned around (0, 0, 0)."""
    if target_atoms < 1:
        raise ScalmsError(f"a particle needs at least 1 atom, not {target_atoms}")
    if rounding not in ROUNDING:
        raise ScalmsError(f"unknown rounding '{rounding}'; choose one of {ROUNDING}")
    normals, gammas, family = _planes(bulk, energies)
    n_families = len(energies.energies_J_per_m2)
    circumradius, fractions = _shape(normals, gammas, family, n_families)
    # First guess: the sphere holding twice the target's volume, grown until the chosen shape
    # lies inside the sites generated (so no site it should hold is missing).
    volume_per_atom = bulk.get_volume() / len(bulk)
    radius = (3 * 2 * target_atoms * volume_per_atom / (4 * np.pi)) ** (1 / 3) + 3.0
    while True:
        positions, numbers = _sites_within(bulk, radius)
        scales = np.max(positions @ normals.T / gammas, axis=1)
        order = np.argsort(scales, kind="stable")
        count = _pick_count(scales[order], target_atoms, rounding)
        if count < len(order) and scales[order][count - 1] * circumradius < radius:
            break
        radius *= 1.5
    chosen = order[:count]
    atoms = Atoms(numbers=numbers[chosen], positions=positions[chosen])
    facets = tuple(
        Facet(miller, gamma, float(fraction))
        for (miller, gamma), fraction in zip(
            energies.energies_J_per_m2.items(), fractions, strict=True
        )
    )
    return WulffParticle(atoms, target_atoms, facets, energies)
