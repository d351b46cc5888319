"""sevenn's input.yaml for a fine-tune: sevenn's own ``fine_tune`` preset, with the fields a
scalms run sets changed and each change explained in the file's header.

Pure: the preset text and the checkpoint's model settings come from the sevennet environment
(:mod:`scalms.training.sevennet_inspect`); nothing here imports sevenn.
"""

from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scalms.training.datasets import ENERGY_KEY, FORCES_KEY
from scalms.training.trained import TrainingError

ERROR_RECORD = [
    ["Energy", "RMSE"],
    ["Force", "RMSE"],
    ["Energy", "MAE"],
    ["Force", "MAE"],
    ["TotalLoss", "None"],
]
"""Columns of sevenn's lc.csv: per-atom energy and force errors (eV/atom, eV/Å) and the loss;
no stress column, as scalms's datasets (clusters) carry no stress."""


@dataclass(frozen=True)
class Hyperparameters:
    """The settings that shape the training (a rerun must repeat them to resume)."""

    lr: float
    batch_size: int
    seed: int
    force_weight: float
    """Weight of the force loss against the energy loss (sevenn's ``force_loss_weight``)."""


def parse_preset(text: str) -> dict[str, Any]:
    preset = yaml.safe_load(text)
    if not isinstance(preset, dict) or not {"model", "train", "data"} <= set(preset):
        raise TrainingError(
            "sevenn's fine_tune preset does not have model/train/data sections; "
            "rebuild the environment with `scalms env create sevennet --force`"
        )
    return preset


def preset_hyperparameters(preset: dict[str, Any]) -> Hyperparameters:
    """The preset's own values (the defaults of a scalms fine-tune, but for the rate)."""
    train, data = preset["train"], preset["data"]
    return Hyperparameters(
        lr=float(train["optim_param"]["lr"]),
        batch_size=int(data["batch_size"]),
        seed=int(train["random_seed"]),
        force_weight=float(train.get("force_loss_weight", 1.0)),
    )


def preset_epochs(preset: dict[str, Any]) -> int:
    return int(preset["train"]["epoch"])


def fine_tune_input(
    preset: dict[str, Any],
    checkpoint_model: dict[str, Any],
    start_from: Path,
    resume: bool,
    train_file: Path,
    valid_file: Path,
    epochs: int,
    hyper: Hyperparameters,
    device: str,
) -> dict[str, Any]:
    """The input.yaml content: ``preset`` with the run's fields set (see :data:`CHANGES`).

    ``start_from``: the foundation checkpoint (``resume`` False: epochs, optimizer and scheduler
    start afresh, as the preset does) or this run's own last checkpoint (``resume`` True: all
    three carried on, so the run ends at ``epochs`` as an uninterrupted one would).
    """
    config = copy.deepcopy(preset)
    model, train, data = config["model"], config["train"], config["data"]
    model.update(checkpoint_model)
    model["train_shift_scale"] = False
    model["train_denominator"] = False
    train["random_seed"] = hyper.seed
    train["is_train_stress"] = False
    train["epoch"] = epochs
    train["optim_param"] = {**train.get("optim_param", {}), "lr": hyper.lr}
    train["force_loss_weight"] = hyper.force_weight
    train.pop("stress_loss_weight", None)
    train["per_epoch"] = 1
    train["error_record"] = copy.deepcopy(ERROR_RECORD)
    if device != "auto":
        train["device"] = device
    train["continue"] = {
        "checkpoint": str(start_from),
        "reset_optimizer": not resume,
        "reset_scheduler": not resume,
        "reset_epoch": not resume,
    }
    data["batch_size"] = hyper.batch_size
    data["data_format_args"] = {"index": ":", "energy_key": ENERGY_KEY, "force_key": FORCES_KEY}
    data["load_trainset_path"] = [str(Path(train_file).absolute())]
    data["load_validset_path"] = [str(Path(valid_file).absolute())]
    data.pop("load_testset_path", None)
    data.pop("data_divide_ratio", None)  # splits a training set when no validation set is given
    return config


CHANGES = (
    "model: the checkpoint's own settings (the weights only fit the architecture they were "
    "trained with); train_shift_scale and train_denominator False: a fine-tune keeps the "
    "foundation model's per-element energy shift and scale (its E0)",
    "train.is_train_stress False, no stress_loss_weight: scalms's datasets are clusters "
    "without stress labels",
    "train.optim_param.lr: the command's --lr, 2.5e-5 unless given (the preset's 0.004 wrecks "
    "SevenNet-0 on a few frames); train.epoch, force_loss_weight, random_seed, data.batch_size: "
    "the command's options, this preset's values unless given",
    "train.per_epoch 1: a checkpoint every epoch, so a killed run resumes losing at most one",
    "train.error_record: energy and force RMSE and MAE and the loss per epoch, for the curves",
    "train.continue: the foundation checkpoint with epoch, optimizer and scheduler reset (a new "
    "fine-tune), or this run's last checkpoint with none reset (a resumed one)",
    "data.data_format_args: energy_key/force_key read the labels scalms's datasets carry "
    f"({ENERGY_KEY}, {FORCES_KEY}); load_*set_path: the command's files; no test set during "
    "training: it is benchmarked after",
)


def render_input(config: dict[str, Any], command: str) -> str:
    """input.yaml text: a header saying where it came from and why it differs from the preset."""
    header = [
        f"# Written by `{command}`: sevenn's fine_tune preset (`sevenn_preset fine_tune`)",
        "# with these changes:",
        *(
            textwrap.fill(change, 98, initial_indent="# - ", subsequent_indent="#   ")
            for change in CHANGES
        ),
        "# A rerun of the same command rewrites this file; edit the command, not the file.",
    ]
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(header) + "\n" + body
