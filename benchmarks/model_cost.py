"""Cost of MD by model and nanoparticle size through `scalms benchmark cost` (thesis Fig. 4.1, 4.2).

Makes icosahedral Ga nanoparticles with one Pt (``scalms.testing.ga_cluster``: 55, 147, 309,
561, 923, 1415 atoms for 3 to 8 shells) in a vacuum box, then runs the command for each model
in its own environment: SevenNet-0 (``7net-0``), the tiny MACE of ``ML_training/`` and the
builtin Lennard-Jones pair potential as the classical baseline (the thesis used a KIM EAM model
for that role: a model that needs no GPU shows what the GPU figures hold without one).

Serial mode times each size alone; with ``--batched`` the 55- and 147-atom particles are also run
as TorchSim batches of 1, 2, 4, ... copies (on CUDA doubling until the GPU is full).

Usage, from the repository root::

    .venv/bin/python benchmarks/model_cost.py --device cpu --shells 3 4 5 --steps 30
    .venv/bin/python benchmarks/model_cost.py --device cuda --shells 3 4 5 6 7 8 --steps 200 \\
        --batched

Copies each run's CSV files and figures to ``benchmarks/results/model_cost_<device>/`` and
prints the summary table the command prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from scalms.testing import ga_cluster, write_model_config

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIG = """SevenNet:
  models:
    7net-0: {{}}
MACE:
  models:
    mace-tiny-GaPt:
      model_path: {mace}
      options: {{default_dtype: float64}}
builtin:
  models:
    lj: {{}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shells", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["lj", "mace-tiny-GaPt", "7net-0"])
    parser.add_argument("--batched", action="store_true")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--cpu-threads", type=int, help="torch threads per child (CPU runs)")
    args = parser.parse_args()
    scalms = str(REPO / ".venv" / "bin" / "scalms")
    out = RESULTS / f"model_cost_{args.device.split(':')[0]}"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scalms-cost-") as tmp:
        tmp = Path(tmp)
        config = write_model_config(
            tmp, CONFIG.format(mace=REPO / "ML_training" / "models" / "mace-tiny-GaPt.model")
        )
        structures = []
        for shells in args.shells:
            atoms = ga_cluster(shells=shells, seed=shells, box_A=20.0 + 6.0 * shells)
            path = tmp / f"Ga{len(atoms) - 1}Pt_icosahedron.xyz"
            atoms.write(path)
            structures.append(str(path))
        models = [arg for name in args.models for arg in ("--model", name)]
        common = ["-c", str(config), "--device", args.device, "--steps", str(args.steps)]
        if args.cpu_threads:
            common += ["--cpu-threads", str(args.cpu_threads)]
        workdir = tmp / "cost"
        subprocess.run(
            [scalms, "benchmark", "cost", *structures, *models, *common, "-w", str(workdir)],
            check=False,
        )
        if args.batched:
            sizes = [a for n in args.batch_sizes for a in ("--batch-size", str(n))]
            until_oom = ["--until-oom"] if args.device.startswith("cuda") else []
            subprocess.run(
                [scalms, "benchmark", "cost", *structures[:2], *models, *common,
                 "--batched", *sizes, *until_oom, "-w", str(workdir)],
                check=False,
            )  # fmt: skip
        for path in [*workdir.glob("*.csv"), *(workdir / "plots").glob("*.png")]:
            shutil.copy2(path, out / path.name)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f}; results in {out}")


if __name__ == "__main__":
    main()
