"""Surface energies of alpha-Ga facets computed with SevenNet-0, for the Wulff construction.

Crystalium (Tran et al., Sci. Data 3, 160080, 2016) lists alpha-Ga's facets, but its numbers
cannot be fetched offline; these come from the embedded default model instead, at the same
level of theory it was trained on (PBE). Run inside the SevenNet environment:

    .venvs/sevennet/bin/python examples/make_surface_energies.py

For each facet with Miller indices up to 1: cut slabs from the model-relaxed bulk at every
distinct atomic plane (alpha-Ga's Ga2 dimers make the termination matter), keep the termination
with the lowest unrelaxed energy, relax its atoms, and take gamma = (E_slab - N E_bulk) / (2 A),
the average over the slab's two faces. Writes the Ga entry of
src/scalms/geometry/data/surface_energies.json, keeping the other elements there.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
from ase.build import surface
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from scalms.config import ModelEntry
from scalms.geometry.crystals import SURFACE_ENERGIES, bulk_crystal
from scalms.models.loading import load

EV_PER_A2_TO_J_PER_M2 = 16.0217663
SLAB_THICKNESS_A = 14.0
VACUUM_A = 10.0
FMAX_EV_PER_A = 0.02


def facets(max_index: int = 1) -> list[tuple[int, int, int]]:
    """One representative per {hkl} family of an orthorhombic (mmm) crystal: signs don't matter."""
    found = set()
    for hkl in itertools.product(range(max_index + 1), repeat=3):
        if any(hkl) and np.gcd.reduce(hkl) == 1:
            found.add(hkl)
    return sorted(found, key=lambda h: (sum(h), h[::-1]))


def terminations(hkl, bulk) -> list:
    """Slabs of whole repeat units, about SLAB_THICKNESS_A thick, cut just below each distinct
    atomic plane. Cut from the middle of a thicker slab (ASE's ``surface`` with vacuum; its
    periodic variant misplaces atoms for some facets of this base-centred cell)."""
    area = np.linalg.norm(np.cross(*surface(bulk, hkl, 1, vacuum=5).cell[:2]))
    period = bulk.get_volume() / area  # one repeat unit of len(bulk) atoms along the normal
    layers = max(2, int(np.ceil(SLAB_THICKNESS_A / period)))
    thick = surface(bulk, hkl, layers + 2, vacuum=VACUUM_A)
    z = thick.positions[:, 2]
    planes = np.unique(np.round(z[(z >= z.min() + period) & (z < z.min() + 2 * period)], 2))
    slabs = []
    for height in planes:
        cut = height - 0.01
        keep = (z >= cut) & (z < cut + layers * period)
        slab = thick[keep]
        assert len(slab) == layers * len(bulk), "a slab of whole repeat units"
        slab.center(vacuum=VACUUM_A, axis=2)
        slab.pbc = (True, True, False)
        slabs.append(slab)
    return slabs


def main() -> None:
    calc = load(ModelEntry("7net-0", "sevennet"), "ase", "cpu")
    bulk = bulk_crystal("Ga")
    bulk.calc = calc
    FIRE(FrechetCellFilter(bulk), logfile=None).run(fmax=0.005, steps=500)
    e_bulk = bulk.get_potential_energy() / len(bulk)
    print(f"relaxed bulk: {bulk.cell.lengths().round(4)} Å, {e_bulk:.5f} eV/atom")
    energies = {}
    for hkl in facets():
        started = time.perf_counter()
        candidates = []
        for slab in terminations(hkl, bulk):
            slab.calc = calc
            candidates.append((slab.get_potential_energy() - len(slab) * e_bulk, slab))
        excess, slab = min(candidates, key=lambda c: c[0])
        FIRE(slab, logfile=None).run(fmax=FMAX_EV_PER_A, steps=1000)
        area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
        gamma = (slab.get_potential_energy() - len(slab) * e_bulk) / (2 * area)
        key = "".join(str(i) for i in hkl)
        energies[key] = round(float(gamma * EV_PER_A2_TO_J_PER_M2), 4)
        print(
            f"({key}): {len(candidates)} terminations, {len(slab)} atoms, unrelaxed "
            f"{excess / (2 * area) * EV_PER_A2_TO_J_PER_M2:.3f} -> relaxed {energies[key]:.3f} "
            f"J/m² ({time.perf_counter() - started:.0f} s)"
        )
    table = json.loads(SURFACE_ENERGIES.read_text())
    table["elements"]["Ga"] = {
        "J_per_m2": energies,
        "source": "SevenNet-0 (7net-0, sevenn 0.13.0), relaxed slabs of alpha-Ga cut at the "
        "lowest-energy termination; examples/make_surface_energies.py",
    }
    SURFACE_ENERGIES.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {Path(SURFACE_ENERGIES)}")


if __name__ == "__main__":
    main()
