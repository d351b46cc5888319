"""`scalms train sevennet`: sevenn's own fine-tuning of SevenNet-0, its input, its checks, its
resumption after a kill, and the fine-tuned model coming back through model_config.yaml."""

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.testing import ENERGY_PER_ATOM_TOL_EV, FORCE_TOL_EV_PER_A, write_model_config
from scalms.training.curves import detect_trainer, read_sevenn_curves
from scalms.training.sevennet import (
    DEFAULT_LR,
    CheckpointInfo,
    SevenNetFineTune,
    check_elements,
    check_job,
    fine_tune_sevennet,
    record_job,
)
from scalms.training.sevennet_input import (
    ERROR_RECORD,
    Hyperparameters,
    fine_tune_input,
    parse_preset,
    preset_epochs,
    preset_hyperparameters,
    render_input,
)
from scalms.training.sevennet_run import (
    epoch_checkpoints,
    last_complete_checkpoint,
    prune_checkpoints,
)
from scalms.training.trained import TrainingError
from scalms.training.trainer_process import is_complete_checkpoint

from .conftest import REPO, needs_env, wait_for

runner = CliRunner()
DATA = REPO / "ML_training" / "data" / "GaPt_train.extxyz"
SEVENNET_CONFIG = "SevenNet:\n  models:\n    7net-0: {}   # the foundation model\n"
# A preset of the shape of sevenn's fine_tune.yaml (values of our own choosing).
PRESET = """
model:
  cutoff: 5.0
  channel: 8
  train_shift_scale: True
train:
  random_seed: 7
  is_train_stress: True
  epoch: 50
  optim_param: {lr: 0.01}
  force_loss_weight: 2.0
  stress_loss_weight: 0.01
  per_epoch: 10
  error_record: [[Stress, RMSE]]
  continue: {checkpoint: SevenNet-0_11July2024, reset_epoch: True}
data:
  batch_size: 3
  data_divide_ratio: 0.1
  data_format_args: {index: ':'}
  load_trainset_path: ['./train_*.extxyz']
  load_testset_path: ['./sevenn_data/mydata.pt']
"""
HYPER = Hyperparameters(lr=2.5e-5, batch_size=2, seed=3, force_weight=1.5)


def small_clusters(folder: Path, train: int = 2, valid: int = 1) -> tuple[Path, Path]:
    """Frames of the 13-atom Ga-Pt clusters of the packaged data (SevenNet-0 labels)."""
    frames = read(DATA, index=":")
    small = [f for f in frames if len(f) == 13]
    write(folder / "train.extxyz", small[:train])
    write(folder / "valid.extxyz", small[train : train + valid])
    return folder / "train.extxyz", folder / "valid.extxyz"


def fine_tune_args(train: Path, valid: Path, name: str) -> list[str]:
    return ["train", "sevennet", "--train", str(train), "--valid", str(valid), "--name", name]


def fake_checkpoint(path: Path, members: int = 3) -> Path:
    """A zip archive, the container format of torch checkpoints."""
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(members):
            archive.writestr(f"{path.stem}/data/{index}", os.urandom(2048))
    return path


# --- input.yaml -----------------------------------------------------------------------------


