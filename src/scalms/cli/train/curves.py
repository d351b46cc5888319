"""``scalms train curves``: the training curves of one or more runs (thesis Figure 4.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors

CURVES_FIGURE = "training_curves.png"


@user_errors
def curves(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders of `scalms train mace|sevennet` (or of mace_run_train / sevenn "
            "with their config.yaml / input.yaml); readable while the training runs."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Figure file. Default: RUN_DIR/training_curves.png for one run, "
            "./training_curves.png for several.",
        ),
    ] = None,
) -> None:
    """Validation loss, force RMSE and energy RMSE per head and epoch, read from the trainers'
    logs; prints each head's last epoch."""
    from scalms.cli._console import console as make_console
    from scalms.cli.train._common import print_last_epochs
    from scalms.plots.training import save_training_curves
    from scalms.training.curves import read_runs
    from scalms.training.trained import TrainingError

    records = read_runs(run_dirs)
    names = ", ".join(str(d) for d in run_dirs)
    if not records:
        raise TrainingError(
            f"no epoch logged yet in {names}: the trainer writes one after its first evaluation"
        )
    out = out or (run_dirs[0] / CURVES_FIGURE if len(run_dirs) == 1 else Path(CURVES_FIGURE))
    title = ", ".join(d.resolve().name for d in run_dirs)
    save_training_curves(out, records, title=title)
    console = make_console()
    print_last_epochs(console, records, "last epoch per head")
    console.print(f"training curves: {out}", markup=False, highlight=False)
