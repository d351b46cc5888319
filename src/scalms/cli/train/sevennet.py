"""``scalms train sevennet``: fine-tune SevenNet-0 (or another SevenNet checkpoint) with sevenn's
own training, then register, draw and benchmark the new model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

DEFAULT_LR = 2.5e-5
"""Same as scalms.training.sevennet.DEFAULT_LR, repeated to keep the library out of start-up."""
PRESET = "default: sevenn's fine_tune preset"


@user_errors
def sevennet(
    train: TrainOption,
    valid: ValidOption,
    name: NameOption,
    test: Annotated[
        Path | None,
        typer.Option(help="Held-out frames the new model is benchmarked on once registered."),
    ] = None,
    start_from: Annotated[
        str,
        typer.Option(
            "--from",
            help="Checkpoint to fine-tune: a SevenNet model bundled with sevenn (7net-0, "
            "7net-l3i5) or a .pth file (an earlier fine-tune's model).",
        ),
    ] = "7net-0",
    epochs: Annotated[
        int | None, typer.Option(help=f"Epochs to train to ({PRESET}, 100).", min=1)
    ] = None,
    lr: Annotated[
        float,
        typer.Option(
            help="Learning rate (the thesis's fine-tuning rate; sevenn's preset has 0.004, "
            "which wrecks SevenNet-0 on a few frames).",
            click_type=POSITIVE,
        ),
    ] = DEFAULT_LR,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Frames per batch ({PRESET}, 4).", min=1)
    ] = None,
    seed: Annotated[int | None, typer.Option(help=f"Random seed ({PRESET}, 1).")] = None,
    force_weight: Annotated[
        float | None,
        typer.Option(
            help=f"Weight of the force loss against the energy loss ({PRESET}, 1.0).",
            click_type=POSITIVE,
        ),
    ] = None,
    device: DeviceOption = "auto",
    runs_dir: RunsDirOption = DEFAULT_RUNS_DIR,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
) -> None:
    """Fine-tune a SevenNet checkpoint on labelled frames through sevenn's own training
    (`sevenn input.yaml` in the sevennet environment), one line per epoch; then add the model
    to model_config.yaml, draw its training curves and benchmark it on --test.

    The run folder RUNS_DIR/NAME holds sevenn's input.yaml, its log and checkpoints, and the
    model NAME.pth. Killed or stopped, the same command resumes from the last checkpoint and
    ends at --epochs; a different command on the same folder is refused.
    """
    from scalms.cli.train._common import train_and_finish
    from scalms.training.sevennet import SevenNetFineTune, fine_tune_sevennet

    request = SevenNetFineTune(
        train=train,
        valid=valid,
        name=name,
        test=test,
        start_from=start_from,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        force_weight=force_weight,
        device=device,
        runs_dir=runs_dir,
    )
    train_and_finish(
        lambda log: fine_tune_sevennet(request, model_config, log),
        request.run_dir,
        model_config,
        device,
    )
