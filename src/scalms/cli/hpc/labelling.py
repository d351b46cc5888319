"""``scalms hpc rattle`` (rattled reference frames) and ``scalms hpc e0`` (isolated atoms)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors
from scalms.cli.hpc.dft_options import (
    BasisSetOption,
    CutoffOption,
    DftCommandOption,
    FunctionalOption,
    MaxScfOption,
    PseudopotentialDirOption,
    PseudopotentialOption,
    ScfConvergenceOption,
    ScratchOption,
    SmearingOption,
    SpinOption,
    ThreadsOption,
    dft_settings,
)
from scalms.cli.types import (
    DEFAULT_CONFIG,
    POSITIVE,
    DeviceOption,
    ModelConfigOption,
    TimeoutOption,
)

CalculatorOption = Annotated[
    str,
    typer.Option(
        "--calculator",
        help="cp2k, vasp or espresso (DFT, run here), or a model of the config (run in its "
        "own environment).",
    ),
]
ALLOY, MOLECULES = "Alloy", "Molecules (only the particle is pre-converged and rattled)"


class ConsoleLog:
    """A line per frame above a progress bar (the thesis's log, to tune the rattle)."""

    def __init__(self, console, title: str):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self._bar = Progress(
            TextColumn(title, style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = None

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def progress(self, done: int, total: int) -> None:
        if self._task is None:  # the bar appears with the work, not before a refusal
            self._bar.start()
            self._task = self._bar.add_task("", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


@user_errors
def rattle(
    input: Annotated[
        Path,
        typer.Argument(
            help="Structure to rattle (any ASE format or a scalms H5MD trajectory: a random "
            "frame per slot; with --each-frame frame j for slot j)."
        ),
    ],
    calculator: CalculatorOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Reference file (extended XYZ): frames are appended as they finish."
        ),
    ],
    stddev_A: Annotated[
        float,
        typer.Option("--stddev-A", help="Standard deviation of each displacement, Å.", min=0),
    ] = 0.1,
    count: Annotated[
        int | None,
        typer.Option(
            help="Frames to make in all (all shards). Default: 10; with --each-frame every "
            "frame of INPUT.",
            min=1,
            show_default=False,
        ),
    ] = None,
    each_frame: Annotated[
        bool,
        typer.Option(
            "--each-frame",
            help="Label the frames of INPUT as given, in order: slot j is frame j (no random "
            "pick; with --stddev-A 0 not displaced either). Their own info is kept.",
        ),
    ] = False,
    pre_converge: Annotated[
        bool,
        typer.Option(
            "--pre-converge/--no-pre-converge",
            help="BFGS to max |F| < 0.5 eV/Å (20 steps at most) before rattling; always on "
            "with --alloy.",
        ),
    ] = False,
    alloy: Annotated[
        str | None,
        typer.Option(
            help="Element replacing host atoms at random, per frame.", rich_help_panel=ALLOY
        ),
    ] = None,
    fraction: Annotated[
        float | None,
        typer.Option(help="Fraction of the host atoms replaced.", rich_help_panel=ALLOY),
    ] = None,
    count_alloy: Annotated[
        int | None,
        typer.Option("--count-alloy", help="Host atoms replaced.", rich_help_panel=ALLOY),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Element replaced. Default: the most common one.", rich_help_panel=ALLOY),
    ] = None,
    molecule: Annotated[
        list[str] | None,
        typer.Option(
            help="propane, another g2 name or a structure file, placed around the particle; "
            "repeat.",
            rich_help_panel=MOLECULES,
        ),
    ] = None,
    n_molecules: Annotated[
        int,
        typer.Option(
            help="Molecules in all, shared over the kinds.", min=0, rich_help_panel=MOLECULES
        ),
    ] = 0,
    distance_from_radius: Annotated[
        float,
        typer.Option(
            "--distance-from-radius-A",
            help="First try beyond the radius, Å.",
            rich_help_panel=MOLECULES,
        ),
    ] = 2.0,
    min_distance: Annotated[
        float,
        typer.Option(
            "--min-distance-A", help="Closest approach to any atom, Å.", rich_help_panel=MOLECULES
        ),
    ] = 2.0,
    distance_increment: Annotated[
        float,
        typer.Option(
            "--distance-increment-A",
            help="Step outwards after a clash, Å.",
            rich_help_panel=MOLECULES,
        ),
    ] = 0.5,
    placement_attempts: Annotated[
        int,
        typer.Option(help="Steps outwards along one direction.", rich_help_panel=MOLECULES),
    ] = 10,
    max_directions: Annotated[
        int,
        typer.Option(
            help="Failed directions before the surface counts as full.", rich_help_panel=MOLECULES
        ),
    ] = 200,
    random_orientation: Annotated[
        bool,
        typer.Option(
            "--random-orientation/--fixed-orientation",
            help="Rotate each molecule.",
            rich_help_panel=MOLECULES,
        ),
    ] = True,
    seed: Annotated[
        int,
        typer.Option(help="Seed of every frame's draws (frame, alloy sites, rattle, molecules)."),
    ] = 0,
    shard: Annotated[
        str | None,
        typer.Option(help="K/N: compute only the frames j with j % N == K (K from 0)."),
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(help="Tries per frame when the SCF does not converge; then stop.", min=1),
    ] = 3,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    device: DeviceOption = "auto",
    timeout: TimeoutOption = None,
    cutoff: CutoffOption = None,
    functional: FunctionalOption = "PBE",
    spin: SpinOption = None,
    scf_convergence: ScfConvergenceOption = None,
    max_scf: MaxScfOption = 100,
    smearing_K: SmearingOption = None,
    threads: ThreadsOption = None,
    dft_command: DftCommandOption = None,
    basis_set: BasisSetOption = None,
    pseudopotential_dir: PseudopotentialDirOption = None,
    pseudopotential: PseudopotentialOption = None,
    scratch: ScratchOption = None,
) -> None:
    """Rattle INPUT --count times and label each frame with --calculator, appending to --out.

    Frame j is drawn from (--seed, j) alone, so shards and reruns make the same frames. With
    --each-frame (and --stddev-A 0) the frames of INPUT are labelled as they are, in order. A
    killed job keeps its frames; the same command continues it and recomputes none. A frame
    whose SCF does not converge is refused and retried with a new rattle. Exits 1 when the
    job stopped short.
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.geometry.adsorbates import PlacementSettings
    from scalms.hpc.labelling import run_rattle
    from scalms.hpc.rattle import RattleSpec, parse_shard, resolve_count

    terminate_like_ctrl_c()
    spec = RattleSpec(
        input=input,
        stddev_A=stddev_A,
        count=resolve_count(input, count, each_frame),
        alloy=alloy,
        alloy_fraction=fraction,
        alloy_count=count_alloy,
        alloy_host=host,
        pre_converge=pre_converge,
        molecules=tuple(molecule or ()),
        n_molecules=n_molecules,
        placement=PlacementSettings(
            distance_from_radius_A=distance_from_radius,
            min_distance_A=min_distance,
            max_attempts=placement_attempts,
            distance_increment_A=distance_increment,
            max_directions=max_directions,
            random_orientation=random_orientation,
        ),
        seed=seed,
        shard=parse_shard(shard) if shard else (0, 1),
        max_attempts=max_attempts,
        each_frame=each_frame,
    )
    settings = dft_settings(
        cutoff, functional, spin, scf_convergence, max_scf, smearing_K, threads, dft_command,
        basis_set, pseudopotential_dir, pseudopotential, scratch,
    )  # fmt: skip
    console = make_console()
    log = ConsoleLog(console, out.name)
    try:
        outcome = run_rattle(
            spec,
            calculator,
            settings,
            out,
            model_config=model_config,
            device=device,
            timeout_s=timeout,
            log=log,
        )
    finally:
        log.close()
    kept = outcome.done - outcome.computed
    refused = f", {outcome.refused} tries refused" if outcome.refused else ""
    console.print(
        f"{out}: {outcome.done}/{outcome.total} frames ({outcome.computed} computed now, "
        f"{kept} kept from before{refused})",
        markup=False,
        highlight=False,
    )
    if outcome.stopped:
        console.print(f"[red]stopped[/]: {outcome.stopped}", highlight=False)
        raise typer.Exit(1)


@user_errors
def e0(
    element: Annotated[
        list[str], typer.Option("--element", "-e", help="Element symbol; repeat for several.")
    ],
    calculator: CalculatorOption,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="E0 JSON for MACE (--E0s), atomic number -> eV."),
    ] = Path("E0.json"),
    frames: Annotated[
        Path | None,
        typer.Option(help="IsolatedAtom frames (extended XYZ). Default: --out with .xyz."),
    ] = None,
    box_A: Annotated[
        float, typer.Option("--box-A", help="Side of the cubic vacuum box, Å.", click_type=POSITIVE)
    ] = 15.0,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    device: DeviceOption = "auto",
    timeout: TimeoutOption = None,
    cutoff: CutoffOption = None,
    functional: FunctionalOption = "PBE",
    scf_convergence: ScfConvergenceOption = None,
    max_scf: MaxScfOption = 100,
    smearing_K: SmearingOption = None,
    threads: ThreadsOption = None,
    dft_command: DftCommandOption = None,
    basis_set: BasisSetOption = None,
    pseudopotential_dir: PseudopotentialDirOption = None,
    pseudopotential: PseudopotentialOption = None,
    scratch: ScratchOption = None,
) -> None:
    """Energy of each isolated --element (spin-polarised DFT, or a model) in a large box.

    Writes the E0 JSON MACE reads and IsolatedAtom frames; elements already in the files
    (same calculator and settings) are kept, not recomputed.
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.hpc.e0 import run_e0

    terminate_like_ctrl_c()
    settings = dft_settings(
        cutoff, functional, True, scf_convergence, max_scf, smearing_K, threads, dft_command,
        basis_set, pseudopotential_dir, pseudopotential, scratch,
    )  # fmt: skip
    console = make_console()
    log = ConsoleLog(console, out.name)
    result = run_e0(
        element,
        calculator,
        settings,
        out,
        frames_out=frames,
        box_A=box_A,
        model_config=model_config,
        device=device,
        timeout_s=timeout,
        log=log,
    )
    console.print(f"wrote {result.out} and {result.frames_out}", markup=False, highlight=False)
