"""Training curves read from the trainers' real logs (tests/data/train_logs, made by running
mace_run_train and sevenn once: see its README), the curves figure, and `scalms train curves`."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.plots.training import training_curves_figure
from scalms.training.curves import (
    ALL_HEADS,
    TRAIN,
    VALID,
    EpochRecord,
    detect_trainer,
    last_epoch_per_head,
    read_curves,
    read_mace_results,
    read_runs,
    read_sevenn_curves,
)
from scalms.training.trained import TrainingError

from .conftest import REPO

LOGS = REPO / "tests" / "data" / "train_logs"
runner = CliRunner()


def raw_lines(run: str) -> list[dict]:
    (path,) = (LOGS / run / "results").glob("*_train.txt")
    return [json.loads(line) for line in path.read_text().splitlines()]


def valid(records: list[EpochRecord], head: str = "Default") -> list[EpochRecord]:
    return [r for r in records if r.split == VALID and r.head == head]


def copy_run(run: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(LOGS / run, tmp_path / run))


def test_mace_validation_metrics_are_the_logged_ones_in_meV_epochs_counted_from_zero():
    evals = [d for d in raw_lines("mace_scratch") if d["mode"] == "eval"]
    records = valid(read_mace_results(LOGS / "mace_scratch"))
    # MACE logs the untrained model (epoch null) and then its epochs 0 and 1.
    assert [r.epoch for r in records] == [0, 1, 2]
    for record, raw in zip(records, evals, strict=True):
        assert record.loss == raw["loss"]
        assert record.rmse_energy_meV_per_atom == pytest.approx(1000 * raw["rmse_e_per_atom"])
        assert record.rmse_forces_meV_per_A == pytest.approx(1000 * raw["rmse_f"])
        assert record.mae_energy_meV_per_atom == pytest.approx(1000 * raw["mae_e_per_atom"])
        assert record.mae_forces_meV_per_A == pytest.approx(1000 * raw["mae_f"])
    # The figures MACE printed in its log for epoch 1: RMSE_E_per_atom 2181.90 meV, RMSE_F 921.17.
    assert records[-1].rmse_energy_meV_per_atom == pytest.approx(2181.90, abs=0.005)
    assert records[-1].rmse_forces_meV_per_A == pytest.approx(921.17, abs=0.005)


def test_mace_training_loss_is_the_mean_over_an_epochs_batches():
    lines = raw_lines("mace_scratch")
    batches = [d["loss"] for d in lines if d["mode"] == "opt" and d["epoch"] == 0]
    train = [r for r in read_mace_results(LOGS / "mace_scratch") if r.split == TRAIN]
    assert [r.epoch for r in train] == [1, 2]
    assert train[0].loss == pytest.approx(sum(batches) / len(batches))
    assert train[0].head == "Default"
    assert train[0].rmse_forces_meV_per_A is None  # MACE logs only the loss of a batch


def test_mace_multihead_gives_one_record_per_head_and_epoch():
    records = read_mace_results(LOGS / "mace_multihead")
    heads = {r.head for r in records if r.split == VALID}
    assert heads == {"pt_head", "Default"}
    for head in heads:
        assert [r.epoch for r in valid(records, head)] == [0, 1, 2]
    pt = [d for d in raw_lines("mace_multihead") if d.get("head") == "pt_head"]
    assert valid(records, "pt_head")[-1].loss == pt[-1]["loss"]
    # Training batches mix the heads: their loss is not any one head's.
    assert {r.head for r in records if r.split == TRAIN} == {ALL_HEADS}


def test_a_resumed_mace_run_keeps_the_retrained_epoch_and_not_the_reloaded_checkpoint():
    lines = [d for d in raw_lines("mace_resumed") if d["mode"] == "eval"]
    records = valid(read_mace_results(LOGS / "mace_resumed"))
    assert [r.epoch for r in records] == [0, 1, 2, 3, 4]
    assert records[0].loss == lines[0]["loss"]  # the untrained model, not the reloaded one
    epoch_1 = [d["loss"] for d in lines if d["epoch"] == 1]
    assert len(epoch_1) == 2 and epoch_1[0] != epoch_1[1]
    assert records[2].loss == epoch_1[1]  # MACE trained its epoch 1 again after the restart


def test_mace_lines_cut_by_a_read_or_a_kill_are_skipped(tmp_path):
    run = copy_run("mace_multihead", tmp_path)
    (results,) = (run / "results").glob("*_train.txt")
    text = results.read_text()
    expected = read_mace_results(run)
    results.write_text(text + '{"loss": 0.05, "mae_e": 0.4')  # MACE writing its next line
    assert read_mace_results(run) == expected
    # A resumed MACE appends its lines to the cut one: that line alone is lost.
    lines = text.splitlines(keepends=True)
    last_eval = lines[-1]
    results.write_text("".join(lines[:-1]) + last_eval[:40] + last_eval)
    assert read_mace_results(run) == expected


def test_mace_epoch_still_training_has_no_training_loss_yet(tmp_path):
    run = copy_run("mace_scratch", tmp_path)
    (results,) = (run / "results").glob("*_train.txt")
    lines = results.read_text().splitlines(keepends=True)
    # Up to the first batch of MACE's epoch 1: epoch 0 is over, epoch 1 is not.
    cut = next(i for i, line in enumerate(lines) if '"mode": "opt", "epoch": 1' in line)
    results.write_text("".join(lines[: cut + 1]))
    records = read_mace_results(run)
    assert [r.epoch for r in records if r.split == TRAIN] == [1]
    assert [r.epoch for r in records if r.split == VALID] == [0, 1]


def lc_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_sevenn_curves_are_the_lc_csv_rows_in_meV():
    rows = lc_rows(LOGS / "sevenn" / "lc.csv")
    records = read_sevenn_curves(LOGS / "sevenn")
    assert [(r.epoch, r.split) for r in records] == [
        (1, VALID),
        (1, TRAIN),
        (2, VALID),
        (2, TRAIN),
    ]
    for record in records:
        row = rows[record.epoch - 1]
        prefix = "validset" if record.split == VALID else "trainset"
        assert record.head == "Default"
        assert record.loss == float(row[f"{prefix}_TotalLoss"])
        assert record.rmse_energy_meV_per_atom == pytest.approx(
            1000 * float(row[f"{prefix}_Energy_RMSE"])
        )
        assert record.rmse_forces_meV_per_A == pytest.approx(
            1000 * float(row[f"{prefix}_Force_RMSE"])
        )
        assert record.mae_forces_meV_per_A == pytest.approx(
            1000 * float(row[f"{prefix}_Force_MAE"])
        )
    # log.sevenn printed validset Force_RMSE 0.381228 eV/Å at epoch 2.
    assert records[2].rmse_forces_meV_per_A == pytest.approx(381.228)


def test_sevenn_row_being_written_is_skipped(tmp_path):
    run = copy_run("sevenn", tmp_path)
    expected = read_sevenn_curves(run)
    with (run / "lc.csv").open("a") as handle:
        handle.write("3,0.003921,0.019")
    assert read_sevenn_curves(run) == expected


def test_sevenn_continued_run_file_replaces_the_epochs_it_repeats(tmp_path):
    run = copy_run("sevenn", tmp_path)
    lines = (run / "lc.csv").read_text().splitlines()
    header, second = lines[0], lines[2].split(",")
    second[-1] = "0.001000"  # validset_TotalLoss of epoch 2, trained again
    third = ["3", *second[1:]]
    (run / "lc0.csv").write_text("\n".join([header, ",".join(second), ",".join(third)]) + "\n")
    records = [r for r in read_sevenn_curves(run) if r.split == VALID]
    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[1].loss == 0.001


def test_sevenn_total_energy_errors_are_not_taken_for_per_atom_ones(tmp_path):
    run = copy_run("sevenn", tmp_path)
    text = (run / "input.yaml").read_text()
    (run / "input.yaml").write_text(text.replace("['Energy', 'RMSE']", "['TotalEnergy', 'RMSE']"))
    records = read_sevenn_curves(run)
    assert all(r.rmse_energy_meV_per_atom is None for r in records)
    assert all(r.rmse_forces_meV_per_A is not None for r in records)


def test_the_trainer_is_recognised_from_the_run_folder(tmp_path):
    assert detect_trainer(LOGS / "mace_multihead") == "mace"
    assert detect_trainer(LOGS / "sevenn") == "sevennet"
    run = copy_run("sevenn", tmp_path)
    (run / "job.json").write_text(json.dumps({"trainer": "mace"}))
    assert detect_trainer(run) == "mace"  # what the trainer wrote wins
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="not a training run folder"):
        detect_trainer(tmp_path / "empty")
    with pytest.raises(TrainingError, match="not found"):
        detect_trainer(tmp_path / "missing")
    with pytest.raises(TrainingError, match="unknown trainer"):
        read_curves(run, "nequip")


def test_several_runs_keep_their_heads_apart():
    records = read_runs([LOGS / "mace_multihead", LOGS / "sevenn"])
    heads = {r.head for r in records if r.split == VALID}
    assert heads == {"mace_multihead: pt_head", "mace_multihead: Default", "sevenn: Default"}


def test_last_epoch_per_head_is_each_heads_latest_validation():
    last = last_epoch_per_head(read_mace_results(LOGS / "mace_multihead"))
    assert [(r.head, r.epoch) for r in last] == [("pt_head", 2), ("Default", 2)]


def test_figure_has_loss_force_and_energy_panels_with_a_line_per_head():
    records = read_mace_results(LOGS / "mace_multihead")
    figure = training_curves_figure(records, "fine-tune")
    loss, forces, energy = figure.axes
    assert "meV/Å" in forces.get_ylabel() and "meV/atom" in energy.get_ylabel()
    assert [line.get_label() for line in forces.lines] == ["pt_head", "Default"]
    assert [line.get_label() for line in energy.lines] == ["pt_head", "Default"]
    # The loss panel adds the training loss, dashed.
    assert len(loss.lines) == 3 and loss.lines[2].get_linestyle() == "--"
    pt = valid(records, "pt_head")
    assert list(forces.lines[0].get_ydata()) == [r.rmse_forces_meV_per_A for r in pt]
    with pytest.raises(ValueError, match="no training records"):
        training_curves_figure([])


def test_cli_draws_the_curves_and_prints_the_last_epoch(tmp_path):
    out = tmp_path / "curves.png"
    result = runner.invoke(
        app, ["train", "curves", str(LOGS / "mace_multihead"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert "pt_head" in result.output and "310.9" in result.output  # Default's F RMSE, meV/Å


def test_cli_refuses_a_folder_that_is_not_a_run_with_one_line(tmp_path):
    result = runner.invoke(app, ["train", "curves", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and "not a training run folder" in result.output
    run = copy_run("sevenn", tmp_path)
    (run / "lc.csv").unlink()
    result = runner.invoke(app, ["train", "curves", str(run)])
    assert result.exit_code == 2 and "no epoch logged yet" in result.output
