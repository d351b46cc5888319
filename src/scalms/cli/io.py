"""``scalms io``: look into, export, concatenate and split MD trajectory and results files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors
from scalms.cli.types import FrameIntervalOption, InputSaveIntervalOption, InputTimeStepOption

app = typer.Typer(help="Inspect, export, concatenate and split MD trajectory and results files.")

InputArgument = Annotated[
    Path,
    typer.Argument(
        metavar="INPUT",
        help="A scalms trajectory (.h5md) or results file, or a trajectory of another code in "
        "any format ASE reads (extended XYZ, .traj, LAMMPS dump, XDATCAR, OUTCAR).",
    ),
]
RunModelsOption = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Only this model's runs; repeat for several."),
]
RunStructuresOption = Annotated[
    list[str] | None,
    typer.Option("--structure", "-s", help="Only this structure's runs; repeat for several."),
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace output files that exist.")]


def _timing(time_step_fs, save_interval, frame_interval_fs):
    from scalms.io.foreign import FrameTiming

    return FrameTiming(time_step_fs, save_interval, frame_interval_fs)


@app.command("info")
@user_errors
def info(
    path: InputArgument,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
) -> None:
    """List the runs of INPUT (a trajectory or results file): model, structure, frames, and
    whether each is complete."""
    from rich.table import Table

    from scalms.cli._console import console
    from scalms.io.results import open_runs

    runs = open_runs(path, _timing(time_step_fs, save_interval, frame_interval_fs))
    table = Table("model", "structure", "frames", "complete", title=f"{path} ({runs.kind})")
    for ref in runs:
        complete = "[green]yes[/]" if ref.complete else "[red]no[/]"
        table.add_row(ref.model, ref.structure, str(ref.n_frames), complete)
    console().print(table)


@app.command("to-xyz")
@user_errors
def to_xyz(
    input_path: InputArgument,
    output: Annotated[
        Path,
        typer.Argument(
            help="The .xyz file for one run; for several, a folder receiving "
            "MODEL__STRUCTURE.xyz each."
        ),
    ],
    model: RunModelsOption = None,
    structure: RunStructuresOption = None,
    stride: Annotated[int, typer.Option(min=1, help="Write every N-th frame.")] = 1,
    overwrite: OverwriteOption = False,
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
) -> None:
    """Export runs of INPUT (a trajectory or results file) to extended XYZ for OVITO and ASE.

    OUTPUT is the .xyz file when one run is selected, else a folder that receives
    MODEL__STRUCTURE.xyz per run. Frames carry cell, pbc, forces, energy and momenta.
    Existing files are replaced only with --overwrite; nothing is written unless every run is.
    """
    from scalms.errors import ScalmsError
    from scalms.io.export import check_targets, export_runs
    from scalms.io.results import open_runs

    runs = open_runs(input_path, _timing(time_step_fs, save_interval, frame_interval_fs))
    refs = runs.select(model, structure)
    if len(refs) == 1 and not output.is_dir():
        targets = {refs[0]: output}
    else:
        if output.suffix in (".xyz", ".extxyz") or output.is_file():
            raise ScalmsError(
                f"{len(refs)} runs selected but {output} names one file; give a folder, or "
                "pick one run with --model and --structure"
            )
        targets = {ref: output / f"{ref.model}__{ref.structure}.xyz" for ref in refs}
    if input_path.resolve() in {target.resolve() for target in targets.values()}:
        raise ScalmsError(f"{input_path} is both the input and the output; name another file")
    check_targets(list(targets.values()), overwrite=overwrite)
    written = export_runs(runs, targets, stride=stride)
    for ref, target in targets.items():
        typer.echo(f"{ref.model}/{ref.structure}: {written[target]} frames -> {target}")


@app.command("import")
@user_errors
def import_(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="TRAJ",
            help="Trajectory of another code, any format ASE reads (extended XYZ, .traj, "
            "LAMMPS dump, XDATCAR, OUTCAR).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The H5MD file to write.")],
    time_step_fs: InputTimeStepOption = None,
    save_interval: InputSaveIntervalOption = None,
    frame_interval_fs: FrameIntervalOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model name to record (default: 'unknown')."),
    ] = None,
    structure_name: Annotated[
        str | None,
        typer.Option("--structure-name", help="Structure name to record (default: file stem)."),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Write TRAJ as a scalms H5MD trajectory, which every scalms command and H5MD reader takes.

    The time between frames comes from the file where it says (extxyz step/time_fs, LAMMPS
    step numbers, OUTCAR POTIM), else from the options.
    """
    from scalms.io.foreign import import_trajectory

    traj = import_trajectory(
        input_path,
        out,
        _timing(time_step_fs, save_interval, frame_interval_fs),
        model=model,
        structure=structure_name,
        overwrite=overwrite,
    )
    typer.echo(
        f"wrote {out}: {traj.model}/{traj.structure}, {traj.n_frames} frames of {traj.n_atoms} "
        f"atoms, {traj.frame_interval_fs:g} fs apart"
    )


@app.command("concat")
@user_errors
def concat(
    output: Annotated[Path, typer.Argument(help="Results file to write.")],
    inputs: Annotated[list[Path], typer.Argument(help="Trajectory files to gather.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model name for every input; default: each file's."),
    ] = None,
    structure_name: Annotated[
        list[str] | None,
        typer.Option(
            "--structure-name",
            help="Structure name of each input, in order; repeat once per input. "
            "Default: each file's.",
        ),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Copy the trajectory files INPUTS into one standalone results file OUTPUT, e.g. after a
    job died before writing its own. Runs keep the names stored in their files unless
    --model / --structure-name say otherwise."""
    from scalms.io.export import check_targets
    from scalms.io.results import concat as concat_files
    from scalms.io.results import list_runs

    check_targets([output], overwrite=overwrite)
    concat_files(inputs, output, model=model, structure_names=structure_name)
    runs = list_runs(output)
    typer.echo(f"wrote {output}: {len(runs)} runs")
    for ref in runs:
        state = "complete" if ref.complete else "incomplete"
        typer.echo(f"  {ref.model}/{ref.structure}: {ref.n_frames} frames, {state}")


@app.command("split")
@user_errors
def split(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Results file to split.")],
    output_dir: Annotated[
        Path, typer.Argument(help="Folder receiving MODEL/STRUCTURE.h5md per run.")
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model's runs.")
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Write each run of the results file INPUT to OUTPUT_DIR/MODEL/STRUCTURE.h5md."""
    from scalms.io.results import split as split_file

    for path in split_file(input_path, output_dir, model=model, overwrite=overwrite):
        typer.echo(f"wrote {path}")
