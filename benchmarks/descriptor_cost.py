"""What a descriptor pass costs against a force call, per frame and per atom-frame, on this CPU.

Issue 13 asks that computing per-atom descriptors cost about one force evaluation (an MD step's
work). For each model and particle size this times, in one process and on the same frames:
- the descriptor pass of `scalms analyze cluster` (`scalms.models.loading.load_describer`);
- one force call of the same model's ASE calculator (energy and forces: what an MD step costs
  on a CPU, where the integrator's own work is negligible).
Frames are rattled icosahedral Ga particles with 2 Pt (55 and 147 atoms), each timed `--repeats`
times after one warm-up call; the median is kept.

Run it in the model's environment (it imports the model package):
  OMP_NUM_THREADS=2 .venvs/sevennet/bin/python benchmarks/descriptor_cost.py --model 7net-0
  OMP_NUM_THREADS=2 .venvs/mace/bin/python benchmarks/descriptor_cost.py \
      --model mace-distilled-7net0-GaX
Results are merged into benchmarks/results/descriptor_cost.json (one entry per model and size).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _machine import cpu_description

from scalms.config import load_config
from scalms.models.loading import load, load_describer
from scalms.testing import ga_cluster

RESULTS = Path(__file__).parent / "results" / "descriptor_cost.json"


def median_seconds(call, repeats: int) -> float:
    call()  # warm-up: first calls allocate and, for some models, compile
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(entry, shells: int, repeats: int) -> dict:
    atoms = ga_cluster(shells, "Pt", 2, rattle_A=0.1)
    describer = load_describer(entry, "cpu")
    calculator = load(entry, "ase", "cpu")

    def force_call():
        calculator.reset()  # else ASE returns the cached forces of the same positions
        frame = atoms.copy()
        frame.calc = calculator
        frame.get_forces()

    descriptor_s = median_seconds(lambda: describer(atoms), repeats)
    force_s = median_seconds(force_call, repeats)
    return {
        "model": entry.name,
        "atoms": len(atoms),
        "width": describer.width,
        "source": describer.source,
        "descriptor_s_per_frame": descriptor_s,
        "force_s_per_frame": force_s,
        "descriptor_ms_per_atom_frame": 1e3 * descriptor_s / len(atoms),
        "descriptor_over_force": descriptor_s / force_s,
        "repeats": repeats,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "cpu": cpu_description(),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--model-config", type=Path, default=Path("model_config.yaml"))
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    (entry,) = load_config(args.model_config).select([args.model])
    rows = [measure(entry, shells, args.repeats) for shells in (3, 4)]
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    kept = [row for row in previous if row["model"] != entry.name]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(kept + rows, indent=2) + "\n")
    print("| model | atoms | width | descriptors s/frame | force call s/frame | ratio |")
    print("|---|--:|--:|--:|--:|--:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['atoms']} | {row['width']} | "
            f"{row['descriptor_s_per_frame']:.4f} | {row['force_s_per_frame']:.4f} | "
            f"{row['descriptor_over_force']:.2f} |"
        )


if __name__ == "__main__":
    main()
