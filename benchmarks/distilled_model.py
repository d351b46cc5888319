"""The distilled CPU model against its teacher, SevenNet-0, side by side on one 147-atom Ga-Pt
particle: accuracy on held-out MD frames, time per MD step, a 10 ps NVT run, and Ga diffusion.

Every number comes from a ``scalms`` command (printed before it runs); a step whose output
exists is skipped, so a killed run continues. The particle is the last frame of the teacher's
sampling MD of examples/Ga144Pt3_icosahedron.xyz (molten, 450 K) made by
ML_training/make_distilled_ga.py, which calls this script as its last step:

1. ``scalms dynamics run`` of the particle with each model: NVT (Langevin) at 450 K, 2 fs; the
   student 5,000 steps (10 ps, the stability run), the teacher 2,000 (4 ps: SevenNet-0 takes
   0.4 s a step here). Ga's diffusion coefficient of each over the window both share (FFT MSD,
   lags to 1 ps, centre-of-mass drift removed), and the student's over its whole run.
2. ``scalms benchmark accuracy`` of the student on every 10th frame of the teacher's run: frames
   the student never saw, with the teacher's energies and forces as the reference.
3. ``scalms benchmark cost``: seconds per MD step of both models on the 55- and 147-atom
   icosahedra of examples/ (ASE backend, 2 torch threads, serial), on this machine.

Writes benchmarks/results/distilled_model.json; benchmarks/plot_distilled_model.py draws
docs/figures/distilled_model.png from it and the run folders.

    .venv/bin/python benchmarks/distilled_model.py --work distill_work
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCALMS = str(REPO / ".venv" / "bin" / "scalms")
TEACHER = "7net-0"
STUDENT = "mace-distilled-7net0-GaX"
PARTICLE = "Ga144Pt3_icosahedron"
RESULTS = REPO / "benchmarks" / "results" / "distilled_model.json"
SPEED_STRUCTURES = ("Ga54Pt_icosahedron.xyz", "Ga144Pt3_icosahedron.xyz")


def run(*args: str, cwd: Path) -> None:
    print(f"\n$ {shlex.join(['scalms', *args])}", flush=True)
    started = time.perf_counter()
    subprocess.run([SCALMS, *args], cwd=cwd, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def start_structure(work: Path) -> Path:
    """The molten particle at 450 K: the last frame of the teacher's sampling run."""
    from ase.io import read, write

    out = work / "eval" / f"{PARTICLE}_450K.extxyz"
    if not out.exists():
        source = work / "train_only" / f"{TEACHER}__{PARTICLE}.xyz"
        out.parent.mkdir(parents=True, exist_ok=True)
        frame = read(source, index=-1)
        frame.calc = None
        write(out, frame, format="extxyz")
    return out


def nvt(work: Path, start: Path, model: str, config: Path, steps: int, as_is: bool = False) -> Path:
    """The NVT run of ``model``; with ``as_is``, a run already started is taken as it is (a run
    stopped early: ``scalms dynamics resume`` would continue it)."""
    folder = work / "eval" / f"md_{model}"
    started = (folder / "trajectories" / model).is_dir()
    if not (folder / "MD_dynamics_results.h5").exists() and not (as_is and started):
        run(
            "dynamics",
            "run",
            str(start),
            "--model",
            model,
            "-c",
            str(config),
            "--working-dir",
            str(folder),
            "--n-steps",
            str(steps),
            "--time-step-fs",
            "2",
            "--temperature-K",
            "450",
            "--save-interval",
            "10",
            "--diffusion",
            "Ga",
            "--msd-max-lag-fs",
            "1000",
            "--net-force",
            "--device",
            "cpu",
            "--seed",
            "7",
            cwd=work,
        )
    return folder


