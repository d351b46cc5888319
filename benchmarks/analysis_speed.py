"""scalms's PDF and MSD against MDAnalysis's InterRDF and EinsteinMSD(fft=True), same data.

Targets (the issue's): our PDF >= 5x faster than InterRDF with peak memory < 2 GB; our MSD
>= 5x faster than EinsteinMSD. The data is synthetic and liquid-like: N atoms placed at random
in a ball of 0.05 atoms/Å^3 (Ga-like), each then on a seeded Gaussian random walk (0.05 Å per
axis per frame); float32 positions, as MDAnalysis stores them.

Each measurement runs in its own child process, which builds the data, imports what it needs,
then times one call. `peak_MB` is that child's RSS high-water mark (`resource.getrusage`) at
the end: the whole process, interpreter, imports and the trajectory included; `baseline_MB` is
the same mark just before the timed call, so peak - baseline is what the call itself added.
Both PDFs use r_max 10 Å and 200 bins, no self pairs; both MSDs cover every lag of every atom.
MDAnalysis gets a cubic box wide enough that no periodic image comes within r_max.

Usage: .venv/bin/python benchmarks/analysis_speed.py [--frames 3000] [--atoms 1568]
       [--mda-pdf-frames K] (run InterRDF on the first K frames and scale its time to all
       frames, marked as such in the CSV) [--device cpu|cuda] (for our functions)
Writes benchmarks/results/analysis_speed.csv and prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "results" / "analysis_speed.csv"
DENSITY_PER_A3 = 0.05
STEP_A = 0.05
R_MAX_A = 10.0
N_BINS = 200
FRAME_INTERVAL_FS = 10.0


def liquid_like_trajectory(n_frames: int, n_atoms: int, seed: int = 0) -> np.ndarray:
    """(F, N, 3) float32 positions in Å: a random ball of the density, then random walks."""
    rng = np.random.default_rng(seed)
    radius = (3 * n_atoms / (4 * np.pi * DENSITY_PER_A3)) ** (1 / 3)
    direction = rng.normal(size=(n_atoms, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    start = direction * radius * rng.random((n_atoms, 1)) ** (1 / 3)
    positions = rng.normal(scale=STEP_A, size=(n_frames, n_atoms, 3)).astype(np.float32)
    positions[0] = start
    np.cumsum(positions, axis=0, out=positions)
    return positions


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---------------------------------------------------------------- measurements (in a child)


def measure(task: str, implementation: str, n_frames: int, n_atoms: int, device: str, out: Path):
    positions = liquid_like_trajectory(n_frames, n_atoms)
    if implementation == "scalms":
        import torch  # noqa: F401  (imported before the baseline, like MDAnalysis below)

        from scalms.analysis import mean_squared_displacement, pair_distribution
    else:
        import MDAnalysis as mda
        from MDAnalysis.analysis.msd import EinsteinMSD
        from MDAnalysis.analysis.rdf import InterRDF
        from MDAnalysis.coordinates.memory import MemoryReader

        extent = float(np.ptp(positions, axis=(0, 1)).max())
        box = extent + 2 * R_MAX_A + 10.0  # images stay beyond r_max of every atom
        universe = mda.Universe.empty(n_atoms, trajectory=False)
        universe.load_new(
            positions - positions.min(axis=(0, 1)) + R_MAX_A,
            format=MemoryReader,
            dimensions=np.array([box, box, box, 90, 90, 90]),
            dt=FRAME_INTERVAL_FS / 1000.0,  # ps
        )
    baseline = peak_rss_mb()
    start = time.perf_counter()
    if implementation == "scalms" and task == "pdf":
        result = pair_distribution(
            positions, r_max_A=R_MAX_A, n_bins=N_BINS, mode="pair-fraction", device=device
        )
        values = result.g * n_frames * n_atoms * (n_atoms - 1)  # back to ordered-pair counts
    elif implementation == "scalms":
        result = mean_squared_displacement(
            positions,
            frame_interval_fs=FRAME_INTERVAL_FS,
            numbers=np.full(n_atoms, 31),
            traced=np.ones(n_atoms, dtype=bool),
            max_lag_fs=(n_frames - 1) * FRAME_INTERVAL_FS,
            device=device,
        )
        values = result.per_atom_A2.T
    elif task == "pdf":
        rdf = InterRDF(
            universe.atoms,
            universe.atoms,
            nbins=N_BINS,
            range=(0.0, R_MAX_A),
            exclusion_block=(1, 1),
        ).run()
        values = rdf.results.count
    else:
        msd = EinsteinMSD(universe, select="all", msd_type="xyz", fft=True).run()
        values = msd.results.msds_by_particle
    seconds = time.perf_counter() - start
    np.save(out, np.asarray(values, dtype=np.float64))
    print(json.dumps({"seconds": seconds, "peak_MB": peak_rss_mb(), "baseline_MB": baseline}))


# ---------------------------------------------------------------- the driver


def run_child(task, implementation, n_frames, n_atoms, device, folder: Path):
    out = folder / f"{task}-{implementation}-{n_frames}.npy"
    command = [
        sys.executable,
        __file__,
        "--measure",
        task,
        implementation,
        "--frames",
        str(n_frames),
        "--atoms",
        str(n_atoms),
        "--device",
        device,
        "--values",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{task} {implementation} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {task:4} {implementation:10} {n_frames:5} frames: {figures['seconds']:8.2f} s, "
        f"peak {figures['peak_MB']:.0f} MB",
        flush=True,
    )
    return figures, np.load(out)


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()} {model}, {os.cpu_count()} cores".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--atoms", type=int, default=1568)
    parser.add_argument("--mda-pdf-frames", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--measure", nargs=2, metavar=("TASK", "IMPLEMENTATION"))
    parser.add_argument("--values", type=Path)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure, args.frames, args.atoms, args.device, args.values)
        return

    n_frames, n_atoms = args.frames, args.atoms
    mda_pdf_frames = min(args.mda_pdf_frames or n_frames, n_frames)
    load = os.getloadavg()
    print(f"{n_frames} frames x {n_atoms} atoms, load average at start {load[0]:.2f}", flush=True)
    rows, agreement = [], {}
    where = machine()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for task in ("pdf", "msd"):
            ours, our_values = run_child(task, "scalms", n_frames, n_atoms, args.device, folder)
            frames = mda_pdf_frames if task == "pdf" else n_frames
            theirs, their_values = run_child(task, "MDAnalysis", frames, n_atoms, "cpu", folder)
            scale = n_frames / frames
            note = "" if scale == 1 else f"measured on {frames} frames, time x {scale:g}"
            if task == "pdf":
                if frames != n_frames:  # compare with ours on the same frames
                    _, our_values = run_child(task, "scalms", frames, n_atoms, "cpu", folder)
                difference = np.abs(our_values - their_values)
                agreement[task] = (
                    f"PDF pair counts: max |difference| {difference.max():.0f} of "
                    f"{their_values.max():.0f} in a bin; "
                    f"{difference.sum() / their_values.sum():.1e} of all counts"
                )
            else:
                agreement[task] = (
                    f"MSD per atom and lag: max |difference| "
                    f"{np.abs(our_values - their_values).max():.1e} Å² "
                    f"(largest MSD {their_values.max():.1f} Å²)"
                )
            reference = "InterRDF" if task == "pdf" else "EinsteinMSD(fft)"
            for implementation, figures, factor, remark in (
                (f"scalms ({args.device})", ours, 1.0, ""),
                (f"MDAnalysis {reference}", theirs, scale, f"{note}; {agreement[task]}"),
            ):
                rows.append(
                    {
                        "task": task,
                        "implementation": implementation,
                        "frames": n_frames,
                        "atoms": n_atoms,
                        "seconds": round(figures["seconds"] * factor, 2),
                        "peak_MB": round(figures["peak_MB"]),
                        "machine": where,
                        "baseline_MB": round(figures["baseline_MB"]),
                        "note": remark.strip("; "),
                    }
                )
    load_end = os.getloadavg()
    for row in rows:
        row["note"] = "; ".join(
            part
            for part in (row["note"], f"load average {load[0]:.1f} -> {load_end[0]:.1f}")
            if part
        )
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"\nMachine: {where}; load average {load[0]:.2f} at start, {load_end[0]:.2f} at end\n")
    print("| task | implementation | frames | atoms | seconds | speed-up | peak MB | note |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for ours, theirs in zip(rows[::2], rows[1::2], strict=True):
        for row in (ours, theirs):
            speedup = theirs["seconds"] / row["seconds"]
            print(
                f"| {row['task']} | {row['implementation']} | {row['frames']} | {row['atoms']} | "
                f"{row['seconds']} | {speedup:.1f}x | {row['peak_MB']} | {row['note']} |"
            )
    print()
    for line in agreement.values():
        print(line)


if __name__ == "__main__":
    main()
