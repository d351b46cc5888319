"""``scalms dynamics run|resume|status``: MD of every structure with every model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._console import print_failures
from scalms.cli._errors import user_errors
from scalms.cli.types import (
    DEFAULT_CONFIG,
    DeviceOption,
    DiffusionOption,
    ModelConfigOption,
    ModelsOption,
    MsdFitOption,
    MsdMaxLagOption,
    MsdMethodOption,
    NetForceOption,
    PartialPdfOption,
    PdfOption,
    PlotOption,
    SeedOption,
    StructuresArgument,
    SurfaceAtomsOption,
    SurfaceElementOption,
    TimeoutOption,
    TraceOption,
)

app = typer.Typer(no_args_is_help=True, help="Molecular dynamics: run, resume, status.")

WorkDirOption = Annotated[
    Path, typer.Option("--working-dir", "-w", help="Folder for trajectories, results and report.")
]


@app.command("run")
@user_errors
def run(
    structures: StructuresArgument,
    working_dir: WorkDirOption = Path("md_run"),
    model: ModelsOption = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    n_steps: Annotated[int, typer.Option(help="MD steps per structure.")] = 1000,
    time_step_fs: Annotated[float, typer.Option("--time-step-fs", help="Time step, fs.")] = 1.0,
    temperature_K: Annotated[
        float, typer.Option("--temperature-K", help="Target (and initial) temperature, K.")
    ] = 450.0,
    ensemble: Annotated[
        str,
        typer.Option(help="nvt-langevin, nvt-nose-hoover, nve, or npt (periodic cells)."),
    ] = "nvt-langevin",
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help="A temperature stage STEPS:KELVIN; repeat to run stages back to back (heat, "
            "cool). Replaces --n-steps and --temperature-K.",
        ),
    ] = None,
    save_interval: Annotated[int, typer.Option(help="Steps between saved frames.")] = 10,
    checkpoint_every: Annotated[
        int, typer.Option(help="Saved frames between checkpoints (resume points).")
    ] = 10,
    thermostat_time_fs: Annotated[
        float | None,
        typer.Option("--thermostat-time-fs", help="Langevin 1/friction or Nosé-Hoover tau, fs."),
    ] = None,
    pressure_bar: Annotated[float, typer.Option(help="NPT pressure, bar.")] = 1.01325,
    max_force_eV_per_A: Annotated[
        float,
        typer.Option(
            "--max-force-eV-per-A",
            help="Stop a run whose largest force passes this (blown up: overlapping atoms).",
        ),
    ] = 50.0,
    max_temperature_K: Annotated[
        float,
        typer.Option(
            "--max-temperature-K",
            help="Stop a run hotter than this (blown up: a time step too long).",
        ),
    ] = 10000.0,
    backend: Annotated[
        str, typer.Option(help="auto (TorchSim, ASE as the fallback), torchsim or ase.")
    ] = "auto",
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    frame: Annotated[
        int, typer.Option(help="Starting frame of multi-frame structure files (default: last).")
    ] = -1,
    data_file_name: Annotated[
        str, typer.Option(help="Consolidated results file in the working dir.")
    ] = "MD_dynamics_results.h5",
    consolidate: Annotated[
        str, typer.Option(help="links (HDF5 external links) or repack (one self-contained copy).")
    ] = "links",
    remove_trajectories: Annotated[
        bool, typer.Option(help="Delete per-run trajectory files after a repack (not advised).")
    ] = False,
    plot: PlotOption = True,
    pdf: PdfOption = False,
    partial_pdf: PartialPdfOption = None,
    trace: TraceOption = None,
    surface_element: SurfaceElementOption = None,
    surface_atoms: SurfaceAtomsOption = 5,
    net_force: NetForceOption = False,
    diffusion: DiffusionOption = None,
    msd_method: MsdMethodOption = "fft",
    msd_max_lag_fs: MsdMaxLagOption = 1000.0,
    msd_fit_fs: MsdFitOption = None,
    max_batch_atoms: Annotated[
        int | None, typer.Option(help="Atoms per TorchSim batch; default: measured on a GPU.")
    ] = None,
    timeout: TimeoutOption = None,
    overwrite: Annotated[bool, typer.Option(help="Start again in a used working dir.")] = False,
) -> None:
    """Run MD of every STRUCTURE with each model, then the chosen analyses and a report.

    Each model runs in its own environment; TorchSim batches the structures, ASE takes over
    for models TorchSim lacks or batches that fail. Trajectories are written as frames come and
    checkpointed: `scalms dynamics resume WORKDIR` continues an interrupted run exactly.
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.config import load_config
    from scalms.dynamics.analyses import AnalysisRequest
    from scalms.dynamics.run import start_dynamics
    from scalms.dynamics.settings import MDSettings, parse_stages

    terminate_like_ctrl_c()
    console = make_console()
    common = {
        "time_step_fs": time_step_fs,
        "ensemble": ensemble,
        "save_interval": save_interval,
        "checkpoint_every": checkpoint_every,
        "thermostat_time_fs": thermostat_time_fs,
        "pressure_bar": pressure_bar,
        "seed": seed,
        "max_force_eV_per_A": max_force_eV_per_A,
        "max_temperature_K": max_temperature_K,
    }
    if stage:
        settings = MDSettings.staged(parse_stages(stage), **common)
    else:
        settings = MDSettings(n_steps=n_steps, temperature_K=temperature_K, **common)
    request = AnalysisRequest.from_options(
        pdf=pdf,
        partial_pdf=partial_pdf,
        trace=trace,
        surface_elements=surface_element,
        surface_atoms=surface_atoms,
        net_force=net_force,
        diffusion=diffusion,
        msd_method=msd_method,
        msd_max_lag_fs=msd_max_lag_fs,
        msd_fit_fs=msd_fit_fs,
    )
    entries = load_config(model_config).select(model)
    with ModelProgress(console) as progress:
        result = start_dynamics(
            structures,
            entries,
            working_dir,
            settings,
            analyses=request.to_dict() if request.any() else None,
            backend=backend,
            device=device,
            data_file=data_file_name,
            consolidate=consolidate,
            remove_trajectories=remove_trajectories,
            plot=plot,
            frame=frame,
            max_batch_atoms=max_batch_atoms,
            timeout_s=timeout,
            overwrite=overwrite,
            reporter=progress,
        )
    print_outcome(console, result)


