"""What follows a successful training: curves figure, model_config.yaml entry, accuracy benchmark
of the new model on held-out frames, and RUN_DIR/summary.json linking them."""

import json
import shutil
from pathlib import Path

import pytest
import typer
from ase.io import read, write

from scalms.cli.train._common import finish_and_report
from scalms.config import load_config
from scalms.training.finish import finish_training
from scalms.training.trained import TrainedModel, TrainingError

from .conftest import REPO, needs_env

LOGS = REPO / "tests" / "data" / "train_logs"
TINY_MACE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
TEST_FRAMES = REPO / "ML_training" / "data" / "GaPt_test.extxyz"
E0 = REPO / "tests" / "data" / "E0_7net0_GaPtPdAgAuBiCH.json"


def trained_run(tmp_path: Path, name: str, fixture: str, trainer: str, **kwargs) -> TrainedModel:
    """A run folder as a trainer leaves it: its logs (real ones, from tests/data/train_logs)
    and the model file (the tiny MACE), under a project folder holding model_config.yaml."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    config = project / "model_config.yaml"
    if not config.exists():
        config.write_bytes((REPO / "model_config.yaml").read_bytes())
    run_dir = project / "ML_training" / "runs" / name
    shutil.copytree(LOGS / fixture, run_dir)
    model = run_dir / f"{name}.model"
    model.write_bytes(TINY_MACE.read_bytes())
    architecture = "MACE" if trainer == "mace" else "SevenNet"
    return TrainedModel(name, architecture, model, run_dir, trainer=trainer, **kwargs)


def test_finish_without_a_test_set_registers_draws_and_summarises(tmp_path):
    trained = trained_run(
        tmp_path, "ft", "mace_multihead", "mace", options={"default_dtype": "float64"}
    )
    config = trained.run_dir.parents[2] / "model_config.yaml"
    lines: list[str] = []
    record = finish_training(trained, config, None, log=lines.append)
    assert record.ok and record.benchmark_summary is None
    assert any("no test file" in line for line in lines)
    assert record.curves_figure == trained.run_dir / "training_curves.png"
    assert record.curves_figure.stat().st_size > 10_000
    entry = load_config(config).entries["ft"]
    assert entry.model_path.samefile(trained.model_path)
    assert entry.options == {"default_dtype": "float64"}
    summary = json.loads((trained.run_dir / "summary.json").read_text())
    assert summary["config"]["entry"] == "MACE.models.ft"
    assert summary["config"]["model_path"] == "ML_training/runs/ft/ft.model"
    assert summary["model_file"] == "ft.model" and summary["curves_figure"] == "training_curves.png"
    assert summary["benchmark"] == {"ran": False, "summary": None, "error": None, "metrics": {}}
    last = {r["head"]: r for r in summary["last_epoch"]}
    assert set(last) == {"pt_head", "Default"} and last["Default"]["epoch"] == 2
    assert last["Default"]["rmse_forces_meV_per_A"] == pytest.approx(310.859, abs=1e-3)


def test_finish_of_a_sevenn_run_goes_under_sevennet(tmp_path):
    trained = trained_run(tmp_path, "7net-ft", "sevenn", "sevennet")
    config = trained.run_dir.parents[2] / "model_config.yaml"
    record = finish_training(trained, config, None, log=lambda line: None)
    assert record.config_entry == "SevenNet.models.7net-ft"
    assert load_config(config).entries["7net-ft"].family == "sevennet"
    assert [(r.head, r.epoch) for r in record.last_epoch] == [("Default", 2)]


def test_finish_with_no_logged_epoch_skips_the_figure_but_registers(tmp_path):
    trained = trained_run(tmp_path, "early", "mace_scratch", "mace")
    shutil.rmtree(trained.run_dir / "results")
    config = trained.run_dir.parents[2] / "model_config.yaml"
    lines: list[str] = []
    record = finish_training(trained, config, None, log=lines.append)
    assert record.curves_figure is None and record.last_epoch == []
    assert any("training curves not drawn" in line for line in lines)
    assert not (trained.run_dir / "training_curves.png").exists()
    assert "early" in load_config(config).entries


def test_a_taken_name_fails_the_finish_and_writes_no_summary(tmp_path):
    trained = trained_run(tmp_path, "7net-0", "sevenn", "sevennet")
    config = trained.run_dir.parents[2] / "model_config.yaml"
    before = config.read_bytes()
    with pytest.raises(TrainingError, match="already in"):
        finish_training(trained, config, None, log=lambda line: None)
    assert config.read_bytes() == before
    assert not (trained.run_dir / "summary.json").exists()


@pytest.mark.mace
@pytest.mark.slow
@needs_env("mace")
def test_finish_benchmarks_the_new_model_and_a_failed_benchmark_exits_1(tmp_path):
    """The real accuracy benchmark through the mace environment: the tiny MACE on the five
    test frames (its README: force MAE 96 meV/Å), then on frames with an element it lacks."""
    trained = trained_run(
        tmp_path,
        "ft",
        "mace_multihead",
        "mace",
        options={"default_dtype": "float64"},
        test_file=TEST_FRAMES,
    )
    config = trained.run_dir.parents[2] / "model_config.yaml"
    record = finish_and_report(trained, config, "cpu")
    assert record.ok
    assert record.benchmark_summary == trained.run_dir / "benchmark" / "summary.html"
    assert record.benchmark_summary.is_file()
    assert record.test_metrics["n_frames"] == 5
    assert 0.05 < record.test_metrics["force_mae_eV_per_A"] < 0.15
    summary = json.loads((trained.run_dir / "summary.json").read_text())
    assert summary["benchmark"]["summary"] == "benchmark/summary.html"
    assert summary["benchmark"]["metrics"]["force_mae_eV_per_A"] == pytest.approx(
        record.test_metrics["force_mae_eV_per_A"]
    )
    # The test-set parity of the thesis's Figure 4.6 comes with the benchmark.
    assert list((trained.run_dir / "benchmark" / "plots" / "ft").glob("*parity*.png"))

    # Pd is not an element of the tiny MACE: its benchmark fails, its registration stays.
    frames = read(TEST_FRAMES, ":2")
    for atoms in frames:
        atoms.numbers[0] = 46
    pd_frames = tmp_path / "with_Pd.extxyz"
    write(pd_frames, frames)
    failing = trained_run(
        tmp_path,
        "ft-pd",
        "mace_multihead",
        "mace",
        options={"default_dtype": "float64"},
        test_file=pd_frames,
    )
    with pytest.raises(typer.Exit) as stop:
        finish_and_report(failing, config, "cpu")
    assert stop.value.exit_code == 1
    assert "ft-pd" in load_config(config).entries
    summary = json.loads((failing.run_dir / "summary.json").read_text())
    assert summary["benchmark"]["ran"] is False and "Pd" in summary["benchmark"]["error"]
