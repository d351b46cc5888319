"""Regenerate the starting committee of the active-learning example and tests:
ML_training/models/mace-committee-GaPt-s1.model and -s2.model.

Two tiny MACE models of the same architecture (the tiny test model's: 2 layers of 16 scalar and
16 vector channels, max_ell 2, correlation 2, 5 Å), trained from scratch with different seeds on
the same 40 rattled Ga/Pt icosahedra (13 and 55 atoms, SevenNet-0 labels, ML_training/data/).
They agree near their training data and disagree on what they never saw, such as a molten
50-atom Ga-Pt particle: the gap active learning is for (``scalms learn run``; docs/learn.md).
**They are not for science.**

Each training is a ``scalms train mace`` command (printed as it runs) into a scratch folder with
its own model_config.yaml; a finished training is skipped on a rerun. About 2 minutes per model
on 2 idle CPU cores. Run from the repository root after ``scalms env create mace``::

    .venv/bin/python ML_training/make_learn_committee.py --work committee_work
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCALMS = str(REPO / ".venv" / "bin" / "scalms")
DATA = HERE / "data" / "GaPt_train.extxyz"
TEST = HERE / "data" / "GaPt_test.extxyz"
E0 = REPO / "tests" / "data" / "E0_7net0_GaPtPdAgAuBiCH.json"
WORK_CONFIG = "SevenNet:\n  models:\n    7net-0: {}   # the labeller of the data\n"
SEEDS = (1, 2)
N_TRAIN = 40
"""The first 40 frames train, the last 8 validate (the tiny model's split)."""
ARCHITECTURE = (
    "--num-channels", "16", "--max-L", "1", "--max-ell", "2", "--correlation", "2",
    "--r-max", "5.0", "--num-interactions", "2", "--dtype", "float32",
    "--epochs", "40", "--batch-size", "4", "--lr", "0.01",
)  # fmt: skip


def name_of(seed: int) -> str:
    return f"mace-committee-GaPt-s{seed}"


def run(*args: str, cwd: Path) -> None:
    print(f"\n$ {shlex.join(['scalms', *args])}", flush=True)
    started = time.perf_counter()
    subprocess.run([SCALMS, *args], cwd=cwd, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def split(work: Path) -> tuple[Path, Path]:
    from ase.io import read, write

    train, valid = work / "train.extxyz", work / "valid.extxyz"
    if not valid.exists():
        frames = read(DATA, index=":")
        write(train, frames[:N_TRAIN], format="extxyz")
        write(valid, frames[N_TRAIN:], format="extxyz")
    return train, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("committee_work"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "model_config.yaml"
    if not config.exists():
        config.write_text(WORK_CONFIG)
    train, valid = split(work)
    for seed in SEEDS:
        name = name_of(seed)
        target = HERE / "models" / f"{name}.model"
        if target.exists():
            print(f"{target}: exists, skipped")
            continue
        run(
            "train", "mace", "--train", str(train), "--valid", str(valid), "--test", str(TEST),
            "--e0", str(E0), "--name", name, "--seed", str(seed), *ARCHITECTURE,
            "--device", args.device, "--runs-dir", str(work / "runs"),
            "--model-config", str(config), cwd=work,
        )  # fmt: skip
        shutil.copyfile(work / "runs" / name / f"{name}.model", target)
        print(f"-> {target}")


if __name__ == "__main__":
    main()