def accuracy(work: Path, teacher_run: Path, config: Path) -> Path:
    folder = work / "eval" / "accuracy"
    held_out = work / "eval" / "held_out.xyz"
    if not held_out.exists():
        [trajectory] = sorted((teacher_run / "trajectories" / TEACHER).glob("*.h5md"))
        frames = work / "eval" / "teacher_frames.xyz"
        run("io", "to-xyz", str(trajectory), str(frames), "--stride", "10", "--overwrite",
            cwd=work)  # fmt: skip
        from ase.io import read, write

        # frame 0 is the start structure, a frame of the student's training set: left out
        write(held_out, read(frames, index="1:"), format="extxyz")
    if not (folder / "metrics.csv").exists():
        run(
            "benchmark",
            "accuracy",
            str(held_out),
            "--model",
            STUDENT,
            "-c",
            str(config),
            "--working-dir",
            str(folder),
            "--device",
            "cpu",
            "--overwrite",
            cwd=work,
        )
    return folder


def speed(work: Path, config: Path) -> Path:
    folder = work / "eval" / "cost"
    if not (folder / "cost_summary.csv").exists():
        structures = [str(REPO / "examples" / name) for name in SPEED_STRUCTURES]
        run(
            "benchmark",
            "cost",
            *structures,
            "--model",
            TEACHER,
            "--model",
            STUDENT,
            "-c",
            str(config),
            "--working-dir",
            str(folder),
            "--steps",
            "60",
            "--warmup-steps",
            "5",
            "--time-step-fs",
            "2",
            "--backend",
            "ase",
            "--cpu-threads",
            "2",
            "--device",
            "cpu",
            cwd=work,
        )
    return folder


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def trajectory_of(md: Path, model: str):
    from scalms.io.trajectory import read_trajectory

    [path] = sorted((md / "trajectories" / model).glob("*.h5md"))
    return read_trajectory(path)


def ga_diffusion(trajectory, window_fs: float, start_fs: float = 0.0) -> dict:
    """D of Ga over ``window_fs`` of a run from ``start_fs`` (FFT MSD, every origin, lags to 1 ps,
    fit from 0.1 to 1 ps, centre-of-mass drift removed): the analysis ``--diffusion`` runs, on a
    window both models share."""
    from scalms.analysis.diffusion import mean_squared_displacement

    elapsed = trajectory.time_fs - trajectory.time_fs[0]
    keep = (elapsed >= start_fs - 1e-6) & (elapsed <= start_fs + window_fs + 1e-6)
    msd = mean_squared_displacement(
        trajectory.positions[keep],
        frame_interval_fs=float(np.diff(trajectory.time_fs[:2])[0]),
        numbers=trajectory.numbers,
        masses=trajectory.masses,
        traced="Ga",
        max_lag_fs=1000.0,
    )
    return {
        "window_ps": float(elapsed[keep][-1] - elapsed[keep][0]) / 1000.0,
        "D_cm2_per_s": msd.fit.D_cm2_per_s,
        "r2": msd.fit.r2,
        "fit_fs": [msd.fit.fit_start_fs, msd.fit.fit_end_fs],
        "lag_fs": msd.lag_fs.tolist(),
        "msd_A2": msd.msd_A2.tolist(),
    }


