"""The shipped distilled model (ML_training/models/mace-distilled-7net0-GaX.model) keeps what
docs/distilled_model.md claims for it: registered under a name that says what it is, and within
0.10 eV/Å of its teacher's forces on held-out frames of the 147-atom Ga-Pt particle at 450 K."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import load_config

from .conftest import REPO, needs_env

NAME = "mace-distilled-7net0-GaX"
HELD_OUT = REPO / "tests" / "data" / "distilled_held_out_Ga144Pt3_450K.extxyz"
"""Frames of SevenNet-0's own NVT run of the particle (every 300 fs from 0.3 ps), with its energies
and forces: the student never saw them (benchmarks/distilled_model.py)."""


def test_the_distilled_model_is_registered_with_its_shipped_file():
    entry = load_config(REPO / "model_config.yaml").entries[NAME]
    assert "distilled" in entry.name and entry.family == "mace"
    assert entry.model_path == REPO / "ML_training" / "models" / f"{NAME}.model"
    assert entry.model_path.is_file() and entry.model_path.stat().st_size < 1_000_000


@pytest.mark.mace
@needs_env("mace")
def test_the_distilled_model_follows_its_teacher_on_held_out_frames(tmp_path):
    result = CliRunner().invoke(
        app,
        ["benchmark", "accuracy", str(HELD_OUT), "--model", NAME, "-c",
         str(REPO / "model_config.yaml"), "--working-dir", str(tmp_path / "bench"),
         "--device", "cpu", "--no-plot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(tmp_path / "bench" / "metrics.csv", newline="") as handle:
        [row] = [r for r in csv.DictReader(handle) if r["model"] == NAME]
    force_mae = float(row["force_mae_eV_per_A"])
    assert 0.0 < force_mae < 0.10
