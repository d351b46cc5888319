"""Make the small DFT reference set of the accuracy benchmark: Ga and Ga-Pt clusters with CP2K.

Writes ``tests/data/cp2k_GaPt_clusters.extxyz``: rattled Ga4, Ga3Pt and Ga2Pt2 tetrahedra
in a vacuum box (pbc False) with their CP2K energy (eV) and forces (eV/Å) as the frames'
results, and in ``info`` how each was computed (code, cutoff, SCF steps, spin treatment, wall
time, net force of the reference).

Settings, chosen because they converge (measured with Debian's CP2K 2023.1 and ASE 3.29):
PBE, DZVP-MOLOPT-SR-GTH basis with GTH-PBE pseudopotentials (Ga q13, Pt q18), 800 Ry plane-wave
cutoff (at CP2K's 400 Ry default the forces of Ga4 sum to about 2 eV/Å: thesis Appendix B),
Fermi-Dirac smearing at 1000 K with 20 added orbitals and Broyden mixing (0.2), at most 100 SCF
steps to 1e-6, non-periodic Poisson solver (Martyna-Tuckerman). Clusters with an odd number of
electrons (Ga3Pt) run spin-unrestricted as doublets.

ASE's CP2K calculator returns an energy even when the SCF did not converge; every frame's CP2K
output is therefore read, and a frame whose SCF did not converge is refused (the script stops
with its name and output file). Finished frames are cached in ``--workdir``, so a rerun after an
interruption only computes what is missing.

Run from the repository root, with CP2K installed (``apt-get install cp2k``)::

    .venv/bin/python tests/data/make_dft_frames.py [--cutoff-Ry 800] [--threads 2]

About 20 minutes on 2 cores for the six frames.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.units import Rydberg

OUT = Path(__file__).parent / "cp2k_GaPt_clusters.extxyz"
BOX_A = 11.0
GA_GA_A = 2.75
GA_PT_A = 2.55
VALENCE = {"Ga": 13, "Pt": 18}
"""Electrons per atom with the GTH-PBE pseudopotentials (q13, q18)."""

SCF_SECTION = """&FORCE_EVAL
  &DFT
    &SCF
      EPS_SCF 1.0E-6
      ADDED_MOS 20
      &SMEAR ON
        METHOD FERMI_DIRAC
        ELECTRONIC_TEMPERATURE [K] 1000
      &END SMEAR
      &MIXING
        METHOD BROYDEN_MIXING
        ALPHA 0.2
      &END MIXING
    &END SCF
  &END DFT
