"""``scalms io``: look into, export, concatenate and split MD trajectory and results files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors

app = typer.Typer(help="Inspect, export, concatenate and split MD trajectory and results files.")

InputArgument = Annotated[
    Path,
    typer.Argument(
        metavar="INPUT", help="A trajectory file (.h5md) or a consolidated results file."
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


@app.command("info")
@user_errors
def info(path: InputArgument) -> None:
    """List the runs of INPUT (a trajectory or results file): model, structure, frames, and
    whether each is complete."""
    from rich.table import Table

    from scalms.cli._console import console
    from scalms.io.results import open_runs

    runs = open_runs(path)
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
) -> None:
    """Export runs of INPUT (a trajectory or results file) to extended XYZ for OVITO and ASE.

    OUTPUT is the .xyz file when one run is selected, else a folder that receives
    MODEL__STRUCTURE.xyz per run. Frames carry cell, pbc, forces, energy and momenta.
    """
    from scalms.errors import ScalmsError
    from scalms.io.export import write_extxyz
    from scalms.io.results import open_runs

    runs = open_runs(input_path)
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
    for ref, target in targets.items():
        traj = runs.read(ref)
        write_extxyz(traj, target, stride=stride)
        n_written = len(range(0, traj.n_frames, stride))
        typer.echo(f"{ref.model}/{ref.structure}: {n_written} frames -> {target}")


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
    from scalms.errors import ScalmsError
    from scalms.io.results import concat as concat_files
    from scalms.io.results import list_runs

    if output.exists() and not overwrite:
        raise ScalmsError(f"{output} exists; pass --overwrite to replace it")
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
