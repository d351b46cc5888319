"""How long the CLI takes to answer: `--help` (target: under a second) and a small analysis
(target: under 3 s for 147 atoms x 200 frames on 2 cores).

Runs the installed console script several times and writes the figures to
benchmarks/results/cli_startup.csv. The analyses read a trajectory of the 147-atom example
cluster (Ga144Pt3) of 200 frames written here; `python -c "import torch"` is timed beside them
for scale, since a small analysis on the CPU runs in NumPy and never imports torch.
Usage: .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "cli_startup.csv"
N_FRAMES = 200


def write_trajectory(path: Path) -> Path:
    """200 frames of the 147-atom example cluster, atoms on a random walk, 2 fs steps saved
    every 5."""
    import ase.io

    from scalms.testing import write_jiggling_run

    atoms = ase.io.read(ROOT / "examples" / "Ga144Pt3_icosahedron.xyz")
    return write_jiggling_run(
        path, atoms, n_frames=N_FRAMES, jiggle_A=0.05, random_walk=True, structure="Ga144Pt3"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Timed runs per command.")
    runs = parser.parse_args().runs
    scalms = shutil.which("scalms", path=str(Path(sys.executable).parent))
    folder = Path(tempfile.mkdtemp(prefix="scalms-startup-"))
    run = str(write_trajectory(folder / "Ga144Pt3.h5md"))
    out = str(folder / "analysis")
    commands = {
        "scalms --help": [scalms, "--help"],
        "scalms static --help": [scalms, "static", "--help"],
        "scalms analyze diffusion -e Pt --no-plot": [
            scalms, "analyze", "diffusion", run, "-e", "Pt", "--no-plot", "-o", out,
        ],
        "scalms analyze pdf --pair Pt-Ga --no-plot": [
            scalms, "analyze", "pdf", run, "--pair", "Pt-Ga", "--no-plot", "-o", out,
        ],
        "scalms analyze trace -e Pt --no-plot": [
            scalms, "analyze", "trace", run, "-e", "Pt", "--no-plot", "-o", out,
        ],
        "scalms analyze diffusion -e Pt (PNG + HTML)": [
            scalms, "analyze", "diffusion", run, "-e", "Pt", "-o", out,
        ],
        "scalms analyze pdf (PNG + HTML)": [scalms, "analyze", "pdf", run, "-o", out],
        "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
    }  # fmt: skip
    # Python caches compiled modules as users' machines do, whatever this shell says.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows = []
    for name, command in commands.items():
        subprocess.run(command, capture_output=True, check=True, env=env)  # warm the caches
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True, env=env)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "command": name,
                "runs": runs,
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "cores": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            }
        )
        print(f"{name}: median {statistics.median(times):.3f} s, max {max(times):.3f} s")
    shutil.rmtree(folder, ignore_errors=True)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
