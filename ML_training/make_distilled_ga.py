"""Regenerate ML_training/models/mace-distilled-7net0-GaX.model: a small, fast MACE for CPUs,
distilled from SevenNet-0 (the embedded default) on Ga particles with Pt, Pd, Ag, Au or Bi, and
propane near them.

The student learns SevenNet-0's energies and forces, not DFT's: it inherits every error of its
teacher and adds its own. Use it where SevenNet-0 is too slow on a CPU (long MD of one particle),
and check anything that matters against SevenNet-0 or DFT.

Every step is a ``scalms`` command (printed before it runs), and a step whose output exists is
skipped, so a killed run continues where it stopped:

1. particles: alpha-Ga Wulff particles of about 45 atoms, pure and with 2 atoms of each
   solute (``scalms geometry nanoparticle --no-melt``), and the 147-atom Ga144Pt3 icosahedron
   of examples/.
2. sample: SevenNet-0 MD of every particle through 1000, 700 and 450 K (``scalms dynamics run``),
   frames exported with their SevenNet-0 energies and forces (``scalms io to-xyz``).
3. rattle: rattled frames of the MD particles, some with propane around them, labelled by
   SevenNet-0 (``scalms hpc rattle --calculator 7net-0``); E0s of the isolated atoms
   (``scalms hpc e0``).
4. package: train/valid/test by source file (``scalms hpc package``).
5. train: a MACE from scratch (``scalms train mace``).
6. evaluate (``benchmarks/distilled_model.py``, then ``plot_distilled_model.py``): held-out
   frames of a SevenNet-0 NVT run of the molten Ga144Pt3 at 450 K (4 ps); a 10 ps NVT run of
   the student from the same frame; Ga diffusion of both; seconds per MD step of both at 55 and
   147 atoms. The figures are those of docs/distilled_model.md.

Run from the repository root after ``make envs`` (about an hour on 2 idle CPU cores, most of it
SevenNet-0 MD)::

    .venv/bin/python ML_training/make_distilled_ga.py --work distill_work
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCALMS = str(REPO / ".venv" / "bin" / "scalms")
SOLUTES = ("Pt", "Pd", "Ag", "Au", "Bi")
SIZES = (45,)
TEACHER = "7net-0"
HELD_OUT = REPO / "examples" / "Ga144Pt3_icosahedron.xyz"
TIME_STEP_FS = 2.0
STUDENT = "mace-distilled-7net0-GaX"
WORK_CONFIG = "SevenNet:\n  models:\n    7net-0: {}   # the teacher, bundled with sevenn\n"
STUDENT_ARCHITECTURE = (
    # 2 layers of 16 scalar and 16 vector channels, max_ell 2, correlation 2, 5 Å: the size of
    # the tiny test model, which runs about 8x faster than SevenNet-0 on a CPU
    "--num-channels", "16", "--max-L", "1", "--max-ell", "2", "--correlation", "2",
    "--r-max", "5.0", "--num-interactions", "2", "--dtype", "float32",
    "--epochs", "40", "--batch-size", "4", "--lr", "0.01",
    "--extra-arg", "ema=True", "--extra-arg", "ema_decay=0.99",
)  # fmt: skip
SAMPLE_STAGES = ("100:1000", "100:700", "150:450")
"""Steps:K of the sampling MD: melt hot, then cool to the working temperature."""


def run(*args: str, cwd: Path) -> None:
    command = [SCALMS, *args]
    print(f"\n$ {shlex.join(['scalms', *args])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def particles(work: Path) -> list[Path]:
    """Step 1: the particles to sample, built without melting (MD melts them next)."""
    out = work / "particles"
    if not (out / "geometry.json").exists():
        sizes = [a for n in SIZES for a in ("--size", str(n))]
        solutes = [a for s in SOLUTES for a in ("--solute", s)]
        run(
            "geometry",
            "nanoparticle",
            "--no-melt",
            *sizes,
            *solutes,
            "--count",
            "2",
            "--out",
            str(out),
            "--overwrite",
            cwd=work,
        )
    pure = work / "particles_pure"
    if not (pure / "geometry.json").exists():
        sizes = [a for n in SIZES for a in ("--size", str(n))]
        run(
            "geometry",
            "nanoparticle",
            "--no-melt",
            *sizes,
            "--out",
            str(pure),
            "--overwrite",
            cwd=work,
        )
    found = sorted(out.glob("*.extxyz")) + sorted(pure.glob("*.extxyz"))
    return [*found, HELD_OUT]


def sample(work: Path, structures: list[Path], device: str) -> Path:
    """Step 2: SevenNet-0 MD of every particle; frames with their energies and forces."""
    md = work / "md_sample"
    frames = work / "labelled" / "md"
    if not (md / "MD_dynamics_results.h5").exists():
        stages = [a for s in SAMPLE_STAGES for a in ("--stage", s)]
        run(
            "dynamics",
            "run",
            *map(str, structures),
            "--model",
            TEACHER,
            "--working-dir",
            str(md),
            *stages,
            "--time-step-fs",
            str(TIME_STEP_FS),
            "--save-interval",
            "10",
            "--device",
            device,
            "--no-plot",
            "--seed",
            "1",
            cwd=work,
        )
    if not frames.exists():
        run(
            "io",
            "to-xyz",
            str(md / "MD_dynamics_results.h5"),
            str(frames),
            "--stride",
            "1",
            cwd=work,
        )
    return md


def pool(frames_dir: Path, names: list[str], out: Path) -> Path:
    """One extended XYZ of the MD frames of the particles ``names`` (what rattle draws from)."""
    from ase.io import read, write

    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        frames = []
        for name in names:
            frames += read(frames_dir / f"{TEACHER}__{name}.xyz", index=":")
        write(out, frames, format="extxyz")
    return out


def rattle(work: Path, device: str) -> Path:
    """Step 3: rattled MD frames, some with propane, and the E0s, all labelled by SevenNet-0."""
    frames_dir = work / "labelled" / "md"
    names = [p.stem.split("__", 1)[1] for p in sorted(frames_dir.glob("*.xyz"))]
    small = [n for n in names if n != HELD_OUT.stem]
    labelled = work / "labelled"
    particles = pool(frames_dir, small, work / "pools" / "particles.extxyz")
    # propane around the ~42-atom particles: room for three molecules within a small box
    with_molecules = pool(
        frames_dir,
        [n for n in small if n.startswith("Ga4")],
        work / "pools" / "small_particles.extxyz",
    )
    run(
        "hpc",
        "rattle",
        str(particles),
        "--calculator",
        TEACHER,
        "--stddev-A",
        "0.1",
        "--count",
        "120",
        "--seed",
        "2",
        "--out",
        str(labelled / "rattled.xyz"),
        "--device",
        device,
        cwd=work,
    )
    run(
        "hpc",
        "rattle",
        str(with_molecules),
        "--calculator",
        TEACHER,
        "--stddev-A",
        "0.05",
        "--count",
        "48",
        "--seed",
        "3",
        "--molecule",
        "propane",
        "--n-molecules",
        "3",
        "--out",
        str(labelled / "propane.xyz"),
        "--device",
        device,
        cwd=work,
    )
    e0 = work / "e0" / "E0.json"
    run(
        "hpc",
        "e0",
        *[a for e in ("H", "C", "Ga", *SOLUTES) for a in ("-e", e)],
        "--calculator",
        TEACHER,
        "--out",
        str(e0),
        "--device",
        device,
        cwd=work,
    )
    return e0


def package(work: Path) -> Path:
    """Step 4: train/valid/test by source file; the 147-atom particle's frames train only."""
    dataset = work / "dataset"
    if not (dataset / "dataset_0" / "train.xyz").exists():
        held = work / "labelled" / "md" / f"{TEACHER}__{HELD_OUT.stem}.xyz"
        large = work / "train_only" / held.name
        large.parent.mkdir(exist_ok=True)
        if not large.exists():
            held.rename(large)
        run(
            "hpc",
            "package",
            str(work / "labelled"),
            "--pattern",
            "**/*.xyz",
            "--out",
            str(dataset),
            "--split",
            "80-10-10",
            "--extra",
            str(large),
            "--extra",
            str(work / "e0" / "E0.xyz"),
            "--seed",
            "0",
            cwd=work,
        )
    return dataset / "dataset_0"


