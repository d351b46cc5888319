"""Build the example Ga-Pt nanoparticles in this folder (run: python examples/make_examples.py).

Icosahedral clusters (ASE's Icosahedron) of gallium with a few Pt solutes, centred in a 40 Å
vacuum box without periodicity, as the nanoparticles of the thesis. Gallium's stable bulk is
orthorhombic, so no fcc lattice constant exists for it: 3.9 Å gives the ~2.75 Å Ga-Ga distance.
These are crystalline starting points, not melted particles. Ga32_periodic is a periodic fcc
stand-in for bulk gallium, there so that stress is evaluated as well.
"""

from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.io import write

HERE = Path(__file__).parent
BOX_A = 40.0


def ga_pt_icosahedron(shells: int, n_pt: int, seed: int):
    atoms = Icosahedron("Ga", noshells=shells, latticeconstant=3.9)
    rng = np.random.default_rng(seed)
    atoms.numbers[rng.choice(len(atoms), size=n_pt, replace=False)] = 78
    atoms.set_cell([BOX_A] * 3)
    atoms.center()
    atoms.pbc = False
    return atoms


def main() -> None:
    small = ga_pt_icosahedron(3, 1, seed=1)
    write(HERE / "Ga54Pt_icosahedron.xyz", small)
    write(HERE / "Ga144Pt3_icosahedron.xyz", ga_pt_icosahedron(4, 3, seed=2))
    frames = []
    for seed in range(3):
        frame = small.copy()
        frame.rattle(stdev=0.05, seed=seed)
        frames.append(frame)
    write(HERE / "Ga54Pt_rattled.extxyz", frames)
    # A periodic cell, so that stress is computed and compared too.
    cell = bulk("Ga", "fcc", a=3.9, cubic=True).repeat(2)
    cell.rattle(stdev=0.05, seed=3)
    write(HERE / "Ga32_periodic.extxyz", cell)


if __name__ == "__main__":
    main()
