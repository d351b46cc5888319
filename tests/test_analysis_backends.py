"""The analyses give one answer whichever engine computes them (NumPy on a CPU, torch for a GPU),
and an analysis on a CPU never imports torch: its import costs more than a small analysis
(benchmarks/cli_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

from scalms.analysis import (
    msd_direct,
    msd_fft,
    pair_distribution,
    partial_pair_distribution,
    solute_trace,
)
from scalms.testing import GA_FCC_LATTICE_A, write_jiggling_run

GA, PT = 31, 78


def on_each_engine(compute, monkeypatch):
    """``compute()`` on NumPy, then on torch (the GPU code path, run on the CPU)."""
    import scalms.analysis._cpu as cpu

    answers = []
    for name in ("numpy", "torch"):
        monkeypatch.setattr(cpu, "CPU_ENGINE", name)
        answers.append(compute())
    return answers


def cloud(n_atoms=90, n_frames=5, seed=0):
    """Random Ga/Pt positions in a 9 Å ball (no distance on a bin edge), with atomic numbers."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n_frames, n_atoms, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = 9.0 * rng.random((n_frames, n_atoms, 1)) ** (1 / 3)
    numbers = np.full(n_atoms, GA)
    numbers[rng.choice(n_atoms, 13, replace=False)] = PT
    return direction * radius + 5.0, numbers


def test_numpy_and_torch_pdfs_agree_full_partial_periodic_and_per_frame_labels(monkeypatch):
    positions, numbers = cloud()
    crystal = bulk("Ga", "fcc", a=GA_FCC_LATTICE_A, cubic=True).repeat(3)
    crystal.rattle(0.1, seed=2)
    labels = np.random.default_rng(3).random((5, 90)) < 0.4
    cases = [
        lambda: pair_distribution(positions, r_max_A=8.0, n_bins=40),
        lambda: partial_pair_distribution(positions, numbers, "Pt-Ga", mode="pair-fraction"),
        lambda: pair_distribution(positions, mask_a=labels, mask_b=~labels, r_max_A=7.0),
        lambda: pair_distribution(
            crystal.positions[None], r_max_A=5.5, n_bins=37, cell=crystal.cell[:], pbc=True
        ),
        lambda: pair_distribution(positions, r_max_A=8.0, n_bins=40, precision="float32"),
    ]
    for compute in cases:
        ours, torch_ = on_each_engine(compute, monkeypatch)
        assert ours.g.sum() > 0
        np.testing.assert_allclose(ours.g, torch_.g, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ours.r_A, torch_.r_A)


def test_numpy_and_torch_msds_agree_for_every_origin_and_strided_origins(monkeypatch):
    steps = np.random.default_rng(4).normal(scale=0.3, size=(120, 7, 3))
    positions = np.cumsum(steps, axis=0) + 100.0  # far from 0: the centring must hold
    for compute in (
        lambda: msd_fft(positions, 50),
        lambda: msd_direct(positions, 40, origin_stride=3),
    ):
        ours, torch_ = on_each_engine(compute, monkeypatch)
        np.testing.assert_allclose(ours, torch_, rtol=1e-10, atol=1e-9)
    # and both equal the definition, term by term over all origins
    lag = 17
    exact = ((positions[lag:] - positions[:-lag]) ** 2).sum(-1).mean(0)
    np.testing.assert_allclose(msd_fft(positions, 50)[lag], exact, rtol=1e-10)


def test_numpy_and_torch_traces_agree(monkeypatch):
    positions, numbers = cloud(n_atoms=60, n_frames=4, seed=5)
    masses = np.where(numbers == PT, 195.08, 69.72)

    def compute():
        return solute_trace(
            positions, masses, numbers, traced="Pt", time_fs=np.arange(4.0), n_surface=4
        )

    ours, torch_ = on_each_engine(compute, monkeypatch)
    np.testing.assert_allclose(ours.distance_A, torch_.distance_A, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.surface_A, torch_.surface_A, rtol=0, atol=1e-12)


NO_TORCH_SCRIPT = """
import json, sys
from scalms.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = ("torch", "matplotlib", "plotly", "ase.io", "scipy")
    print(json.dumps({name: name in sys.modules for name in heavy}))
"""


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "diffusion", "{run}", "-e", "Pt", "--no-plot"],
        ["analyze", "pdf", "{run}", "--pair", "Pt-Ga", "--no-plot"],
        ["analyze", "trace", "{run}", "-e", "Pt", "--no-plot"],
        ["analyze", "net-force", "{run}", "--no-plot"],
    ],
    ids=["diffusion", "pdf", "trace", "net-force"],
)
def test_a_small_analysis_on_the_cpu_imports_no_torch_and_no_plotting(tmp_path, command):
    run = write_jiggling_run(tmp_path / "run.h5md", n_frames=20, velocities=False)
    args = [a.format(run=run) for a in command] + ["-o", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == dict.fromkeys(imported, False), imported
    assert any((tmp_path / "out").rglob("*.json"))
