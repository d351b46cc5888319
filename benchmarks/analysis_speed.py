"""scalms's PDF and MSD against MDAnalysis's InterRDF and EinsteinMSD(fft=True), same data.

Targets (the issue's): our PDF >= 5x faster than InterRDF with peak memory < 2 GB; our MSD
>= 5x faster than EinsteinMSD. The data is synthetic and liquid-like: N atoms placed at random
in a ball of 0.05 atoms/Å^3 (Ga-like), each then on a seeded Gaussian random walk (0.05 Å per
axis per frame); float32 positions, as MDAnalysis stores them.

Each measurement runs in its own child process, which builds the data, imports what it needs,
then times one call. `peak_MB` is that child's RSS high-water mark at the end (VmHWM in
/proc/self/status: getrusage's ru_maxrss mixes in the parent's): the whole process, with the
interpreter, the imports (importing torch, a CUDA build, takes ~520 MB alone) and the
trajectory. `baseline_MB` is the same mark just before the timed call, so peak - baseline
bounds what the call itself added.
Both PDFs use r_max 10 Å and 200 bins, no self pairs; both MSDs cover every lag of every atom.
MDAnalysis gets a cubic box wide enough that no periodic image comes within r_max.

Ours runs with torch limited to 1 thread and with torch's default (one per core); MDAnalysis
runs single-threaded. On a shared machine torch's threads wait for each other when another
process holds a core, so both figures are given.

Usage: .venv/bin/python benchmarks/analysis_speed.py [--frames 3000] [--atoms 1568]
       [--threads 1 0] (torch threads for ours, 0 = torch's default) [--device cpu|cuda]
       [--mda-pdf-frames K] (run InterRDF on the first K frames and scale its time to all
       frames, said so in the CSV's note)
Writes benchmarks/results/analysis_speed.csv and prints a markdown table.

With --pdf-precision [--repeats 3] [--engine numpy|torch], times only our full PDF, in float32
and in float64 (the CPU default), each in its own child, alternating, and keeps each one's
fastest of the repeats (a shared machine only ever adds time), wall and CPU time (CPU time, the
work done, is what a busy machine disturbs least); writes benchmarks/results/pdf_precision.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import cpu_description

OUT = Path(__file__).parent / "results" / "analysis_speed.csv"
PRECISION_OUT = OUT.with_name("pdf_precision.csv")
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
    """This process's RSS high-water mark in MB.

    Linux's getrusage ru_maxrss carries the parent's high-water mark over fork and exec, so a
    child started from a big parent would report the parent's size; VmHWM belongs to this
    process image only. Elsewhere, fall back to getrusage.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- measurements (in a child)


def measure(
    task, implementation, n_frames, n_atoms, device, threads, out: Path, precision=None, engine=None
) -> None:
    positions = liquid_like_trajectory(n_frames, n_atoms)
    if implementation == "scalms":
        import torch

        from scalms.analysis import _cpu, mean_squared_displacement, pair_distribution

        if engine:
            _cpu.CPU_ENGINE = engine  # which of our kernels runs on a CPU

        if threads:
            torch.set_num_threads(threads)
    else:
        import MDAnalysis as mda
        from MDAnalysis.analysis.msd import EinsteinMSD
        from MDAnalysis.analysis.rdf import InterRDF
        from MDAnalysis.coordinates.memory import MemoryReader

        # Not wrapped into the box: MDAnalysis applies the minimum image itself, and every
        # image of an atom is at least r_max + 10 Å from the whole particle.
        extent = float(np.ptp(positions, axis=(0, 1)).max())
        box = extent + 2 * R_MAX_A + 10.0
        universe = mda.Universe.empty(n_atoms, trajectory=False)
        universe.load_new(
            positions,
            format=MemoryReader,
            dimensions=np.array([box, box, box, 90, 90, 90]),
            dt=FRAME_INTERVAL_FS / 1000.0,  # ps
        )
    baseline = peak_rss_mb()
    start = time.perf_counter()
    cpu_start = time.process_time()
    if implementation == "scalms" and task == "pdf":
        result = pair_distribution(
            positions,
            r_max_A=R_MAX_A,
            n_bins=N_BINS,
            mode="pair-fraction",
            device=device,
            precision=precision,
        )
        values = result.g * n_frames * n_atoms * (n_atoms - 1)  # back to ordered-pair counts
    elif implementation == "scalms":
        result = mean_squared_displacement(
            positions,
            frame_interval_fs=FRAME_INTERVAL_FS,
            numbers=np.full(n_atoms, 31),
            traced=np.ones(n_atoms, dtype=bool),
            remove_drift=False,  # EinsteinMSD keeps the centre of mass's motion
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
    cpu_seconds = time.process_time() - cpu_start
    np.save(out, np.asarray(values, dtype=np.float64))
    if implementation == "scalms":
        threads = torch.get_num_threads()
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_MB": peak_rss_mb(),
        "baseline_MB": baseline,
    }
    print(json.dumps(figures | {"threads": threads or 1}))


