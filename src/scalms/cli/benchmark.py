"""``scalms benchmark accuracy|analyze|cost``: rank models by accuracy against reference data
and by the compute they need."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._console import print_failures
from scalms.cli._errors import user_errors
from scalms.cli.types import (
    DEFAULT_CONFIG,
    POSITIVE,
    DeviceOption,
    MaxBatchAtomsOption,
    ModelConfigOption,
    ModelsOption,
    PlotOption,
    SeedOption,
    TimeoutOption,
)

app = typer.Typer(no_args_is_help=True, help="Benchmarks of models: accuracy and cost.")

WorkDirOption = Annotated[
    Path, typer.Option("--working-dir", "-w", help="Folder for the benchmark's files and plots.")
]
CommitteeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--committee",
        help="Model of a committee whose mean and spread are analysed; repeat (two or more).",
    ),
]
NetForceThresholdOption = Annotated[
    float,
    typer.Option(
        "--net-force-threshold",
        help="Flag reference frames whose forces sum to more than this, eV/Å.",
    ),
]
ForceRewriteFlatOption = Annotated[
    bool,
    typer.Option(
        "--force-rewrite-flat/--keep-flat",
        help="Make the flat table again even if the models did not change.",
    ),
]
EngineOption = Annotated[
    str, typer.Option("--backend", help="auto (TorchSim, ASE as the fallback), torchsim or ase.")
]


@app.command("accuracy")
@user_errors
def accuracy(
    reference: Annotated[
        list[Path],
        typer.Argument(
            help="Reference files (any format ASE reads) whose frames carry energies and forces."
        ),
    ],
    working_dir: WorkDirOption = Path("benchmark_accuracy"),
    model: ModelsOption = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    plot: PlotOption = True,
    copy_reference: Annotated[
        bool, typer.Option(help="Copy the reference files into the working dir.")
    ] = False,
    force_rewrite_flat: ForceRewriteFlatOption = False,
    committee: CommitteeOption = None,
    net_force_threshold: NetForceThresholdOption = 0.1,
    energy_key: Annotated[
        str | None,
        typer.Option(help="info key of the reference energy (default: found, see the docs)."),
    ] = None,
    forces_key: Annotated[
        str | None,
        typer.Option(help="arrays key of the reference forces (default: found, see the docs)."),
    ] = None,
    backend: EngineOption = "auto",
    device: DeviceOption = "auto",
    max_batch_atoms: MaxBatchAtomsOption = None,
    timeout: TimeoutOption = None,
    seed: SeedOption = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Start again in a working dir that holds other reference data.")
    ] = False,
) -> None:
    """Recompute every REFERENCE frame with each model (each in its own environment) and rank
    the models by their errors against the reference.

    Run again in the same working dir with other --model names to add models; the flat table,
    metrics and plots then cover all of them. Exits 1 if a model failed (the others are kept).
    """
    from scalms.benchmark.accuracy import check_committee, run_accuracy
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.config import load_config
    from scalms.files import WorkDirLock

    terminate_like_ctrl_c()
    check_committee(committee)
    console = make_console()
    entries = load_config(model_config).select(model)
    # One lock for the run and the analysis after it: nothing else writes in between.
    with WorkDirLock(working_dir, "scalms benchmark accuracy"):
        with ModelProgress(console) as progress:
            run = run_accuracy(
                reference,
                entries,
                working_dir,
                backend=backend,
                device=device,
                seed=seed,
                max_batch_atoms=max_batch_atoms,
                timeout_s=timeout,
                copy_reference=copy_reference,
                energy_key=energy_key,
                forces_key=forces_key,
                overwrite=overwrite,
                committee=committee,
                reporter=progress,
            )
        print_failures(console, run.failed)
        if run.stored or not run.failed:
            analyse_and_print(
                console, working_dir, plot, force_rewrite_flat, committee, net_force_threshold
            )
    if run.failed:
        raise typer.Exit(1)


@app.command("analyze")
@user_errors
def analyze(
    working_dir: Annotated[Path, typer.Argument(help="Working dir of `benchmark accuracy`.")],
    plot: PlotOption = True,
    force_rewrite_flat: ForceRewriteFlatOption = False,
    committee: CommitteeOption = None,
    net_force_threshold: NetForceThresholdOption = 0.1,
) -> None:
    """Metrics, plots and summary of an accuracy benchmark again, running no model (another
    committee, another net-force threshold)."""
    from scalms.cli._console import console as make_console

    analyse_and_print(
        make_console(), working_dir, plot, force_rewrite_flat, committee, net_force_threshold
    )


def analyse_and_print(
    console, working_dir, plot, force_rewrite_flat, committee, net_force_threshold
) -> None:
    from scalms.benchmark.accuracy import analyse

    with console.status("metrics" + (" and figures" if plot else "")):
        report = analyse(
            working_dir,
            committee=committee,
            net_force_threshold=net_force_threshold,
            force_rewrite_flat=force_rewrite_flat,
            plot=plot,
        )
    print_report(console, report)


def print_report(console, report) -> None:
    from rich.table import Table

    from scalms.benchmark.metrics import metrics_row

    table = Table(title=f"Accuracy against the reference: {report.workdir}")
    table.add_column("model")
    for column in (
        "frames",
        "E MAE meV/atom",
        "E MAE offsets removed",
        "F MAE meV/Å",
        "F RMSE meV/Å",
        "F R²",
        "|F| MAE meV/Å",
    ):
        table.add_column(column, justify="right")
    metrics = list(report.metrics)
    if report.committee is not None:
        metrics.append(report.committee.metrics)
    for m in sorted(metrics, key=lambda m: m.forces.components.mae):
        row = metrics_row(m)
        table.add_row(
            m.model,
            str(m.n_frames),
            f"{1000 * row['energy_mae_eV_per_atom']:.1f}",
            f"{1000 * row['energy_aligned_mae_eV_per_atom']:.1f}",
            f"{1000 * row['force_mae_eV_per_A']:.1f}",
            f"{1000 * row['force_rmse_eV_per_A']:.1f}",
            f"{row['force_r2']:.3f}",
            f"{1000 * row['force_magnitude_mae_eV_per_A']:.1f}",
        )
    console.print(table)
    flagged = report.flagged_frames
    if flagged:
        console.print(
            f"[yellow]{len(flagged)} of {len(report.net_force_rows)} reference frames[/] have "
            f"forces summing to more than {report.net_force.threshold_eV_per_A:g} eV/Å "
            f"(largest {max(r['net_force_eV_per_A'] for r in flagged):.3f}): see "
            f"{report.files['net_force']}"
        )
    if report.committee is not None:
        c = report.committee
        console.print(
            f"committee {', '.join(c.models)}: force spread against error per atom, Pearson "
            f"{c.per_atom.pearson:.3f}, Spearman {c.per_atom.spearman:.3f}"
        )
    if report.flat_rebuilt:
        console.print(f"flat table made again: {report.workdir / 'benchmark_flat.h5'}")
    console.print(f"summary: {report.files['summary']}")


@app.command("cost")
@user_errors
def cost(
    structures: Annotated[
        list[Path] | None,
        typer.Argument(help="Structure files (any format ASE reads; the last frame is used)."),
    ] = None,
    input_dir: Annotated[
        Path | None, typer.Option(help="Also every *.xyz and *.extxyz file of this folder.")
    ] = None,
    working_dir: WorkDirOption = Path("benchmark_cost"),
    model: ModelsOption = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    steps: Annotated[int, typer.Option(help="MD steps per run.")] = 100,
    time_step_fs: Annotated[float, typer.Option("--time-step-fs", help="Time step, fs.")] = 1.0,
    temperature_K: Annotated[
        float, typer.Option("--temperature-K", help="Langevin thermostat temperature, K.")
    ] = 450.0,
    save_interval: Annotated[
        int, typer.Option(help="Steps between saved frames (writing counts to the cost).")
    ] = 10,
    warmup_steps: Annotated[
        int, typer.Option(help="First steps left out of the time per step (graph set-up).")
    ] = 1,
    batched: Annotated[
        bool,
        typer.Option(
            "--batched/--serial",
            help="Batched: each structure copied into one TorchSim batch per --batch-size; "
            "serial: each structure alone, as the thesis measured.",
        ),
    ] = False,
    batch_size: Annotated[
        list[int] | None,
        typer.Option("--batch-size", help="Systems per batch in --batched mode; repeat."),
    ] = None,
    until_oom: Annotated[
        bool,
        typer.Option(help="Batched on CUDA: keep doubling the batch until the GPU is full."),
    ] = False,
    backend: EngineOption = "auto",
    device: DeviceOption = "auto",
    cpu_threads: Annotated[
        int | None,
        typer.Option(help="torch threads in each child; 1 is steadier on a shared machine."),
    ] = None,
    sample_interval_s: Annotated[
        float,
        typer.Option(
            "--sample-interval-s", help="Seconds between resource readings.", click_type=POSITIVE
        ),
    ] = 0.25,
    plot: PlotOption = True,
    timeout: TimeoutOption = None,
    seed: SeedOption = 0,
) -> None:
    """Time MD of every STRUCTURE with each model and record the CPU, memory and GPU it uses.

    Writes the timings with the averaged readings (cost_summary.csv, or cost_batched.csv) and
    every reading (cost_samples.csv), and plots them against the number of atoms. Exits 1 if a
    model failed (the others finish).
    """
    from scalms.benchmark.cost import find_structures, run_cost
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.config import load_config
    from scalms.dynamics.settings import MDSettings

    terminate_like_ctrl_c()
    console = make_console()
    paths = find_structures(structures, input_dir)
    settings = MDSettings(
        n_steps=steps,
        time_step_fs=time_step_fs,
        temperature_K=temperature_K,
        save_interval=save_interval,
        checkpoint_every=10**9,  # a checkpoint at the start and the end only: not its cost
        seed=seed,
    )
    entries = load_config(model_config).select(model)
    with ModelProgress(console) as progress:
        run = run_cost(
            paths,
            entries,
            working_dir,
            settings,
            mode="batched" if batched else "serial",
            backend=backend,
            device=device,
            batch_sizes=batch_size,
            until_oom=until_oom,
            warmup_steps=warmup_steps,
            cpu_threads=cpu_threads,
            sample_interval_s=sample_interval_s,
            timeout_s=timeout,
            reporter=progress,
            plot=plot,
        )
    print_cost(console, run)
    if run.failed:
        raise typer.Exit(1)


def _fmt(value, digits: int = 3) -> str:
    import math

    return "-" if not isinstance(value, int | float) or math.isnan(value) else f"{value:.{digits}g}"


def print_cost(console, run) -> None:
    from rich.table import Table

    table = Table(title=f"MD cost ({run.mode}): {run.workdir}")
    for column in ("model", "backend", "structure"):
        table.add_column(column)
    for column in (
        "atoms",
        "systems",
        "s/step",
        "s per ps",
        "atom-steps/s",
        "CPU %",
        "RSS MiB",
        "GPU %",
        "VRAM MiB",
    ):
        table.add_column(column, justify="right")
    for row in run.rows:
        table.add_row(
            row["model"],
            row["backend"],
            row["structure"],
            str(row["n_atoms"]),
            str(row["n_systems"]),
            _fmt(row["s_per_step"]) if row["status"] == "ok" else row["status"],
            _fmt(row["compute_s_per_ps"]),
            _fmt(row["atom_steps_per_s"]),
            _fmt(row["cpu_percent_mean"]),
            _fmt(row["rss_MB_max"], 4),
            _fmt(row["gpu_util_percent_mean"]),
            _fmt(row["gpu_memory_MB_max"], 4),
        )
    console.print(table)
    if run.gpu_note:
        console.print(f"no GPU readings: {run.gpu_note}")
    print_failures(console, run.failed)
    console.print(f"timings: {run.files['summary']}; every reading: {run.files['samples']}")
