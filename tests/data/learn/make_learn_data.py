"""Regenerate the active-learning test data (tests/test_learn*.py) from the repository root:

    .venv/bin/python tests/data/learn/make_learn_data.py

- ``Ga47Pt3.extxyz``: the last frame of ``tests/data/cluster/Ga47Pt3_450K.extxyz`` (a molten
  50-atom Ga-Pt particle of SevenNet-0 MD at 450 K): where each round's MD starts.
- ``Ga47Pt3_held_out.extxyz``: six earlier frames of that run (5, 9, 13, 17, 21, 25), labelled
  by SevenNet-0 (``REF_energy``, ``REF_forces``) through ``scalms static``: the fixed held-out
  set the committee is scored on each round.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from ase.io import read, write

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SOURCE = REPO / "tests" / "data" / "cluster" / "Ga47Pt3_450K.extxyz"
HELD_OUT_FRAMES = (5, 9, 13, 17, 21, 25)


def main() -> None:
    frames = read(SOURCE, index=":")
    start = frames[-1].copy()
    start.info = {}
    write(HERE / "Ga47Pt3.extxyz", start, format="extxyz")
    with tempfile.TemporaryDirectory() as tmp:
        chosen = Path(tmp) / "held_out.extxyz"
        write(chosen, [frames[i] for i in HELD_OUT_FRAMES], format="extxyz")
        out = Path(tmp) / "labels.h5"
        subprocess.run(
            [str(REPO / ".venv/bin/scalms"), "static", str(chosen), "--model", "7net-0",
             "--backend", "ase", "--device", "cpu", "--out", str(out)],
            check=True, cwd=REPO,
        )  # fmt: skip
        from scalms.io.static_results import read_results

        labelled = read_results(out)["7net-0"]["held_out"]
    held_out = []
    for index, atoms in zip(HELD_OUT_FRAMES, labelled, strict=True):
        frame = atoms.copy()
        frame.info = {"REF_energy": float(atoms.get_potential_energy()), "source_frame": index}
        frame.arrays["REF_forces"] = np.array(atoms.get_forces())
        frame.calc = None
        held_out.append(frame)
    write(HERE / "Ga47Pt3_held_out.extxyz", held_out, format="extxyz")


if __name__ == "__main__":
    main()