def test_input_is_the_preset_with_the_run_fields_set(tmp_path):
    preset = parse_preset(PRESET)
    config = fine_tune_input(
        preset,
        {"cutoff": 5.0, "channel": 128, "lmax": 2},
        Path("/weights/sevennet_0.pth"),
        False,
        tmp_path / "train.extxyz",
        tmp_path / "valid.extxyz",
        4,
        HYPER,
        "cpu",
    )
    model, train, data = config["model"], config["train"], config["data"]
    assert model["channel"] == 128 and model["lmax"] == 2  # the checkpoint's architecture
    assert model["train_shift_scale"] is False and model["train_denominator"] is False
    assert train["epoch"] == 4 and train["per_epoch"] == 1
    assert train["optim_param"]["lr"] == 2.5e-5 and train["force_loss_weight"] == 1.5
    assert train["random_seed"] == 3 and data["batch_size"] == 2
    assert train["is_train_stress"] is False and "stress_loss_weight" not in train
    assert train["error_record"] == ERROR_RECORD and train["device"] == "cpu"
    assert train["continue"] == {
        "checkpoint": "/weights/sevennet_0.pth",
        "reset_optimizer": True,
        "reset_scheduler": True,
        "reset_epoch": True,
    }
    assert data["data_format_args"] == {
        "index": ":",
        "energy_key": "REF_energy",
        "force_key": "REF_forces",
    }
    assert data["load_trainset_path"] == [str(tmp_path / "train.extxyz")]
    assert data["load_validset_path"] == [str(tmp_path / "valid.extxyz")]
    assert "load_testset_path" not in data and "data_divide_ratio" not in data
    assert parse_preset(PRESET) == preset  # the preset itself is left alone


def test_resumed_input_carries_epoch_optimizer_and_scheduler_on(tmp_path):
    config = fine_tune_input(
        parse_preset(PRESET),
        {},
        tmp_path / "checkpoint_2.pth",
        True,
        tmp_path / "t.xyz",
        tmp_path / "v.xyz",
        5,
        HYPER,
        "auto",
    )
    assert config["train"]["continue"] == {
        "checkpoint": str(tmp_path / "checkpoint_2.pth"),
        "reset_optimizer": False,
        "reset_scheduler": False,
        "reset_epoch": False,
    }
    assert "device" not in config["train"]  # auto: sevenn picks CUDA when it sees one


def test_rendered_input_reads_back_and_says_why_it_differs(tmp_path):
    config = fine_tune_input(
        parse_preset(PRESET), {}, tmp_path / "c.pth", False, tmp_path, tmp_path, 2, HYPER, "cpu"
    )
    text = render_input(config, "scalms train sevennet")
    assert yaml.safe_load(text) == config
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "fine_tune preset" in header[0]
    assert any("is_train_stress" in line for line in header)
    assert all(len(line) <= 100 for line in text.splitlines() if line.startswith("#"))


def test_defaults_come_from_the_preset_but_the_learning_rate():
    preset = parse_preset(PRESET)
    assert preset_hyperparameters(preset) == Hyperparameters(0.01, 3, 7, 2.0)
    assert preset_epochs(preset) == 50
    from scalms.cli.train import sevennet as cli

    assert cli.DEFAULT_LR == DEFAULT_LR == 2.5e-5


def test_a_preset_without_its_sections_is_refused():
    with pytest.raises(TrainingError, match="model/train/data"):
        parse_preset("train: {epoch: 3}\n")


# --- checks before any work -----------------------------------------------------------------


def test_a_dataset_without_ref_forces_is_refused_with_one_line_and_nothing_written(tmp_path):
    train, valid = small_clusters(tmp_path)
    frames = read(valid, index=":")
    for frame in frames:
        del frame.arrays["REF_forces"]
    write(valid, frames)
    config = write_model_config(tmp_path, SEVENNET_CONFIG)
    args = [*fine_tune_args(train, valid, "ft"), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, "-c", str(config)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "REF_forces" in errors[0] and str(valid) in errors[0]
    assert not (tmp_path / "runs").exists()
    assert config.read_text() == SEVENNET_CONFIG


def test_a_name_already_registered_is_refused(tmp_path):
    train, valid = small_clusters(tmp_path)
    config = write_model_config(tmp_path, SEVENNET_CONFIG)
    request = SevenNetFineTune(train, valid, "7net-0", runs_dir=tmp_path / "runs")
    with pytest.raises(TrainingError, match="already in"):
        fine_tune_sevennet(request, config, log=lambda line: None)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("start_from", "message"),
    [
        ("7net-9000", "neither a checkpoint file nor a SevenNet model bundled"),
        ("missing/fine-tuned.pth", "checkpoint file not found"),
    ],
)
def test_an_unknown_start_is_refused_before_the_environment_is_asked(tmp_path, start_from, message):
    train, valid = small_clusters(tmp_path)
    config = write_model_config(tmp_path, SEVENNET_CONFIG)
    request = SevenNetFineTune(train, valid, "ft", start_from=start_from, runs_dir=tmp_path)
    with pytest.raises(TrainingError, match=message):
        fine_tune_sevennet(request, config, log=lambda line: None)


