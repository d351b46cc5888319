"""``scalms analyze pdf|trace|diffusion|net-force``: analyses of existing MD results, no new MD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors
from scalms.cli.types import (
    FrameIntervalOption,
    InputSaveIntervalOption,
    InputTimeStepOption,
    MsdFitOption,
    MsdMaxLagOption,
    MsdMethodOption,
    PdfBinsOption,
    PdfRMaxOption,
    PlotOption,
    SurfaceAtomsOption,
    SurfaceElementOption,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Analyse MD results (results or trajectory files) without running MD again.",
)

ResultsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Results files (MD_dynamics_results.h5), trajectory files (.h5md), or trajectories "
        "of other codes in any format ASE reads (extended XYZ, .traj, LAMMPS dump, XDATCAR, "
        "OUTCAR; give their time step where the file does not)."
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Folder for records and figures. Default: analysis/ beside the first input.",
    ),
]
ModelFilter = Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models.")]
StructureFilter = Annotated[
    list[str] | None, typer.Option("--structure", "-s", help="Only these structures.")
]
AnalysisDevice = Annotated[
    str,
    typer.Option(
        "--device",
        help="cpu (NumPy), cuda[:N] (torch on that GPU) or auto (a GPU where one is visible).",
    ),
]
ElementArgument = Annotated[str, typer.Option("--element", "-e", help="Element symbol or number.")]


def _run(results, out, model, structure, plot, timing, **options) -> None:
    from scalms.cli._console import console as make_console
    from scalms.dynamics.analyses import AnalysisRequest, run_analyses
    from scalms.errors import ScalmsError
    from scalms.io.foreign import FrameTiming

    for path in results:
        if not path.exists():
            raise ScalmsError(f"no such results file: {path}")
    console = make_console()
    request = AnalysisRequest.from_options(thermo=False, **options)
    out = out or results[0].parent / "analysis"
    with console.status("analysing") as status:
        output = run_analyses(
            results,
            request,
            out,
            plot=plot,
            models=model,
            structures=structure,
            progress=lambda name: status.update(f"analysing {name}"),
            timing=FrameTiming(*timing),
        )
    for table in output.tables:
        from rich.table import Table

        shown = Table(title=table["caption"])
        for column in table["header"]:
            shown.add_column(str(column))
        for row in table["rows"]:
            shown.add_row(*map(str, row))
        console.print(shown)
    for note in output.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"{len(output.figures)} figure(s) and the records in {out}")


@app.command("pdf")
@user_errors
def pdf(
    results: ResultsArgument,
    pair: Annotated[
        list[str] | None,
        typer.Option(
            "--pair", help="Partial PDF of a pair (Pt-Ga or 78-31); repeat. Default: full."
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full/--no-full", help="Also the full PDF.")] = True,
    r_max_A: PdfRMaxOption = 10.0,
    bins: PdfBinsOption = 200,
    mode: Annotated[
        str, typer.Option(help="shell (per shell volume, 1/Å³) or pair-fraction (eq. 3.1).")
    ] = "shell",
    precision: Annotated[
        str | None,
        typer.Option(
            help="Distances in float64 (exact bins) or float32. Default: float64 on a CPU, "
            "float32 on a GPU."
        ),
    ] = None,
    out: OutOption = None,
    model: ModelFilter = None,
    structure: StructureFilter = None,
    plot: PlotOption = True,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
    device: AnalysisDevice = "cpu",
) -> None:
    """Full and partial pair distribution functions of every run."""
    _run(
        results,
        out,
        model,
        structure,
        plot,
        (time_step_fs, save_interval, frame_interval_fs),
        pdf=full,
        partial_pdf=pair,
        pdf_r_max_A=r_max_A,
        pdf_bins=bins,
        pdf_mode=mode,
        pdf_precision=precision,
        device=device,
    )


@app.command("trace")
@user_errors
def trace(
    results: ResultsArgument,
    element: ElementArgument,
    surface_element: SurfaceElementOption = None,
    surface_atoms: SurfaceAtomsOption = 5,
    final_fraction: Annotated[
        float, typer.Option(help="Fraction of the run, from the end, in the histograms.")
    ] = 0.5,
    out: OutOption = None,
    model: ModelFilter = None,
    structure: StructureFilter = None,
    plot: PlotOption = True,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
    device: AnalysisDevice = "cpu",
) -> None:
    """Distance of ELEMENT's atoms from the centre of mass and from the adaptive surface.

    With several runs (sizes, solutes, working dirs), also the summary across sizes.
    """
    _run(
        results,
        out,
        model,
        structure,
        plot,
        (time_step_fs, save_interval, frame_interval_fs),
        trace=element,
        surface_elements=surface_element,
        surface_atoms=surface_atoms,
        final_fraction=final_fraction,
        device=device,
    )


@app.command("diffusion")
@user_errors
def diffusion(
    results: ResultsArgument,
    element: Annotated[
        list[str],
        typer.Option(
            "--element",
            "-e",
            help="Element symbol or number, or 'all' for every atom; repeat for one MSD each.",
        ),
    ],
    keep_drift: Annotated[
        bool,
        typer.Option(
            "--keep-drift",
            help="Keep the centre of mass's displacement in the MSD (removed by default).",
        ),
    ] = False,
    method: MsdMethodOption = "fft",
    max_lag_fs: MsdMaxLagOption = 1000.0,
    fit_fs: MsdFitOption = None,
    origin_stride: Annotated[
        int, typer.Option(help="Time origins every N frames (direct method).")
    ] = 2,
    out: OutOption = None,
    model: ModelFilter = None,
    structure: StructureFilter = None,
    plot: PlotOption = True,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
    device: AnalysisDevice = "cpu",
) -> None:
    """Mean squared displacement of each ELEMENT and its diffusion coefficient (cm²/s).

    Periodic runs are unwrapped first; the displacement of the run's centre of mass (all atoms,
    mass-weighted) is removed unless --keep-drift.
    """
    _run(
        results,
        out,
        model,
        structure,
        plot,
        (time_step_fs, save_interval, frame_interval_fs),
        diffusion=element,
        msd_remove_drift=not keep_drift,
        msd_method=method,
        msd_max_lag_fs=max_lag_fs,
        msd_fit_fs=fit_fs,
        msd_origin_stride=origin_stride,
        device=device,
    )


@app.command("net-force")
@user_errors
def net_force(
    results: ResultsArgument,
    out: OutOption = None,
    model: ModelFilter = None,
    structure: StructureFilter = None,
    plot: PlotOption = True,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
) -> None:
    """Magnitude of the sum of all forces per frame: near zero for a conservative model."""
    _run(
        results,
        out,
        model,
        structure,
        plot,
        (time_step_fs, save_interval, frame_interval_fs),
        net_force=True,
    )


# In its own module: it runs a model child and has its own options, unlike the records above.
from scalms.cli.cluster import cluster  # noqa: E402

app.command("cluster")(cluster)
