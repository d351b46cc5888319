"""How long `scalms --help` takes to answer (target: under a second).

Runs the installed console script several times and writes the figures to
benchmarks/results/cli_startup.csv. Usage: .venv/bin/python benchmarks/cli_startup.py
"""

import csv
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 10
OUT = Path(__file__).parent / "results" / "cli_startup.csv"


def main() -> None:
    scalms = shutil.which("scalms", path=str(Path(sys.executable).parent))
    commands = {
        "scalms --help": [scalms, "--help"],
        "scalms static --help": [scalms, "static", "--help"],
    }
    rows = []
    for name, command in commands.items():
        subprocess.run(command, capture_output=True, check=True)  # warm the file cache
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "command": name,
                "runs": RUNS,
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "python": platform.python_version(),
            }
        )
        print(f"{name}: median {statistics.median(times):.3f} s, max {max(times):.3f} s")
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