def test_elements_the_checkpoint_does_not_know_are_refused(tmp_path):
    from scalms.training.datasets import check_dataset

    train, _ = small_clusters(tmp_path)
    info = CheckpointInfo(tmp_path / "c.pth", frozenset({"Ga", "Pd"}), {}, PRESET, "0.13.0")
    with pytest.raises(TrainingError, match="holds Pt, which SevenNet checkpoint ga-pd"):
        check_elements(info, "ga-pd", [check_dataset(train, "train")])


def test_a_different_command_on_the_same_run_folder_is_refused(tmp_path):
    request = SevenNetFineTune(tmp_path / "t.xyz", tmp_path / "v.xyz", "ft", runs_dir=tmp_path)
    identity = {"train_sha256": "a", "lr": 2.5e-5}
    assert check_job(tmp_path, identity) is False
    record_job(tmp_path, identity, request, epochs=3)
    assert check_job(tmp_path, identity) is True  # a rerun, with any --epochs, resumes
    with pytest.raises(TrainingError, match="lr differ"):
        check_job(tmp_path, {**identity, "lr": 1e-4})
    assert detect_trainer(tmp_path) == "sevennet"  # what the curves reader relies on


# --- checkpoints ----------------------------------------------------------------------------


def test_resume_takes_the_newest_whole_checkpoint_and_pruning_keeps_two(tmp_path):
    for epoch in (0, 1, 2, 3):
        fake_checkpoint(tmp_path / f"checkpoint_{epoch}.pth")
    fake_checkpoint(tmp_path / "checkpoint_best.pth")
    data = fake_checkpoint(tmp_path / "checkpoint_4.pth").read_bytes()
    (tmp_path / "checkpoint_4.pth").write_bytes(data[: len(data) // 2])  # killed mid-write
    assert not is_complete_checkpoint(tmp_path / "checkpoint_4.pth")
    assert last_complete_checkpoint(tmp_path) == (3, tmp_path / "checkpoint_3.pth")
    prune_checkpoints(tmp_path)
    assert list(epoch_checkpoints(tmp_path)) == [3, 4]
    assert (tmp_path / "checkpoint_0.pth").exists() and (tmp_path / "checkpoint_best.pth").exists()
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None


def test_a_checkpoint_with_a_damaged_member_is_not_whole(tmp_path):
    path = fake_checkpoint(tmp_path / "checkpoint_1.pth")
    assert is_complete_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the first member's bytes: its checksum no longer holds
    path.write_bytes(bytes(data))
    assert not is_complete_checkpoint(path)


# --- the real sevenn, in its environment ----------------------------------------------------


@pytest.mark.sevennet
@pytest.mark.slow
@needs_env("sevennet")
def test_a_file_sevennet_cannot_load_is_refused_with_one_line(tmp_path):
    train, valid = small_clusters(tmp_path)
    config = write_model_config(tmp_path, SEVENNET_CONFIG)
    not_sevennet = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
    args = [*fine_tune_args(train, valid, "ft"), "--from", str(not_sevennet)]
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "runs"), "-c", str(config)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SevenNet cannot load it" in errors[0], result.output
    assert not (tmp_path / "runs").exists()


def _sevenn_processes(input_yaml: Path) -> list[int]:
    """Processes whose command line names ``input_yaml`` (a running sevenn of that run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(input_yaml).encode() in command:
            found.append(int(entry.name))
    return found


@pytest.mark.sevennet
@pytest.mark.slow
@needs_env("sevennet")
def test_a_killed_fine_tune_resumes_to_its_last_epoch_and_the_model_runs_from_the_config(
    tmp_path, monkeypatch
):
    """SevenNet-0 fine-tuned for 3 epochs on its own labels of two 13-atom Ga-Pt clusters: the
    command is killed (SIGKILL) after its first epoch's checkpoint, rerun, and ends at epoch 3
    from there; the model registered in model_config.yaml then evaluates in both backends, with
    energies moved from SevenNet-0's (the labels) but close to them: fine-tuned, not wrecked."""
    monkeypatch.chdir(tmp_path)
    _, valid = small_clusters(tmp_path)
    config = write_model_config(tmp_path, SEVENNET_CONFIG)
    command = fine_tune_args(Path("train.extxyz"), Path("valid.extxyz"), "7net-0-GaPt")
    command += ["--epochs", "3", "--batch-size", "2", "--device", "cpu"]
    run_dir = tmp_path / "ML_training" / "runs" / "7net-0-GaPt"
    checkpoint_1 = run_dir / "checkpoint_1.pth"
    first = subprocess.Popen(
        [str(Path(sys.executable).parent / "scalms"), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: first.poll() is not None or is_complete_checkpoint(checkpoint_1),
            "the first epoch's checkpoint",
        )
    finally:
        first.send_signal(signal.SIGKILL)
        output = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL, output
    assert "epoch 3/3" not in output
    # The kernel took sevenn down with the command: nothing writes into the folder any more.
    wait_for(lambda: not _sevenn_processes(run_dir / "input.yaml"), "sevenn to end", 60.0)
    killed_at, _ = last_complete_checkpoint(run_dir)
    assert 1 <= killed_at < 3
    assert "SevenNet" in config.read_text() and "7net-0-GaPt" not in config.read_text()

    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert f"from checkpoint_{killed_at}.pth" in result.output
    assert "epoch 1/3" not in result.output and "epoch 3/3" in result.output
    # sevenn's own logs: the rerun continued the epoch count instead of starting from 1.
    resumed_logs = [p.read_text() for p in sorted(run_dir.glob("log?*.sevenn"))]
    assert any(f"epoch start from {killed_at + 1}" in text for text in resumed_logs)
    records = [r for r in read_sevenn_curves(run_dir) if r.split == "valid"]
    assert [r.epoch for r in records] == [1, 2, 3]
    assert list(epoch_checkpoints(run_dir)) == [3]  # older ones pruned

    entry = yaml.safe_load(config.read_text())["SevenNet"]["models"]["7net-0-GaPt"]
    assert entry["model_path"] == "ML_training/runs/7net-0-GaPt/7net-0-GaPt.pth"
    assert (run_dir / "summary.json").is_file()
    out = tmp_path / "static.h5"
    static_args = ["static", "valid.extxyz", "-m", "7net-0-GaPt", "--backend", "both"]
    static = runner.invoke(app, [*static_args, "--device", "cpu", "-o", str(out)])
    assert static.exit_code == 0, static.output
    from scalms.io.static_results import read_results

    results = read_results(out)
    labels = read(valid, index=":")
    for a, b, label in zip(
        results["7net-0-GaPt@torchsim"]["valid"],
        results["7net-0-GaPt@ase"]["valid"],
        labels,
        strict=True,
    ):
        n = len(a)
        assert abs(a.get_potential_energy() - b.get_potential_energy()) / n < ENERGY_PER_ATOM_TOL_EV
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=FORCE_TOL_EV_PER_A)
        moved = abs(b.get_potential_energy() - label.info["REF_energy"]) / n
        assert 2e-5 < moved < 5e-3, moved  # eV/atom: changed beyond noise, still SevenNet-0
        assert np.abs(b.get_forces() - label.arrays["REF_forces"]).max() < 0.05