# ---------------------------------------------------------------- the driver


def run_child(
    task, implementation, n_frames, n_atoms, device, threads, folder: Path, precision=None,
    engine=None,
):  # fmt: skip
    out = folder / f"{task}-{implementation}-{n_frames}-{threads}-{precision}.npy"
    command = [sys.executable, __file__, "--measure", task, implementation]
    command += ["--frames", str(n_frames), "--atoms", str(n_atoms), "--device", device]
    command += ["--threads", str(threads), "--values", str(out)]
    if precision:
        command += ["--precision", precision]
    if engine:
        command += ["--engine", engine]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{task} {implementation} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {task} {implementation} ({threads or 'default'} threads), {n_frames} frames: "
        f"{figures['seconds']:.2f} s, peak {figures['peak_MB']:.0f} MB",
        flush=True,
    )
    return figures, np.load(out)


def compare(task: str, ours: np.ndarray, theirs: np.ndarray, n_frames: int) -> str:
    """How far our answer is from MDAnalysis's, in words."""
    difference = np.abs(ours - theirs)
    if task == "pdf":
        return (
            f"pair counts: max abs difference {difference.max():.0f} in a bin of up to "
            f"{theirs.max():.0f}; {difference.sum() / theirs.sum():.1e} of all counts"
        )
    lag, atom = np.unravel_index(np.argmax(difference), difference.shape)
    exact = exact_msd(n_frames, len(ours[0]), atom, lag)
    return (
        f"MSD per atom and lag: max abs difference {difference.max():.1e} Å² (largest MSD "
        f"{theirs.max():.1f} Å²), at lag {lag}, atom {atom}: float64 direct sum {exact:.9g}, "
        f"ours {ours[lag, atom]:.9g}, MDAnalysis {theirs[lag, atom]:.9g}"
    )


def exact_msd(n_frames: int, n_atoms: int, atom: int, lag: int) -> float:
    path = liquid_like_trajectory(n_frames, n_atoms)[:, atom].astype(np.float64)
    return float(((path[lag:] - path[: n_frames - lag]) ** 2).sum(axis=-1).mean())