def train(work: Path, dataset: Path, device: str) -> Path:
    """Step 5: a small MACE from scratch on the teacher's labels, shipped in ML_training/models/
    and registered in the repository's model_config.yaml."""
    model = work / "runs" / STUDENT / f"{STUDENT}.model"
    if not model.exists():
        run("train", "mace", "--train", str(dataset / "train.xyz"), "--valid",
            str(dataset / "valid.xyz"), "--test", str(dataset / "test.xyz"), "--e0",
            str(work / "e0" / "E0.json"), "--name", STUDENT, *STUDENT_ARCHITECTURE,
            "--device", device, "-c", str(work / "model_config.yaml"), "--runs-dir",
            str(work / "runs"), cwd=work)  # fmt: skip
    if not model.exists():  # MACE names its file after the run; take what it wrote
        [model] = sorted((work / "runs" / STUDENT).glob("*.model"))[:1]
    shipped = HERE / "models" / f"{STUDENT}.model"
    shutil.copyfile(model, shipped)
    config = REPO / "model_config.yaml"
    if STUDENT not in config.read_text():
        from scalms.training.register import register_model

        register_model(config, STUDENT, "MACE", shipped, {"default_dtype": "float32"})
    return shipped


def evaluate(work: Path) -> None:
    """Step 6: the figures of docs/distilled_model.md."""
    for script in ("distilled_model.py", "plot_distilled_model.py"):
        command = [sys.executable, str(REPO / "benchmarks" / script)]
        if script == "distilled_model.py":
            command += ["--work", str(work)]
        print(f"\n$ {shlex.join(command)}", flush=True)
        subprocess.run(command, cwd=REPO, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("distill_work"),
        help="working folder (every intermediate file)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--until", choices=STEPS, default=None, help="stop after this step")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "model_config.yaml").exists():
        # the teacher only: the student is registered here by `scalms train mace`, and in the
        # repository's model_config.yaml (with the shipped file) by step 5
        (work / "model_config.yaml").write_text(WORK_CONFIG)
    structures = particles(work)
    if args.until == "particles":
        return 0
    sample(work, structures, args.device)
    if args.until == "sample":
        return 0
    if not (work / "dataset" / "dataset_0" / "train.xyz").exists():
        rattle(work, args.device)
    if args.until == "rattle":
        return 0
    dataset = package(work)
    if args.until == "package":
        return 0
    train(work, dataset, args.device)
    if args.until == "train":
        return 0
    evaluate(work)
    return 0


STEPS = ("particles", "sample", "rattle", "package", "train", "evaluate")

if __name__ == "__main__":
    sys.exit(main())
