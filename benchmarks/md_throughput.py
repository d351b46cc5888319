"""MD throughput of SevenNet-0 (``7net-0``): TorchSim batched against ASE serial, in atom-steps/s.

The structures are 55-atom Ga54Pt icosahedra (``scalms.testing.ga_cluster(3, seed=i)``: the Pt
site differs with the seed) in a 40 Å vacuum box without periodicity, NVT Langevin at 450 K with
a 1 fs step. Both engines are scalms's own, as users run them: ``torchsim_md.run_batch`` advances
all N structures in one batch; ``ase_md.run_one`` advances them one after another and the wall
times are summed. Each model is loaded once; every measurement is preceded by an untimed warm-up
of a few steps of the same shape (same batch size for TorchSim).

A timed run is the whole engine call: set-up, the step-0 frame and force evaluation, the steps,
the frames every ``save_interval`` steps (positions, velocities, forces and energies to H5MD) and
the checkpoints. A second pass with ``save_interval`` above ``n_steps`` (only the step-0 frame and
the start and end checkpoints) is the "no I/O" reference, so the cost of writing frames shows.

Usage, inside the SevenNet environment:
    .venvs/sevennet/bin/python benchmarks/md_throughput.py [--systems 1 4 16] [--steps N]
        [--device cpu|cuda] [--save-interval N] [--ase-max-systems K] [--threads T] [--no-plot]
Defaults: 1 4 16 systems and 20 steps on CPU; 1 4 16 64 256 systems and 100 steps on CUDA.
With more systems than ``--ase-max-systems`` (default 16), ASE runs on that many and its time is
scaled to all of them (serial work grows linearly), marked in the ``note`` column.

Writes benchmarks/results/md_throughput.csv (rows of other devices are kept, rows of this device
replaced), benchmarks/results/md_throughput.png (atom-steps/s against the number of systems), and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _machine import cpu_description
from ase import Atoms

RESULTS = Path(__file__).parent / "results"
CSV_PATH = RESULTS / "md_throughput.csv"
PLOT_PATH = RESULTS / "md_throughput.png"
MODEL_NAME = "7net-0"
WARMUP_STEPS = 3
COLUMNS = [
    "backend",
    "device",
    "n_systems",
    "atoms_per_system",
    "total_atoms",
    "steps",
    "save_interval",
    "seconds",
    "atom_steps_per_s",
    "s_per_step_per_system",
    "speedup_vs_ase",
    "peak_vram_MB",
    "load_avg_1min",
    "machine",
    "torch_threads",
    "date",
    "note",
]


def machine(device: str) -> str:
    """CPU model and core count, and the GPU's name when running on CUDA."""
    where = cpu_description()
    if device.startswith("cuda"):
        import torch

        where += f", {torch.cuda.get_device_name(device)}"
    return where


def structures(n_systems: int) -> list[Atoms]:
    """``n_systems`` Ga54Pt icosahedra, each with its Pt on a different seeded site."""
    from scalms.testing import ga_cluster

    return [ga_cluster(3, seed=i) for i in range(n_systems)]


def md_settings(n_steps: int, save_interval: int):
    from scalms.dynamics.settings import MDSettings

    return MDSettings(
        n_steps=n_steps, time_step_fs=1.0, temperature_K=450, save_interval=save_interval
    )


def batch_runs(folder: Path, atoms_list: list[Atoms], settings) -> list:
    """One :class:`BatchRun` per structure, each writing its own H5MD file in ``folder``."""
    from scalms.dynamics.torchsim_md import BatchRun
    from scalms.io.trajectory import TrajectoryWriter

    runs = []
    for i, atoms in enumerate(atoms_list):
        writer = TrajectoryWriter.create(
            folder / f"s{i}.h5md",
            numbers=atoms.numbers,
            masses=atoms.get_masses(),
            pbc=atoms.pbc,
            time_step_fs=settings.time_step_fs,
            save_interval=settings.save_interval,
            model=MODEL_NAME,
            structure=f"s{i}",
            parameters=settings.to_dict(),
            target_step=settings.n_steps,
        )
        runs.append(BatchRun(f"s{i}", atoms, writer))
    return runs


