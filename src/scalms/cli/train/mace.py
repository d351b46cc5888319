"""``scalms train mace``: train a MACE from scratch, fine-tune one with multi-head replay, or
continue training one on more data of the same kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from scalms.cli._errors import user_errors
from scalms.cli.train._common import (
    DEFAULT_CONFIG,
    DEFAULT_RUNS_DIR,
    DeviceOption,
    ModelConfigOption,
    NameOption,
    RunsDirOption,
    TrainOption,
    ValidOption,
)
from scalms.cli.types import POSITIVE

FINE_TUNE = "Fine-tuning (multi-head replay)"
SIZE = "Model size (from scratch; default: MACE's own)"
CONTINUE = "Continued training (no replay)"


@user_errors
def mace(
    train: TrainOption,
    valid: ValidOption,
    test: Annotated[
        Path, typer.Option(help="Held-out frames: the new model is benchmarked on them.")
    ],
    name: NameOption,
    e0: Annotated[
        Path | None,
        typer.Option(
            "--e0",
            help="E0 table of `scalms hpc e0` (JSON): every element of the data. Needed, "
            "except with --continue-from.",
            show_default=False,
        ),
    ] = None,
    continue_from: Annotated[
        Path | None,
        typer.Option(
            help="Continue training this MACE .model on more data of the same kind: no replay, "
            "its own E0s and architecture (--e0 not needed), lr 1e-3.",
            rich_help_panel=CONTINUE,
        ),
    ] = None,
    foundation_model: Annotated[
        Path | None,
        typer.Option(
            help="Local MACE .model file to fine-tune (needs --replay-file).",
            rich_help_panel=FINE_TUNE,
        ),
    ] = None,
    replay_file: Annotated[
        Path | None,
        typer.Option(
            help="Frames replayed as the foundation model's head (labelled like the data).",
            rich_help_panel=FINE_TUNE,
        ),
    ] = None,
    replay_samples: Annotated[
        int,
        typer.Option(
            help="Replay frames drawn (seeded) from --replay-file; all when it has fewer.",
            min=1,
            rich_help_panel=FINE_TUNE,
        ),
    ] = 30_000,
    replay_weight: Annotated[
        float,
        typer.Option(
            help="Loss weight of a replay frame against a new frame's 1 (0.1: the thesis's "
            "10:1 new-to-replay).",
            click_type=POSITIVE,
            rich_help_panel=FINE_TUNE,
        ),
    ] = 0.1,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate. Default: 2.5e-5 for a fine-tune (the thesis's), 1e-3 to "
            "continue, 0.01 from scratch (MACE's).",
            click_type=POSITIVE,
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Epochs in all; a rerun resumes and ends here.", min=1)
    ] = 100,
    batch_size: Annotated[int, typer.Option(help="Frames per batch.", min=1)] = 10,
    device: DeviceOption = "auto",
    seed: Annotated[
        int, typer.Option(help="Seed of MACE (weights, batch order) and of the replay draw.")
    ] = 123,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Precision. Default: the starting model's; float64 from scratch.",
            click_type=click.Choice(["float64", "float32"]),
        ),
    ] = None,
    r_max: Annotated[
        float | None,
        typer.Option("--r-max", help="Cutoff, Å [5.0].", click_type=POSITIVE, rich_help_panel=SIZE),
    ] = None,
    num_channels: Annotated[
        int | None, typer.Option(help="Channels [128].", min=1, rich_help_panel=SIZE)
    ] = None,
    max_L: Annotated[
        int | None,
        typer.Option(
            "--max-L", help="Highest order of the hidden features [1].", min=0, rich_help_panel=SIZE
        ),
    ] = None,
    num_interactions: Annotated[
        int | None, typer.Option(help="Interaction layers [2].", min=1, rich_help_panel=SIZE)
    ] = None,
    correlation: Annotated[
        int | None, typer.Option(help="Correlation order [3].", min=1, rich_help_panel=SIZE)
    ] = None,
    max_ell: Annotated[
        int | None,
        typer.Option(help="Highest spherical harmonic [3].", min=0, rich_help_panel=SIZE),
    ] = None,
    extra_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE: one more mace_run_train setting (its flag without dashes), e.g. "
            "ema=True; repeat.",
        ),
    ] = None,
    runs_dir: RunsDirOption = DEFAULT_RUNS_DIR,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
) -> None:
    """Train a MACE with MACE's own mace_run_train (in the mace environment) and add it to
    model_config.yaml.

    From scratch, or with --foundation-model and --replay-file a multi-head replay fine-tune
    (the thesis's: 30,000 replay frames weighted 10:1, lr 2.5e-5), or with --continue-from a
    model trained further on data that hold its earlier data (MACE's plain fine-tune). Writes
    RUNS_DIR/NAME/ (the config MACE reads, its log train.log, checkpoints, curves); the same
    command again resumes from the latest checkpoint after a kill or a wall-time limit. Then
    the model is registered, its curves drawn and `scalms benchmark accuracy` run on --test.
    """
    from scalms.cli.train._common import train_and_finish
    from scalms.training.mace import train_mace
    from scalms.training.mace_config import MaceModelSize, MaceTrainingSpec, parse_extra_args

    size_given = {
        key: value
        for key, value in {
            "r_max": r_max,
            "num_channels": num_channels,
            "max_L": max_L,
            "num_interactions": num_interactions,
            "correlation": correlation,
            "max_ell": max_ell,
        }.items()
        if value is not None
    }
    spec = MaceTrainingSpec(
        name=name,
        train_file=train,
        valid_file=valid,
        test_file=test,
        e0_file=e0,
        foundation_model=foundation_model,
        replay_file=replay_file,
        continue_from=continue_from,
        replay_samples=replay_samples,
        replay_weight=replay_weight,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        seed=seed,
        dtype=dtype,
        size=MaceModelSize(**size_given) if size_given else None,
        extra_args=parse_extra_args(extra_arg or []),
    )
    train_and_finish(
        lambda log: train_mace(spec, model_config, runs_dir, log),
        runs_dir / name,
        model_config,
        device,
    )