&END FORCE_EVAL
"""
NOT_CONVERGED = re.compile(r"SCF run NOT converged")
CONVERGED = re.compile(r"SCF run converged in\s+(\d+)\s+steps")


def scf_steps(output: str) -> int | None:
    """SCF steps of a CP2K output that converged, or None when it did not (or never said)."""
    if NOT_CONVERGED.search(output):
        return None
    found = CONVERGED.findall(output)
    return int(found[-1]) if found else None


def _tetrahedron(edge: float) -> np.ndarray:
    return edge / np.sqrt(8) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])


def clusters() -> dict[str, Atoms]:
    """The reference geometries: small Ga clusters, some with one Pt, rattled (seeded)."""
    shapes = {
        "Ga4_tetrahedron_r05": ("Ga4", _tetrahedron(GA_GA_A), 0.05, 1),
        "Ga4_tetrahedron_r15": ("Ga4", _tetrahedron(GA_GA_A), 0.15, 2),
        "Ga3Pt_tetrahedron_r10": ("PtGa3", _tetrahedron(0.5 * (GA_GA_A + GA_PT_A)), 0.10, 5),
        "Ga2Pt2_tetrahedron_r10": ("Pt2Ga2", _tetrahedron(0.5 * (GA_GA_A + GA_PT_A)), 0.10, 6),
    }
    made = {}
    for name, (formula, positions, rattle_A, seed) in shapes.items():
        atoms = Atoms(formula, positions=positions, cell=[BOX_A] * 3, pbc=False)
        atoms.rattle(stdev=rattle_A, seed=seed)
        atoms.center()
        atoms.info["name"] = name
        made[name] = atoms
    return made


def n_electrons(atoms: Atoms) -> int:
    return sum(VALENCE[s] for s in atoms.get_chemical_symbols())


def single_point(
    atoms: Atoms, workdir: Path, cutoff_Ry: float, threads: int, max_scf: int = 100
) -> Atoms:
    """CP2K energy and forces of ``atoms``; raises RuntimeError when the SCF did not converge."""
    from ase.calculators.cp2k import CP2K

    name = atoms.info["name"]
    odd = n_electrons(atoms) % 2 == 1
    label = workdir / name
    started = time.perf_counter()
    calc = CP2K(
        label=str(label),
        command=f"env OMP_NUM_THREADS={threads} cp2k_shell",
        xc="PBE",
        cutoff=cutoff_Ry * Rydberg,
        max_scf=max_scf,
        stress_tensor=False,
        uks=odd,
        multiplicity=2 if odd else None,
        inp=SCF_SECTION,
    )
    try:
        work = atoms.copy()
        work.calc = calc
        energy = work.get_potential_energy()
        forces = work.get_forces()
    finally:
        calc.close()
    output = Path(f"{label}.out")
    steps = scf_steps(output.read_text())
    if steps is None:
        raise RuntimeError(f"{name}: SCF did not converge (see {output}); frame refused")
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces)
    labelled.info.update(
        name=name,
        dft_code=cp2k_version(),
        xc="PBE",
        basis="DZVP-MOLOPT-SR-GTH",
        pseudopotential="GTH-PBE",
        cutoff_Ry=cutoff_Ry,
        smearing="Fermi-Dirac 1000 K",
        spin="UKS doublet" if odd else "RKS",
        scf_steps=steps,
        wall_s=round(time.perf_counter() - started, 1),
        net_force_eV_per_A=float(np.linalg.norm(forces.sum(axis=0))),
    )
    return labelled


def cp2k_version() -> str:
    result = subprocess.run(["cp2k.psmp", "--version"], capture_output=True, text=True)
    match = re.search(r"CP2K version ([\w.]+)", result.stdout)
    return f"CP2K {match.group(1)}" if match else "CP2K"


def _cached(path: Path) -> Atoms | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    atoms = Atoms(
        numbers=data["numbers"], positions=data["positions"], cell=data["cell"], pbc=False
    )
    atoms.calc = SinglePointCalculator(
        atoms, energy=data["energy"], forces=np.array(data["forces"])
    )
    atoms.info.update(data["info"])
    return atoms


def _cache(path: Path, atoms: Atoms) -> None:
    data = {
        "numbers": atoms.numbers.tolist(),
        "positions": atoms.positions.tolist(),
        "cell": atoms.cell.array.tolist(),
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces().tolist(),
        "info": atoms.info,
    }
    path.write_text(json.dumps(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoff-Ry", type=float, default=800.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "scalms-cp2k")
    parser.add_argument("--only", nargs="*", help="Compute only these frames (by name).")
    args = parser.parse_args()
    if shutil.which("cp2k_shell") is None:
        raise SystemExit("CP2K not found: apt-get install cp2k")
    args.workdir.mkdir(parents=True, exist_ok=True)
    frames = []
    for name, atoms in clusters().items():
        if args.only and name not in args.only:
            continue
        cache = args.workdir / f"{name}_{args.cutoff_Ry:g}Ry.json"
        labelled = _cached(cache)
        if labelled is None:
            print(f"{name}: {len(atoms)} atoms, {n_electrons(atoms)} electrons ...", flush=True)
            labelled = single_point(atoms, args.workdir, args.cutoff_Ry, args.threads)
            _cache(cache, labelled)
        info = labelled.info
        print(
            f"{name}: E = {labelled.get_potential_energy():.4f} eV, {info['scf_steps']} SCF "
            f"steps, |net F| = {info['net_force_eV_per_A']:.4f} eV/Å, {info['wall_s']} s",
            flush=True,
        )
        frames.append(labelled)
    write(args.out, frames, format="extxyz")
    print(f"wrote {len(frames)} frames to {args.out}")


if __name__ == "__main__":
    main()