def timed(work: Callable[[Path], None], device: str) -> tuple[float, float | None]:
    """Wall seconds of ``work(folder)`` in a fresh temporary folder, and peak VRAM in MB."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        work(Path(folder))
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return seconds, peak


def torchsim_work(model, atoms_list: list[Atoms], settings, device: str):
    """The batched run of ``atoms_list`` as a function of its output folder."""
    from scalms.dynamics.torchsim_md import run_batch

    def work(folder: Path) -> None:
        runs = batch_runs(folder, atoms_list, settings)
        try:
            run_batch(runs, model, settings, folder / "batch.pt", device)
        finally:
            for run in runs:
                run.writer.close()

    return work


def ase_work(calculator, atoms_list: list[Atoms], settings):
    """The serial runs of ``atoms_list``, one after another, as a function of the folder."""
    from scalms.dynamics.ase_md import run_one

    def work(folder: Path) -> None:
        runs = batch_runs(folder, atoms_list, settings)
        try:
            for run in runs:
                run_one(run, calculator, settings, folder / f"{run.label}.npz")
        finally:
            for run in runs:
                run.writer.close()

    return work


def measure(
    backend: str,
    loaded,
    n_systems: int,
    n_steps: int,
    save_interval: int,
    device: str,
) -> dict | None:
    """One row: warm up untimed, then time ``n_steps`` on ``n_systems`` structures."""
    import torch

    atoms_list = structures(n_systems)

    def work(n: int, atoms: list[Atoms]) -> Callable[[Path], None]:
        settings = md_settings(n, save_interval)
        if backend == "torchsim":
            return torchsim_work(loaded, atoms, settings, device)
        return ase_work(loaded, atoms, settings)

    load_1min = os.getloadavg()[0]
    try:
        # TorchSim warms up on the measured batch (a batch size's first call pays for
        # allocations and, on CUDA, kernel selection); ASE on one structure, the shape of all.
        timed(work(WARMUP_STEPS, atoms_list if backend == "torchsim" else atoms_list[:1]), device)
        seconds, peak = timed(work(n_steps, atoms_list), device)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        print(f"  {backend} {n_systems} systems: out of GPU memory, skipped", flush=True)
        return None
    atoms_per_system = len(atoms_list[0])
    total_atoms = atoms_per_system * n_systems
    row = {
        "backend": backend,
        "device": device,
        "n_systems": n_systems,
        "atoms_per_system": atoms_per_system,
        "total_atoms": total_atoms,
        "steps": n_steps,
        "save_interval": save_interval,
        "seconds": round(seconds, 3),
        "atom_steps_per_s": round(total_atoms * n_steps / seconds, 1),
        "s_per_step_per_system": round(seconds / (n_steps * n_systems), 5),
        "speedup_vs_ase": "",
        "peak_vram_MB": "" if peak is None else round(peak, 1),
        "load_avg_1min": round(load_1min, 2),
        "note": "",
    }
    print(
        f"  {backend:8} {n_systems:4} systems, save every {save_interval:4} steps: "
        f"{seconds:8.2f} s, {row['atom_steps_per_s']:9.1f} atom-steps/s, "
        f"load {load_1min:.2f}",
        flush=True,
    )
    return row


def scaled_ase_row(measured: dict, n_systems: int) -> dict:
    """ASE serial on ``n_systems`` from a run on fewer: the serial work grows linearly."""
    factor = n_systems / measured["n_systems"]
    seconds = measured["seconds"] * factor
    total_atoms = measured["atoms_per_system"] * n_systems
    return {
        **measured,
        "n_systems": n_systems,
        "total_atoms": total_atoms,
        "seconds": round(seconds, 3),
        "note": f"ASE timed on {measured['n_systems']} structures, scaled x {factor:g}",
    }


def add_speedups(rows: list[dict]) -> None:
    """TorchSim's atom-steps/s over ASE's at the same number of systems and save interval."""
    ase = {
        (r["n_systems"], r["save_interval"]): r["atom_steps_per_s"]
        for r in rows
        if r["backend"] == "ase"
    }
    for row in rows:
        reference = ase.get((row["n_systems"], row["save_interval"]))
        if reference:
            row["speedup_vs_ase"] = round(row["atom_steps_per_s"] / reference, 2)


def merge_csv(rows: list[dict], device: str) -> list[dict]:
    """Rows of other devices already in the CSV, then this run's rows; the whole file rewritten."""
    kept = []
    if CSV_PATH.exists():
        with CSV_PATH.open(newline="") as handle:
            kept = [r for r in csv.DictReader(handle) if r.get("device") != device]
    merged = kept + rows
    RESULTS.mkdir(exist_ok=True)
    with CSV_PATH.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(merged)
    return merged


