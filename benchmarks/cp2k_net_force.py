"""CP2K net-force study: |ΣF| and wall time of one rattled Ga4 against the plane-wave cutoff.

Forces of an isolated cluster must sum to zero; CP2K's grid breaks that when the cutoff is too
low for the Ga 3d semicore density (thesis Appendix B). This labels the same rattled Ga4
tetrahedron (2.75 Å edges, rattled 0.1 Å, seed 1, pbc False) with scalms's CP2K labeller, every
setting at its default except the cutoff and the Quickstep method: GPW (CP2K's default, what the
thesis ran) and GAPW (scalms's default, which treats the hard semicore density on atomic grids).
One row per (method, cutoff) is appended to ``benchmarks/results/cp2k_net_force.csv`` as it
finishes (the file is rewritten atomically), with the forces themselves, so the GAPW forces can
be compared with GPW's at the highest cutoff. A rerun skips the rows already in the file, so an
interrupted study continues.

Run from the repository root with CP2K installed (``apt-get install cp2k``), alone on the
machine if the times matter::

    .venv/bin/python benchmarks/cp2k_net_force.py [--methods GAPW GPW] \\
        [--cutoffs 300 400 500 600 800 1000 1200] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.files import atomic_write_text
from scalms.hpc.dft import DFTSettings
from scalms.hpc.dft.cp2k import CP2KLabeller

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "cp2k_net_force.csv"
COLUMNS = [
    "method",
    "cutoff_Ry",
    "net_force_eV_per_A",
    "max_force_eV_per_A",
    "energy_eV",
    "scf_steps",
    "wall_s",
    "threads",
    "box_A",
    "program",
    "host",
    "date",
    "forces_eV_per_A",
]


def rattled_ga4() -> Atoms:
    """The study's cluster: a Ga tetrahedron with 2.75 Å edges, rattled 0.1 Å (seed 1)."""
    corners = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 2.75 / np.sqrt(8)
    atoms = Atoms("Ga4", positions=corners)
    atoms.rattle(stdev=0.1, seed=1)
    atoms.pbc = False
    return atoms


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["GAPW", "GPW"])
    parser.add_argument(
        "--cutoffs", type=float, nargs="+", default=[300, 400, 500, 600, 800, 1000, 1200]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = read_rows(args.out)
    done = {(row["method"], float(row["cutoff_Ry"])) for row in rows}
    atoms = rattled_ga4()
    runs = [(method.upper(), cutoff) for method in args.methods for cutoff in args.cutoffs]
    with tempfile.TemporaryDirectory(prefix="scalms-cp2k-net-force-") as scratch:
        for method, cutoff in runs:
            if (method, cutoff) in done:
                print(f"{method} {cutoff:g} Ry: already in {args.out}, skipped", flush=True)
                continue
            settings = DFTSettings(cutoff=cutoff, threads=args.threads, workdir=Path(scratch))
            labeller = CP2KLabeller(settings, qs_method=method)
            try:
                labeller.check(atoms)
                label = labeller.label(atoms)
                described = labeller.describe()
            finally:
                labeller.close()
            forces = label.forces_eV_per_A
            row = {
                "method": method,
                "cutoff_Ry": f"{cutoff:g}",
                "net_force_eV_per_A": f"{np.linalg.norm(forces.sum(axis=0)):.6f}",
                "max_force_eV_per_A": f"{np.linalg.norm(forces, axis=1).max():.6f}",
                "energy_eV": f"{label.energy_eV:.6f}",
                "scf_steps": label.scf_steps,
                "wall_s": f"{label.wall_s:.1f}",
                "threads": args.threads,
                "box_A": label.extra["dft_box_A"],
                "program": described["program"],
                "host": platform.node(),
                "date": datetime.date.today().isoformat(),
                "forces_eV_per_A": json.dumps(np.round(forces, 6).tolist()),
            }
            rows.append(row)
            write_rows(args.out, rows)
            print(
                f"{method} {cutoff:g} Ry: |ΣF| {row['net_force_eV_per_A']} eV/Å, "
                f"{row['scf_steps']} SCF steps, {row['wall_s']} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
