"""``scalms geometry nanoparticle|bulk|resume|alloy|adsorbates``: build the starting structures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._console import print_failures
from scalms.cli._errors import user_errors
from scalms.cli.types import (
    DEFAULT_CONFIG,
    DeviceOption,
    MaxBatchAtomsOption,
    ModelConfigOption,
    SeedOption,
    StructuresArgument,
    TimeoutOption,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Starting structures: Wulff nanoparticles melted by MD, bulk melts, alloys, adsorbates.",
)

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model (from the config) that melts.")
]
SoluteOption = Annotated[
    list[str] | None,
    typer.Option("--solute", help="Solute element; repeat for one structure per element."),
]
FractionOption = Annotated[
    float | None, typer.Option(help="Fraction of the host atoms replaced by the solute.")
]
CountOption = Annotated[int | None, typer.Option(help="Number of host atoms replaced.")]
OrderOption = Annotated[
    str,
    typer.Option(help="Add solutes before melting (equilibrated) or after (on the melt)."),
]
HostOption = Annotated[str, typer.Option(help="Element the solutes replace.")]

# The melting protocol.
TargetOption = Annotated[
    float, typer.Option("--target-K", help="Target temperature: first and last stage, K.")
]
HotOption = Annotated[float, typer.Option("--hot-K", help="Annealing temperature, K.")]
EquilibrateOption = Annotated[
    float, typer.Option("--equilibrate-ps", help="First stage at the target temperature, ps.")
]
HotPsOption = Annotated[float, typer.Option("--hot-ps", help="Hot stage, ps.")]
FinalOption = Annotated[
    float, typer.Option("--final-ps", help="Last stage, back at the target temperature, ps.")
]
TimeStepOption = Annotated[float, typer.Option("--time-step-fs", help="MD time step, fs.")]
SaveIntervalOption = Annotated[int, typer.Option(help="Steps between saved frames.")]
MeltOption = Annotated[
    bool, typer.Option("--melt/--no-melt", help="Melt with MD (needs --model), or only build.")
]
BackendOption = Annotated[
    str, typer.Option(help="auto (TorchSim, ASE as the fallback), torchsim or ase.")
]


def _solutes(solute, fraction, count, order, host):
    from scalms.geometry.plan import SoluteRequest

    return SoluteRequest(tuple(solute or ()), fraction, count, order, host)


def _protocol(
    melt,
    target_K,
    hot_K,
    equilibrate_ps,
    hot_ps,
    final_ps,
    time_step_fs,
    save_interval,
    seed,
    ensemble="nvt-langevin",
):
    from scalms.geometry.melt import MeltProtocol

    if not melt:
        return None
    return MeltProtocol(
        target_K=target_K,
        hot_K=hot_K,
        equilibrate_ps=equilibrate_ps,
        hot_ps=hot_ps,
        final_ps=final_ps,
        time_step_fs=time_step_fs,
        save_interval=save_interval,
        ensemble=ensemble,
        seed=seed,
    )


def _run_and_report(start) -> None:
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress

    terminate_like_ctrl_c()
    console = make_console()
    with ModelProgress(console) as progress:
        run = start(progress)
    print_geometry(console, run)


@app.command("nanoparticle")
@user_errors
def nanoparticle(
    size: Annotated[
        list[int], typer.Option("--size", "-n", help="Target atom count; repeat for several.")
    ],
    out: OutOption = Path("nanoparticles"),
    model: ModelOption = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    element: Annotated[str, typer.Option(help="Host element of the crystal.")] = "Ga",
    surface_energies: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML of Miller index -> J/m² (default: the shipped table)."),
    ] = None,
    bulk: Annotated[
        Path | None, typer.Option(help="Conventional cell of another crystal to cut from.")
    ] = None,
    rounding: Annotated[
        str, typer.Option(help="Atom count closest to the target, or the nearest above/below.")
    ] = "closest",
    vacuum: Annotated[float, typer.Option("--vacuum-A", help="Vacuum around it, Å.")] = 10.0,
    solute: SoluteOption = None,
    fraction: FractionOption = None,
    count: CountOption = None,
    order: OrderOption = "before",
    host: HostOption = "Ga",
    melt: MeltOption = True,
    target_K: TargetOption = 450.0,
    hot_K: HotOption = 1000.0,
    equilibrate_ps: EquilibrateOption = 2.0,
    hot_ps: HotPsOption = 6.0,
    final_ps: FinalOption = 2.0,
    time_step_fs: TimeStepOption = 1.0,
    save_interval: SaveIntervalOption = 50,
    backend: BackendOption = "auto",
    device: DeviceOption = "auto",
    max_batch_atoms: MaxBatchAtomsOption = None,
    seed: SeedOption = 0,
    timeout: TimeoutOption = None,
    overwrite: Annotated[bool, typer.Option(help="Start again in a used --out.")] = False,
) -> None:
    """Cut Wulff nanoparticles of about each --size atoms, add solutes, and melt them together.

    The crystal is the element's stable solid (alpha-Ga for gallium) and the shape its Wulff
    shape; the atom count the crystal allows closest to each target is reported. Melting runs
    three MD stages (target, hot, target) of every particle in one TorchSim batch.
    """
    from scalms.geometry.nanoparticles import build_nanoparticles

    solutes = _solutes(solute, fraction, count, order, host)
    protocol = _protocol(
        melt, target_K, hot_K, equilibrate_ps, hot_ps, final_ps, time_step_fs, save_interval, seed
    )
    _run_and_report(
        lambda reporter: build_nanoparticles(
            out,
            size,
            element=element,
            surface_energies=surface_energies,
            bulk=bulk,
            rounding=rounding,
            vacuum_A=vacuum,
            solutes=solutes,
            protocol=protocol,
            model=model,
            model_config=model_config,
            backend=backend,
            device=device,
            max_batch_atoms=max_batch_atoms,
            seed=seed,
            timeout_s=timeout,
            overwrite=overwrite,
            reporter=reporter,
        )
    )


@app.command("bulk")
@user_errors
def bulk_melt(
    repeat: Annotated[
        tuple[int, int, int], typer.Option(help="Repeats of the conventional cell along a, b, c.")
    ] = (3, 2, 3),
    out: OutOption = Path("bulk"),
    model: ModelOption = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    element: Annotated[str, typer.Option(help="Element of the crystal.")] = "Ga",
    bulk: Annotated[
        Path | None, typer.Option(help="Conventional cell of another crystal to start from.")
    ] = None,
    solute: SoluteOption = None,
    fraction: FractionOption = None,
    count: CountOption = None,
    host: HostOption = "Ga",
    melt: MeltOption = True,
    target_K: TargetOption = 450.0,
    hot_K: HotOption = 1000.0,
    equilibrate_ps: EquilibrateOption = 2.0,
    hot_ps: HotPsOption = 6.0,
    final_ps: FinalOption = 2.0,
    time_step_fs: TimeStepOption = 1.0,
    save_interval: SaveIntervalOption = 50,
    pressure_bar: Annotated[float, typer.Option(help="Pressure, bar (1 atm by default).")] = (
        1.01325
    ),
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    timeout: TimeoutOption = None,
    overwrite: Annotated[bool, typer.Option(help="Start again in a used --out.")] = False,
) -> None:
    """Melt a periodic supercell of the crystal under NPT (isotropic Langevin barostat).

    The cell follows the melt's volume change at --pressure-bar; TorchSim runs NPT, so the
    backend is TorchSim.
    """
    from dataclasses import replace

    from scalms.geometry.nanoparticles import build_bulk

    solutes = _solutes(solute, fraction, count, "before", host)
    protocol = _protocol(
        melt,
        target_K,
        hot_K,
        equilibrate_ps,
        hot_ps,
        final_ps,
        time_step_fs,
        save_interval,
        seed,
        ensemble="npt",
    )
    if protocol is not None:
        protocol = replace(protocol, pressure_bar=pressure_bar)
    _run_and_report(
        lambda reporter: build_bulk(
            out,
            repeat,
            element=element,
            bulk=bulk,
            solutes=solutes,
            protocol=protocol,
            model=model,
            model_config=model_config,
            device=device,
            seed=seed,
            timeout_s=timeout,
            overwrite=overwrite,
            reporter=reporter,
        )
    )


@app.command("resume")
@user_errors
def resume(
    out: Annotated[Path, typer.Argument(help="Output folder of an interrupted geometry run.")],
    timeout: TimeoutOption = None,
) -> None:
    """Continue an interrupted melt from its last checkpoint and write the final structures."""
    from scalms.geometry.nanoparticles import resume as resume_run

    _run_and_report(lambda reporter: resume_run(out, timeout_s=timeout, reporter=reporter))


def print_geometry(console, run) -> None:
    from rich.table import Table

    from scalms.geometry.plan import TABLE_HEADER, table_rows

    table = Table(title="Structures")
    for column in TABLE_HEADER:
        table.add_column(column)
    for row in table_rows(run.particles):
        table.add_row(*[str(cell) for cell in row])
    console.print(table)
    for note in run.notes:
        console.print(f"[yellow]note[/]: {note}")
    if run.melt is not None:
        print_failures(console, run.melt.failed)
    report = run.layout.report
    if report.exists():
        console.print(f"report: {report}")
    if run.failed:
        console.print(f"unfinished: continue with `scalms geometry resume {run.layout.root}`")
        raise typer.Exit(1)


@app.command("alloy")
@user_errors
def alloy(
    structures: StructuresArgument,
    element: Annotated[str, typer.Option("--element", "-e", help="Solute element.")],
    fraction: FractionOption = None,
    count: CountOption = None,
    host: HostOption = "Ga",
    out: Annotated[
        list[Path] | None,
        typer.Option("--out", "-o", help="Output file per input (default: beside it)."),
    ] = None,
    seed: SeedOption = 0,
) -> None:
    """Replace an exact number of host atoms of each structure by --element, at random.

    Every frame of a trajectory is alloyed the same way (the same sites), so the frames stay
    comparable; the same --seed gives the same sites.
    """
    from scalms.geometry.structure_files import alloy_files

    for done in alloy_files(
        structures, element, fraction=fraction, count=count, host=host, seed=seed, outs=out
    ):
        typer.echo(
            f"{done.source} -> {done.target}: {done.n_replaced} of {host} replaced by {element} "
            f"({done.n_frames} frame(s))"
        )


@app.command("adsorbates")
@user_errors
def adsorbates(
    nanoparticle: Annotated[
        Path, typer.Argument(help="Nanoparticle (any ASE format; a trajectory: a random frame).")
    ],
    molecule: Annotated[
        list[str],
        typer.Option("--molecule", help="propane, another g2 name, or a structure file; repeat."),
    ] = ["propane"],  # noqa: B006 (typer reads the default, nothing mutates it)
    count: Annotated[
        int, typer.Option(help="Molecules in all, shared evenly over the kinds.")
    ] = 10,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file.")] = None,
    distance_from_radius: Annotated[
        float, typer.Option("--distance-from-radius-A", help="First try beyond the radius, Å.")
    ] = 2.0,
    min_distance: Annotated[
        float, typer.Option("--min-distance-A", help="Closest allowed approach to any atom, Å.")
    ] = 2.0,
    max_attempts: Annotated[
        int, typer.Option(help="Steps outwards along one direction before a new direction.")
    ] = 10,
    distance_increment: Annotated[
        float, typer.Option("--distance-increment-A", help="Length of each step outwards, Å.")
    ] = 0.5,
    n_radius_atoms: Annotated[
        int, typer.Option(help="Furthest atoms averaged into the particle's radius.")
    ] = 10,
    random_orientation: Annotated[
        bool, typer.Option("--random-orientation/--fixed-orientation", help="Rotate each molecule.")
    ] = True,
    max_directions: Annotated[
        int, typer.Option(help="Failed directions after which the surface counts as saturated.")
    ] = 200,
    vacuum: Annotated[float, typer.Option("--vacuum-A", help="Vacuum around it all, Å.")] = 10.0,
    seed: SeedOption = 0,
) -> None:
    """Place organic molecules around NANOPARTICLE, none closer than --min-distance-A."""
    from scalms.geometry.adsorbates import PlacementSettings
    from scalms.geometry.structure_files import adsorb_file

    settings = PlacementSettings(
        distance_from_radius_A=distance_from_radius,
        min_distance_A=min_distance,
        max_attempts=max_attempts,
        distance_increment_A=distance_increment,
        n_radius_atoms=n_radius_atoms,
        random_orientation=random_orientation,
        max_directions=max_directions,
        vacuum_A=vacuum,
        seed=seed,
    )
    done = adsorb_file(nanoparticle, molecule, count, settings, out)
    placement = done.placement
    if done.n_frames > 1:
        typer.echo(f"frame {done.frame} of {done.n_frames} of {nanoparticle}")
    typer.echo(f"particle radius {placement.radius_A:.2f} Å")
    for name, wanted in placement.requested.items():
        typer.echo(f"{name}: placed {placement.placed[name]} of {wanted}")
    if placement.saturated:
        typer.secho(
            "the surface is saturated: fewer molecules placed than asked (raise --max-attempts "
            "or --max-directions, or lower --min-distance-A)",
            fg=typer.colors.YELLOW,
        )
    typer.echo(f"wrote {done.target} ({len(placement.atoms)} atoms)")
