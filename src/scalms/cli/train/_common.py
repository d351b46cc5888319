"""What ``scalms train mace``, ``sevennet`` and ``curves`` share: option types, the run of a
trainer from the command line (progress lines, Ctrl-C), the accuracy benchmark a finished
training runs, and the report printed at the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scalms.cli.types import DEFAULT_CONFIG, DeviceOption, ModelConfigOption

if TYPE_CHECKING:
    from rich.console import Console

    from scalms.training.curves import EpochRecord
    from scalms.training.finish import Benchmark, FinishRecord
    from scalms.training.trained import TrainedModel

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_RUNS_DIR",
    "DeviceOption",
    "ModelConfigOption",
    "NameOption",
    "RunsDirOption",
    "TrainOption",
    "ValidOption",
    "accuracy_benchmark",
    "finish_and_report",
    "print_last_epochs",
    "train_and_finish",
]

DEFAULT_RUNS_DIR = Path("ML_training/runs")
RunsDirOption = Annotated[
    Path,
    typer.Option(
        "--runs-dir",
        help="Folder of the run folders: a training writes RUNS_DIR/NAME/ (its config, the "
        "trainer's log, checkpoints, curves, benchmark, summary.json).",
    ),
]
TrainOption = Annotated[
    Path,
    typer.Option(
        "--train", help="Training frames (extended XYZ) labelled REF_energy and REF_forces."
    ),
]
ValidOption = Annotated[
    Path, typer.Option("--valid", help="Validation frames, labelled the same way.")
]
NameOption = Annotated[
    str,
    typer.Option(
        "--name",
        help="Name of the new model in model_config.yaml; also its run folder RUNS_DIR/NAME.",
    ),
]


def accuracy_benchmark(config_path: Path, device: str) -> Benchmark:
    """The accuracy benchmark of one model of ``config_path`` on a labelled test file, as
    ``scalms benchmark accuracy TEST -m NAME -w OUT`` runs it; returns its summary page."""

    def benchmark(name: str, test_file: Path, out_dir: Path) -> Path:
        from scalms.benchmark.accuracy import analyse, run_accuracy
        from scalms.cli._console import console as make_console
        from scalms.cli.progress import ModelProgress
        from scalms.config import load_config
        from scalms.errors import ScalmsError
        from scalms.training.datasets import ENERGY_KEY, FORCES_KEY

        entries = load_config(config_path).select([name])
        with ModelProgress(make_console()) as progress:
            run = run_accuracy(
                [test_file],
                entries,
                out_dir,
                device=device,
                energy_key=ENERGY_KEY,
                forces_key=FORCES_KEY,
                overwrite=True,  # the folder belongs to this run: a second finish replaces it
                reporter=progress,
            )
        if run.failed:
            failed = run.failed[0]
            where = f" (log: {failed.log})" if failed.log else ""
            raise ScalmsError(f"{failed.model}: {failed.reason}{where}")
        return analyse(out_dir, plot=True).files["summary"]

    return benchmark


def print_last_epochs(console: Console, records: list[EpochRecord], title: str) -> None:
    """A table of each head's last validation epoch."""
    from rich.table import Table

    from scalms.training.curves import last_epoch_per_head

    table = Table(title=title)
    for column in ("head", "epoch", "loss", "E RMSE meV/atom", "F RMSE meV/Å", "F MAE meV/Å"):
        table.add_column(column, justify="left" if column == "head" else "right")

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in last_epoch_per_head(records):
        table.add_row(
            r.head,
            str(r.epoch),
            cell(r.loss, 5),
            cell(r.rmse_energy_meV_per_atom, 1),
            cell(r.rmse_forces_meV_per_A, 1),
            cell(r.mae_forces_meV_per_A, 1),
        )
    console.print(table)


def finish_and_report(trained: TrainedModel, config_path: Path, device: str) -> FinishRecord:
    """Register, draw, benchmark and summarise a finished training (see
    :func:`scalms.training.finish.finish_training`), then print where everything is. Exits 1
    when the benchmark failed (the model stays registered)."""
    from scalms.cli._console import console as make_console
    from scalms.training.finish import BENCHMARK_DIR, finish_training

    console = make_console()

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    benchmark = accuracy_benchmark(config_path, device) if trained.test_file else None
    record = finish_training(trained, config_path, benchmark, log=log)
    if record.last_epoch:
        print_last_epochs(console, record.last_epoch, f"{trained.name}: last epoch per head")
    log(f"model file:      {record.model_path}")
    log(f"config entry:    {record.config_entry} in {record.config_path}")
    if record.curves_figure:
        log(f"training curves: {record.curves_figure}")
    if record.benchmark_summary:
        log(f"benchmark:       {record.benchmark_summary}")
        metrics = record.test_metrics
        if "force_mae_eV_per_A" in metrics and "energy_mae_eV_per_atom" in metrics:
            log(
                f"test set:        force MAE {1000 * metrics['force_mae_eV_per_A']:.1f} meV/Å, "
                f"energy MAE {1000 * metrics['energy_mae_eV_per_atom']:.1f} meV/atom"
            )
    log(f"summary:         {record.summary_path}")
    if not record.ok:
        again = (
            f"scalms benchmark accuracy {trained.test_file} -m {trained.name} "
            f"-c {config_path} -w {trained.run_dir / BENCHMARK_DIR}"
        )
        console.print(
            f"[red]the benchmark failed[/] (above); {trained.name} is registered: once the "
            "cause is fixed, run",
            highlight=False,
        )
        log(f"  {again}")
        raise typer.Exit(1)
    return record


def train_and_finish(
    train: Callable[[Callable[[str], None]], TrainedModel],
    run_dir: Path,
    config_path: Path,
    device: str,
) -> FinishRecord:
    """Run ``train`` (a trainer of :mod:`scalms.training`, given the line printer for its
    progress), then :func:`finish_and_report` its model. Ctrl-C (or SIGTERM made one) stops the
    trainer, says how to resume ``run_dir`` and exits 130."""
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c

    terminate_like_ctrl_c()
    console = make_console()

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    try:
        trained = train(log)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]stopped[/]: the checkpoints in {run_dir} stay; run the same command to "
            "resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    return finish_and_report(trained, config_path, device)