def plot(rows: list[dict]) -> bool:
    """Atom-steps/s against the number of systems, one line per device, backend and I/O."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, NullLocator
    except ImportError:
        print("matplotlib is not installed here: no plot")
        return False
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    lines: dict[tuple[str, str, bool], list[tuple[int, float]]] = {}
    for row in rows:
        no_io = int(row["save_interval"]) > int(row["steps"])
        key = (row["device"], row["backend"], no_io)
        lines.setdefault(key, []).append((int(row["n_systems"]), float(row["atom_steps_per_s"])))
    colours = {"torchsim": "tab:blue", "ase": "tab:orange"}
    markers = {"cpu": "o", "cuda": "s"}
    for (device, backend, no_io), points in sorted(lines.items()):
        points.sort()
        axes.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker=markers.get(device.split(":")[0], "^"),
            linestyle="--" if no_io else "-",
            color=colours.get(backend, "grey"),
            label=f"{backend} {'batched' if backend == 'torchsim' else 'serial'}, {device}"
            + (", no I/O" if no_io else ""),
        )
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    ticks = sorted({int(row["n_systems"]) for row in rows})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.xaxis.set_minor_locator(NullLocator())
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.set_xlabel("nanoparticles (55 atoms each)")
    axes.set_ylabel("atom-steps per second")
    axes.set_title("SevenNet-0 MD throughput, Ga54Pt icosahedra, NVT 450 K")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(PLOT_PATH, dpi=120)
    return True


def _interval(row: dict) -> str:
    no_io = int(row["save_interval"]) > int(row["steps"])
    return f"{row['save_interval']} (no I/O)" if no_io else str(row["save_interval"])


def markdown(rows: list[dict]) -> str:
    head = (
        "| backend | device | systems | atoms | steps | save every | s | atom-steps/s "
        "| s/step/system | vs ASE | peak VRAM MB | load 1 min | note |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    lines = [
        f"| {r['backend']} | {r['device']} | {r['n_systems']} | {r['total_atoms']} | {r['steps']} "
        f"| {_interval(r)} | {r['seconds']} | {r['atom_steps_per_s']} "
        f"| {r['s_per_step_per_system']} | {r['speedup_vs_ase']} | {r['peak_vram_MB']} "
        f"| {r['load_avg_1min']} | {r['note']} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--systems", type=int, nargs="+", help="default 1 4 16 (CPU), 1 4 16 64 256 (CUDA)"
    )
    parser.add_argument("--steps", type=int, help="timed MD steps; default 20 (CPU), 100 (CUDA)")
    parser.add_argument("--save-interval", type=int, default=10, help="steps between frames")
    parser.add_argument("--ase-max-systems", type=int, default=16)
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's own, one per core)"
    )
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()

    import torch

    from scalms.config import ModelEntry
    from scalms.models.loading import load, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    systems = args.systems or ([1, 4, 16, 64, 256] if cuda else [1, 4, 16])
    n_steps = args.steps or (100 if cuda else 20)
    intervals = [args.save_interval]
    if args.save_interval <= n_steps:
        intervals.append(n_steps + 1)  # the no-I/O reference: only the step-0 frame

    where = machine(device)
    threads = torch.get_num_threads()
    print(
        f"SevenNet-0 MD throughput on {device} ({where}; torch {torch.__version__}, "
        f"{threads} threads); {n_steps} timed steps after {WARMUP_STEPS} warm-up steps; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    entry = ModelEntry(name=MODEL_NAME, family="sevennet")
    loaded = {"torchsim": load(entry, "torchsim", device), "ase": load(entry, "ase", device)}

    rows = []
    for n_systems in systems:
        for save_interval in intervals:
            for backend in ("ase", "torchsim"):
                if backend == "ase" and n_systems > args.ase_max_systems:
                    cap = args.ase_max_systems
                    measured = next(
                        (
                            r
                            for r in rows
                            if (r["backend"], r["n_systems"], r["save_interval"])
                            == ("ase", cap, save_interval)
                        ),
                        None,
                    ) or measure("ase", loaded["ase"], cap, n_steps, save_interval, device)
                    row = measured and scaled_ase_row(measured, n_systems)
                else:
                    row = measure(
                        backend, loaded[backend], n_systems, n_steps, save_interval, device
                    )
                if row is not None:
                    rows.append(row)
    date = datetime.date.today().isoformat()
    for row in rows:
        row.update(machine=where, torch_threads=threads, date=date)
    add_speedups(rows)
    merged = merge_csv(rows, device)
    if not args.no_plot and plot(merged):
        print(f"plot: {PLOT_PATH}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; CSV: {CSV_PATH}\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
