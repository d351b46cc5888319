"""What a geometry run builds, decided before anything is written: the crystals to melt (or
keep), every structure the run gives, and whether they fit in this machine's memory.

Pure: Atoms and records in, Atoms and records out; no file is read or written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.geometry.alloy import formula_label, substitute
from scalms.geometry.crystals import SurfaceEnergies

ORDERS = ("before", "after")
CUT_BYTES_PER_ATOM = 1500
"""Peak memory of a Wulff cut per target atom, bytes: about 1,000 measured (the lattice sites of
a sphere of twice the particle's volume, their scales and sort order), with a margin."""
CELL_BYTES_PER_ATOM = 500
"""Peak memory of a repeated bulk cell per atom, bytes (positions, numbers, copies while it is
alloyed and written), with a margin."""
MEMORY_SHARE = 0.5
"""Share of the memory free now that one structure may take: the rest is for the writer, the
MD that follows, and the other programs of the machine."""


@dataclass(frozen=True)
class SoluteRequest:
    """Solute elements, one structure each, as a fraction of the host atoms or a count."""

    elements: tuple[str, ...] = ()
    fraction: float | None = None
    count: int | None = None
    order: str = "before"
    host: str = "Ga"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ScalmsError(f"unknown order '{self.order}'; use before or after")
        if self.elements and (self.fraction is None) == (self.count is None):
            raise ScalmsError("with --solute give either --fraction or --count")
        if len(set(self.elements)) != len(self.elements):
            raise ScalmsError(f"a solute is listed twice: {list(self.elements)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoluteRequest:
        return cls(**{**data, "elements": tuple(data["elements"])})

    def apply(self, atoms: Atoms, element: str, seed: int) -> Atoms:
        return substitute(
            atoms, element, fraction=self.fraction, count=self.count, host=self.host, seed=seed
        )


@dataclass
class Particle:
    """One structure of the run: where it came from and what became of it."""

    label: str
    target_atoms: int | None  # None for bulk cells
    n_atoms: int
    composition: str
    solute: str | None = None
    melted_from: str | None = None  # for solutes added after: the melted host structure
    facets: dict[str, float] = field(default_factory=dict)  # Miller -> area fraction
    check: dict[str, Any] | None = None
    final: str | None = None  # path of the final structure, once written


def available_memory_bytes() -> int:
    """Memory the machine has free now (RAM not in use, page cache counted as free)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(n_atoms: int, bytes_per_atom: int, what: str, available: int | None = None) -> None:
    """Refuse a structure of ``n_atoms`` whose construction would need more than its share of
    the free memory, before any of it is built: a request of 10^8 atoms fails with the numbers
    at once instead of filling the memory until the kernel kills the command."""
    available = available_memory_bytes() if available is None else available
    needed = n_atoms * bytes_per_atom
    allowed = MEMORY_SHARE * available
    if needed > allowed:
        largest = int(allowed // bytes_per_atom)
        raise ScalmsError(
            f"{what} of {n_atoms:,} atoms needs about {needed / 1e9:.1f} GB of memory to build, "
            f"and {available / 1e9:.1f} GB is free here: ask for at most about {largest:,} atoms"
        )


def in_vacuum(atoms: Atoms, vacuum_A: float) -> Atoms:
    """A copy centred in a box with ``vacuum_A`` on every side, without periodicity."""
    boxed = atoms.copy()
    boxed.pbc = False
    boxed.center(vacuum=vacuum_A)
    return boxed


def _unique_label(label: str, taken: set[str]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label}_{n}", n + 1
    return candidate


def _labels(particles: list[Particle]) -> set[str]:
    return {p.label for p in particles}


def plan_nanoparticles(
    sizes: list[int],
    bulk: Atoms,
    energies: SurfaceEnergies,
    solutes: SoluteRequest,
    *,
    rounding: str = "closest",
    vacuum_A: float = 10.0,
    seed: int = 0,
) -> tuple[dict[str, Atoms], list[Particle]]:
    """Crystals to melt (label -> Atoms) and every particle the run will give.

    Every size is checked against the free memory before the first is cut.
    """
    from scalms.geometry.wulff import wulff_particle

    for size in sizes:
        if size < 1:
            raise ScalmsError(f"a particle needs at least 1 atom, not {size}")
    check_fits(max(sizes), CUT_BYTES_PER_ATOM, "a Wulff particle")
    crystals: dict[str, Atoms] = {}
    particles: list[Particle] = []
    for size in sizes:
        cut = wulff_particle(bulk, energies, size, rounding=rounding)
        crystal = in_vacuum(cut.atoms, vacuum_A)
        facets = {"".join(map(str, f.miller)): round(f.area_fraction, 4) for f in cut.facets}
        variants = [(None, crystal)]
        if solutes.elements and solutes.order == "before":
            variants = [(el, solutes.apply(crystal, el, seed)) for el in solutes.elements]
        for solute, atoms in variants:
            label = _unique_label(formula_label(atoms), set(crystals))
            crystals[label] = atoms
            particles.append(
                Particle(
                    label, size, len(atoms), atoms.get_chemical_formula(), solute, None, facets
                )
            )
        if solutes.elements and solutes.order == "after":
            host_label = particles[-1].label
            for element in solutes.elements:
                alloyed = solutes.apply(crystal, element, seed)  # for the name and count only
                label = _unique_label(formula_label(alloyed), set(crystals) | _labels(particles))
                particles.append(
                    Particle(
                        label,
                        size,
                        len(alloyed),
                        alloyed.get_chemical_formula(),
                        element,
                        host_label,
                        facets,
                    )
                )
    return crystals, particles


def plan_bulk(
    bulk: Atoms, repeat: tuple[int, int, int], solutes: SoluteRequest, seed: int = 0
) -> tuple[dict[str, Atoms], list[Particle]]:
    """A periodic supercell of ``bulk`` (and its alloys, solutes added before melting only)."""
    if solutes.elements and solutes.order == "after":
        raise ScalmsError("bulk cells take their solutes before melting (--order before)")
    repeat = tuple(int(n) for n in repeat)
    if len(repeat) != 3 or min(repeat) < 1:
        raise ScalmsError(
            f"--repeat needs three whole numbers of at least 1 (a, b, c), got {list(repeat)}"
        )
    check_fits(len(bulk) * int(np.prod(repeat)), CELL_BYTES_PER_ATOM, "a bulk cell")
    cell = bulk.repeat(repeat)
    cell.pbc = True
    variants = [(None, cell)]
    if solutes.elements:
        variants = [(el, solutes.apply(cell, el, seed)) for el in solutes.elements]
    crystals, particles = {}, []
    for solute, atoms in variants:
        label = f"{formula_label(atoms)}_bulk"
        crystals[label] = atoms
        particles.append(Particle(label, None, len(atoms), atoms.get_chemical_formula(), solute))
    return crystals, particles


TABLE_HEADER = [
    "label",
    "target_atoms",
    "n_atoms",
    "composition",
    "solute",
    "solute_added",
    "final_T_K",
    "D_cm2_per_s",
    "lindemann",
    "q6_crystal",
    "q6_final",
    "liquid",
    "final",
]


def table_rows(particles: list[Particle]) -> list[list[Any]]:
    """One row per particle under :data:`TABLE_HEADER`: the CSV, the report and the console."""
    from pathlib import Path

    rows = []
    for p in particles:
        check = p.check or {}

        def number(key, check=check, style=".3f"):
            value = check.get(key)
            return "" if value is None else f"{value:{style}}"

        added = "" if p.solute is None else ("after melting" if p.melted_from else "before")
        rows.append(
            [
                p.label,
                p.target_atoms or "",
                p.n_atoms,
                p.composition,
                p.solute or "",
                added,
                number("temperature_K"),
                number("D_cm2_per_s", style=".2e"),
                number("lindemann"),
                number("q6_crystal"),
                number("q6_final"),
                "" if check.get("liquid") is None else check["liquid"],
                Path(p.final).name if p.final else "not written",
            ]
        )
    return rows