def compare_pdf_precision(args) -> None:
    """Our full PDF in float32 and float64: fastest of `--repeats` each, and the count change.

    The kernel column says which of our two computes it: `--engine` (NumPy by default) on a CPU,
    torch on a GPU.
    """
    kernel = args.engine if args.device == "cpu" else "torch"
    load = os.getloadavg()
    where = cpu_description()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for threads in args.threads:
            best, counts = {}, {}
            for _ in range(args.repeats):
                for precision in ("float32", "float64"):
                    figures, values = run_child(
                        "pdf", "scalms", args.frames, args.atoms, args.device, threads,
                        Path(folder), precision, args.engine,
                    )  # fmt: skip
                    if precision not in best:
                        best[precision] = figures
                    for key in ("seconds", "cpu_seconds"):
                        best[precision][key] = min(best[precision][key], figures[key])
                    counts[precision] = values
            moved = round(np.abs(counts["float64"] - counts["float32"]).sum() / 2)
            total = round(counts["float64"].sum())
            for precision in ("float32", "float64"):
                count = best[precision]["threads"]
                rows.append(
                    {
                        "precision": precision,
                        "kernel": kernel,
                        "device": args.device,
                        "threads": count,
                        "frames": args.frames,
                        "atoms": args.atoms,
                        "seconds": round(best[precision]["seconds"], 2),
                        "cpu_seconds": round(best[precision]["cpu_seconds"], 2),
                        "ratio_to_float32": round(
                            best[precision]["seconds"] / best["float32"]["seconds"], 2
                        ),
                        "cpu_ratio_to_float32": round(
                            best[precision]["cpu_seconds"] / best["float32"]["cpu_seconds"], 2
                        ),
                        "peak_MB": round(best[precision]["peak_MB"]),
                        "machine": where,
                        "note": f"fastest of {args.repeats}; {moved} of {total} ordered pairs in "
                        "another bin in float32",
                    }
                )
    load_end = os.getloadavg()
    for entry in rows:
        entry["note"] += f"; load average {load[0]:.1f} at start, {load_end[0]:.1f} at end"
    # Rows of another kernel or size measured before are kept.
    kept = []
    if PRECISION_OUT.exists():
        with PRECISION_OUT.open(newline="") as handle:
            kept = [
                row
                for row in csv.DictReader(handle)
                if list(row) == list(rows[0])
                and (row["kernel"], row["frames"], row["atoms"])
                != (kernel, str(args.frames), str(args.atoms))
            ]
    PRECISION_OUT.parent.mkdir(exist_ok=True)
    with PRECISION_OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept + rows)
    print("| precision | kernel | threads | wall s | x float32 | CPU s | x float32 | peak MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for entry in rows:
        print(
            f"| {entry['precision']} | {entry['kernel']} | {entry['threads']} | "
            f"{entry['seconds']} | {entry['ratio_to_float32']} | {entry['cpu_seconds']} | "
            f"{entry['cpu_ratio_to_float32']} | {entry['peak_MB']} |"
        )
    print(rows[0]["note"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--atoms", type=int, default=1568)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--mda-pdf-frames", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--measure", nargs=2, metavar=("TASK", "IMPLEMENTATION"))
    parser.add_argument("--values", type=Path)
    parser.add_argument("--precision", choices=("float32", "float64"))
    parser.add_argument("--pdf-precision", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", choices=("numpy", "torch"), default="numpy")
    args = parser.parse_args()
    if args.measure:
        threads = args.threads[0]
        measure(
            *args.measure,
            args.frames,
            args.atoms,
            args.device,
            threads,
            args.values,
            args.precision,
            args.engine,
        )
        return
    if args.pdf_precision:
        compare_pdf_precision(args)
        return

    n_frames, n_atoms = args.frames, args.atoms
    mda_frames = {"pdf": min(args.mda_pdf_frames or n_frames, n_frames), "msd": n_frames}
    load = os.getloadavg()
    print(f"{n_frames} frames x {n_atoms} atoms, load average at start {load[0]:.2f}", flush=True)
    rows, agreement = [], {}
    where = cpu_description()

    def row(task, implementation, figures, factor=1.0, note=""):
        return {
            "task": task,
            "implementation": implementation,
            "frames": n_frames,
            "atoms": n_atoms,
            "seconds": round(figures["seconds"] * factor, 2),
            "peak_MB": round(figures["peak_MB"]),
            "machine": where,
            "baseline_MB": round(figures["baseline_MB"]),
            "note": note,
        }

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for task in ("pdf", "msd"):
            for threads in args.threads:
                figures, ours = run_child(
                    task, "scalms", n_frames, n_atoms, args.device, threads, folder
                )
                count = figures["threads"]
                name = f"scalms ({args.device}, {count} thread{'s' if count > 1 else ''})"
                rows.append(row(task, name, figures))
            frames = mda_frames[task]
            figures, theirs = run_child(task, "MDAnalysis", frames, n_atoms, "cpu", 1, folder)
            if frames != n_frames:  # compare with ours on the same frames
                _, ours = run_child(task, "scalms", frames, n_atoms, "cpu", 0, folder)
            agreement[task] = compare(task, ours, theirs, frames)
            scale = n_frames / frames
            note = f"measured on {frames} frames, time x {scale:g}" if scale != 1 else ""
            reference = "InterRDF" if task == "pdf" else "EinsteinMSD(fft=True)"
            rows.append(row(task, f"MDAnalysis {reference}", figures, scale, note))
    load_end = os.getloadavg()
    for entry in rows:
        load_note = f"load average {load[0]:.1f} at start, {load_end[0]:.1f} at end"
        entry["note"] = "; ".join(part for part in (entry["note"], load_note) if part)
        if entry["implementation"].startswith("MDAnalysis"):
            entry["note"] += f"; ours vs theirs: {agreement[entry['task']]}"
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"\nMachine: {where}; load average {load[0]:.2f} at start, {load_end[0]:.2f} at end\n")
    print("| task | implementation | frames | atoms | seconds | speed-up vs MDAnalysis | peak MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for entry in rows:
        reference = next(
            r for r in rows if r["task"] == entry["task"] and r["implementation"].startswith("MD")
        )
        print(
            f"| {entry['task']} | {entry['implementation']} | {entry['frames']} | "
            f"{entry['atoms']} | {entry['seconds']} | "
            f"{reference['seconds'] / entry['seconds']:.1f}x | {entry['peak_MB']} |"
        )
    print()
    for task, line in agreement.items():
        print(f"{task}: {line}")
    scaled = [r for r in rows if "time x" in r["note"]]
    for entry in scaled:
        print(f"{entry['task']} {entry['implementation']}: {entry['note'].split(';')[0]}")


if __name__ == "__main__":
    main()
