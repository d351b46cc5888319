"""The CP2K net-force figure of docs/hpc.md from ``benchmarks/results/cp2k_net_force.csv``.

That CSV (written by ``benchmarks/cp2k_net_force.py``) holds one row per cutoff (and, where it
has a ``system`` column, per system): the net force |ΣF| and the wall time of a CP2K single
point of a rattled Ga4. This script only reads it and
draws it with :func:`scalms.plots.hpc.net_force_vs_cutoff`: net force against cutoff on a log
axis with the 0.05 eV/Å line, and the wall time beside it.

Usage, from the repository root::

    .venv/bin/python benchmarks/plot_cp2k_net_force.py [--csv PATH] [--out PATH] [--system NAME]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from scalms.plots.hpc import net_force_vs_cutoff

REPO = Path(__file__).resolve().parents[1]
CSV_PATH = REPO / "benchmarks" / "results" / "cp2k_net_force.csv"
FIGURE_PATH = REPO / "docs" / "figures" / "cp2k_net_force.png"

# The record's keys, and the column names each may have in the CSV (first found wins).
COLUMNS = {
    "system": ("system", "structure", "formula"),
    "cutoff_Ry": ("cutoff_Ry", "cutoff_ry", "cutoff"),
    "net_force_eV_per_A": ("net_force_eV_per_A", "net_force"),
    "wall_s": ("wall_s", "wall_time_s", "seconds"),
}
OPTIONAL = {"system", "wall_s"}
DEFAULT_SYSTEM = "Ga4, rattled 0.1 Å"
"""The system's name when the CSV has no system column (the study's one cluster)."""


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_records(path: Path, system: str = DEFAULT_SYSTEM) -> list[dict]:
    """The CSV's rows as the plot's records (rows without a finite net force are left out:
    a refused SCF has none)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        found = {}
        for key, names in COLUMNS.items():
            name = next((n for n in names if n in fields), None)
            if name is None and key not in OPTIONAL:
                raise SystemExit(f"{path}: no column for {key} (looked for {', '.join(names)})")
            found[key] = name
        records = []
        for row in reader:
            record = {"system": row[found["system"]] if found["system"] else system}
            if row.get("method"):  # one curve per CP2K method (GPW, GAPW)
                record["system"] = f"{record['system']}, {row['method']}"
            for key in ("cutoff_Ry", "net_force_eV_per_A", "wall_s"):
                record[key] = _number(row[found[key]]) if found[key] else math.nan
            if math.isfinite(record["net_force_eV_per_A"]):
                records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=CSV_PATH)
    parser.add_argument("--out", type=Path, default=FIGURE_PATH)
    parser.add_argument("--system", default=DEFAULT_SYSTEM, help="name without a system column")
    args = parser.parse_args()
    records = read_records(args.csv, args.system)
    if not records:
        raise SystemExit(f"{args.csv}: no rows with a net force")
    print(f"wrote {net_force_vs_cutoff(records, args.out)} from {len(records)} rows")


if __name__ == "__main__":
    main()