def stability(md: Path, model: str) -> dict:
    """Whether the run went to its end, and what its particle did: temperature after the first
    picosecond, and the largest distance of an atom from the centre of mass (evaporation)."""
    trajectory = trajectory_of(md, model)
    positions = np.asarray(trajectory.positions)
    masses = np.asarray(trajectory.masses)
    com = (positions * masses[None, :, None]).sum(axis=1) / masses.sum()
    radius = np.linalg.norm(positions - com[:, None, :], axis=2).max(axis=1)
    temperature = np.asarray(trajectory.temperature_K)
    settled = temperature[len(temperature) // 10 :]
    return {
        "frames": len(positions),
        "complete": bool(trajectory.complete),
        "all_finite": bool(np.isfinite(positions).all()),
        "temperature_K_mean": float(settled.mean()),
        "temperature_K_std": float(settled.std()),
        "max_radius_A_first": float(radius[0]),
        "max_radius_A_max": float(radius.max()),
        "simulated_ps": float(trajectory.time_fs[-1] - trajectory.time_fs[0]) / 1000.0,
        "time_ps": (trajectory.time_fs / 1000.0).tolist(),
        "temperature_K": temperature.tolist(),
        "max_radius_A": radius.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("distill_work"))
    parser.add_argument("--model-config", type=Path, default=REPO / "model_config.yaml")
    parser.add_argument("--steps", type=int, default=5000, help="student's NVT steps of 2 fs")
    parser.add_argument(
        "--teacher-steps", type=int, default=2000, help="teacher's NVT steps (0.4 s each here)"
    )
    parser.add_argument(
        "--teacher-as-is",
        action="store_true",
        help="take the teacher's run as far as it went (stopped early), without continuing it",
    )
    args = parser.parse_args(argv)
    work = args.work.resolve()
    config = args.model_config.resolve()
    start = start_structure(work)
    teacher_md = nvt(work, start, TEACHER, config, args.teacher_steps, args.teacher_as_is)
    student_md = nvt(work, start, STUDENT, config, args.steps)
    accuracy_dir = accuracy(work, teacher_md, config)
    cost_dir = speed(work, config)

    [metrics] = [r for r in rows(accuracy_dir / "metrics.csv") if r["model"] == STUDENT]
    timings = {
        (r["model"], int(r["n_atoms"])): float(r["s_per_step"])
        for r in rows(cost_dir / "cost_summary.csv")
    }
    teacher_run = trajectory_of(teacher_md, TEACHER)
    student_run = trajectory_of(student_md, STUDENT)
    shared_fs = float(teacher_run.time_fs[-1] - teacher_run.time_fs[0])
    d_teacher = ga_diffusion(teacher_run, shared_fs)
    d_student = ga_diffusion(student_run, shared_fs)
    d_student_full = ga_diffusion(student_run, float("inf"))
    # the student's run cut into windows as long as the teacher's: their spread is the
    # statistical uncertainty of one window's D
    student_fs = float(student_run.time_fs[-1] - student_run.time_fs[0])
    blocks = [
        ga_diffusion(student_run, shared_fs, k * shared_fs)["D_cm2_per_s"]
        for k in range(int(student_fs // shared_fs))
    ]
    sizes = sorted({n for _, n in timings})
    record = {
        "teacher": TEACHER,
        "student": STUDENT,
        "particle": PARTICLE,
        "held_out_accuracy": metrics,
        "s_per_step": {
            str(n): {TEACHER: timings[(TEACHER, n)], STUDENT: timings[(STUDENT, n)]} for n in sizes
        },
        "speedup": {str(n): timings[(TEACHER, n)] / timings[(STUDENT, n)] for n in sizes},
        "stability": {
            TEACHER: stability(teacher_md, TEACHER),
            STUDENT: stability(student_md, STUDENT),
        },
        "D_Ga_cm2_per_s": {
            TEACHER: d_teacher["D_cm2_per_s"],
            STUDENT: d_student["D_cm2_per_s"],
            f"{STUDENT} (whole run)": d_student_full["D_cm2_per_s"],
        },
        "D_student_windows_cm2_per_s": blocks,
        "D_student_windows_mean_std": [float(np.mean(blocks)), float(np.std(blocks, ddof=1))]
        if len(blocks) > 1
        else None,
        "D_relative_difference": (d_student["D_cm2_per_s"] - d_teacher["D_cm2_per_s"])
        / d_teacher["D_cm2_per_s"],
        "msd": {TEACHER: d_teacher, STUDENT: d_student, f"{STUDENT} (whole run)": d_student_full},
        "work": str(work),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps(
            {k: record[k] for k in ("speedup", "D_Ga_cm2_per_s", "D_relative_difference")}, indent=2
        )
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
