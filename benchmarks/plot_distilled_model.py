"""The figure of docs/distilled_model.md from ``benchmarks/results/distilled_model.json`` (written
by ``benchmarks/distilled_model.py``): Ga MSD of teacher and student, the temperature of their NVT
runs, and seconds per MD step against particle size, drawn by
:func:`scalms.plots.distilled.distilled_comparison`.

    .venv/bin/python benchmarks/plot_distilled_model.py [--json PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalms.plots.distilled import distilled_comparison

REPO = Path(__file__).resolve().parents[1]
JSON_PATH = REPO / "benchmarks" / "results" / "distilled_model.json"
FIGURE_PATH = REPO / "docs" / "figures" / "distilled_model.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    parser.add_argument("--out", type=Path, default=FIGURE_PATH)
    args = parser.parse_args(argv)
    figure = distilled_comparison(json.loads(args.json.read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