@app.command("resume")
@user_errors
def resume(
    working_dir: Annotated[Path, typer.Argument(help="Working dir of an interrupted run.")],
    timeout: TimeoutOption = None,
) -> None:
    """Continue the unfinished runs of WORKING_DIR from their last checkpoints.

    Finished runs are left alone; each unfinished one continues with its saved thermostat and
    random state, so it ends where an uninterrupted run would, with no frame lost or repeated.
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.dynamics.run import resume_dynamics

    terminate_like_ctrl_c()
    console = make_console()
    with ModelProgress(console) as progress:
        result = resume_dynamics(working_dir, timeout_s=timeout, reporter=progress)
    print_outcome(console, result)


@app.command("status")
@user_errors
def status(
    working_dir: Annotated[Path, typer.Argument(help="Working dir of an MD run.")],
) -> None:
    """Frames written and expected for every (model, structure) of WORKING_DIR."""
    from scalms.cli._console import console as make_console
    from scalms.dynamics.run import statuses
    from scalms.dynamics.workdir import WorkDir

    wd = WorkDir(working_dir)
    print_statuses(make_console(), statuses(wd, wd.read_manifest()))


def print_statuses(console, rows) -> None:
    from rich.table import Table

    table = Table(title="MD runs")
    for column in ("model", "structure", "backend"):
        table.add_column(column)
    table.add_column("frames", justify="right")
    table.add_column("state")
    colours = {"complete": "green", "failed": "red", "incomplete": "yellow"}
    for row in rows:
        state = f"[{colours[row.state]}]{row.state}[/]"
        table.add_row(
            row.model,
            row.structure,
            row.backend + (f" ({row.note})" if row.note else ""),
            f"{row.n_frames}/{row.expected_frames}",
            state,
        )
    console.print(table)
    for row in rows:
        if row.failed and not row.complete:
            console.print(f"[red]failed[/] {row.model} / {row.structure}: {row.failed}")


def print_outcome(console, result) -> None:
    print_statuses(console, result.statuses)
    if result.results is not None:
        console.print(f"results: {result.results}")
    for note in result.analysis_notes:
        console.print(f"[yellow]analysis[/]: {note}")
    if result.workdir.report.exists():
        console.print(f"report: {result.workdir.report}")
    print_failures(console, result.failed)
    if result.unfinished:
        console.print(
            f"unfinished runs: continue with `scalms dynamics resume {result.workdir.root}`"
        )
    if result.failed or result.failed_runs:
        raise typer.Exit(1)
