"""``scalms learn``: active learning (MD, committee spread, labels where it matters, fine-tune)."""

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
    SmearingOption,
    SpinOption,
    ThreadsOption,
)
from scalms.cli.types import DEFAULT_CONFIG, POSITIVE, DeviceOption, ModelConfigOption

app = typer.Typer(
    no_args_is_help=True,
    help="Active learning: MD with a committee, DFT (or a teacher) on the frames where its "
    "members disagree, fine-tune, again.",
)
SELECTION = "Selection"
TRAINING = "Training"

FolderArgument = Annotated[Path, typer.Argument(help="The learning folder (--out of learn run).")]


class _Printer:
    """Progress lines of the children (MD, evaluation, labelling) as the loop's log."""

    def __init__(self, console):
        self.console = console

    def start(self, model: str) -> None:
        pass

    def event(self, model: str, event: dict) -> None:
        if event.get("event") == "status":
            self.console.print(f"  [dim]{model}: {event.get('message', '')}[/dim]")

    def finish(self, model: str, outcome) -> None:
        if not outcome.ok:
            self.console.print(f"  [red]{model} failed: {outcome.reason}[/red]")


@app.command()
@user_errors
def run(
    structures: Annotated[
        list[Path], typer.Argument(help="Structures to run MD on (any format ASE reads).")
    ],
    committee: Annotated[
        list[str],
        typer.Option(
            "--committee",
            help="A committee member (a MACE of model_config.yaml); repeat, at least twice.",
        ),
    ],
    labeller: Annotated[
        str,
        typer.Option(help="cp2k, vasp, espresso, or a model of model_config.yaml (a teacher)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The learning folder.")],
    rounds: Annotated[int, typer.Option(help="Rounds of MD, labels and training.", min=1)] = 2,
    md_steps: Annotated[int, typer.Option(help="MD steps per structure per round.", min=1)] = 200,
    temperature_K: Annotated[
        float, typer.Option("--temperature-K", help="MD temperature, K.", click_type=POSITIVE)
    ] = 600.0,
    time_step_fs: Annotated[
        float, typer.Option("--time-step-fs", help="MD time step, fs.", click_type=POSITIVE)
    ] = 2.0,
    save_interval: Annotated[
        int, typer.Option(help="MD steps between candidate frames.", min=1)
    ] = 10,
    select: Annotated[
        int,
        typer.Option(help="Frames labelled per round, at most.", min=1, rich_help_panel=SELECTION),
    ] = 20,
    spread_threshold: Annotated[
        float,
        typer.Option(
            help="A frame is a candidate when its largest per-atom force spread (eV/Å) is above.",
            min=0.0,
            rich_help_panel=SELECTION,
        ),
    ] = 0.1,
    min_descriptor_distance: Annotated[
        float,
        typer.Option(
            help="No two picks closer than this in descriptor space (first member's "
            "descriptors, per component in units of their spread over the candidates); 0: "
            "no thinning.",
            min=0.0,
            rich_help_panel=SELECTION,
        ),
    ] = 0.0,
    held_out: Annotated[
        Path | None,
        typer.Option(help="Labelled frames each round's committee is scored on (never trained)."),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            help="Labelled frames the committee was trained on: kept in every round's dataset.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Epochs per member per round.", min=1, rich_help_panel=TRAINING)
    ] = 20,
    batch_size: Annotated[
        int, typer.Option(help="Frames per batch.", min=1, rich_help_panel=TRAINING)
    ] = 4,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate. Default: 1e-3 (see `scalms train mace --continue-from`).",
            click_type=POSITIVE,
            rich_help_panel=TRAINING,
        ),
    ] = None,
    valid_fraction: Annotated[
        float,
        typer.Option(help="Share of each round's frames that validate.", rich_help_panel=TRAINING),
    ] = 0.1,
    net_force_threshold: Annotated[
        float,
        typer.Option(
            help="Labelled frames with a net force |ΣF| above this (eV/Å) are dropped.",
            click_type=POSITIVE,
            rich_help_panel=TRAINING,
        ),
    ] = 0.1,
    register_as: Annotated[
        str | None,
        typer.Option(
            help="Prefix of the final committee's names in model_config.yaml. Default: "
            "learn-<folder name>."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of MD, splits and training.")] = 0,
    stop_after: Annotated[
        str | None,
        typer.Option(
            help="Stop once this step (md, spread, select, label, package, train, evaluate, "
            "report) of the first unfinished round is done, e.g. select, then run `scalms learn "
            "step DIR label` as a SLURM job; the same command again continues.",
        ),
    ] = None,
    device: DeviceOption = "cpu",
    model_config: ModelConfigOption = DEFAULT_CONFIG,
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
) -> None:
    """Active learning on STRUCTURES: each round runs MD with the committee's first member,
    scores every saved frame by the committee's force spread, labels the frames above
    --spread-threshold (largest first, thinned in descriptor space, at most --select), adds
    them to the dataset and fine-tunes every member (its own seed).

    Resumable: the same command on the same --out continues where it stopped (a labelled frame
    is never computed again; MD and training resume from their checkpoints), and --rounds may
    grow. Ends with report.html and the final committee in model_config.yaml.
    """
    from dataclasses import asdict

    from scalms.cli.hpc.dft_options import dft_settings
    from scalms.hpc.dft import is_dft_code
    from scalms.learn.settings import LearnSettings

    dft = {}
    if is_dft_code(labeller):
        values = dft_settings(
            cutoff, functional, spin, scf_convergence, max_scf, smearing_K, threads, dft_command,
            basis_set, pseudopotential_dir, pseudopotential, out.absolute() / "dft_scratch",
        )  # fmt: skip
        dft = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(values).items()}
    settings = LearnSettings(
        structures=tuple(structures),
        committee=tuple(committee),
        labeller=labeller,
        rounds=rounds,
        md_steps=md_steps,
        temperature_K=temperature_K,
        time_step_fs=time_step_fs,
        save_interval=save_interval,
        select=select,
        spread_threshold_eV_per_A=spread_threshold,
        min_descriptor_distance=min_descriptor_distance,
        held_out=held_out,
        train=train,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        valid_fraction=valid_fraction,
        net_force_threshold_eV_per_A=net_force_threshold,
        seed=seed,
        device=device,
        model_config=model_config,
        register_as=register_as,
        dft=dft,
    )
    _run(lambda log, reporter: _learn(settings, out, log, reporter, stop_after))


def _learn(settings, out, log, reporter, stop_after):
    from scalms.learn.loop import run_learning

    return run_learning(settings, out, log=log, reporter=reporter, stop_after=stop_after)


def _run(call) -> None:
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c

    terminate_like_ctrl_c()
    console = make_console()
    outcome = call(console.print, _Printer(console))
    _print_outcome(console, outcome)


def _print_outcome(console, outcome) -> None:
    from rich.table import Table

    table = Table(title=f"active learning: {outcome.folder}")
    for column in ("round", "committee", "candidates", "picked", "labelled", "train/valid",
                   "held-out F MAE meV/Å", "spread before → after eV/Å"):  # fmt: skip
        table.add_column(column)
    for r in outcome.records:
        mae = f"{1000 * r.held_out.committee_force_mae_eV_per_A:.1f}" if r.held_out else "-"
        spread = (
            f"{r.mean_spread_before:.3f} → {r.mean_spread_after:.3f}"
            if r.spread_after_eV_per_A
            else "-"
        )
        data = f"{r.dataset.get('train', '-')}/{r.dataset.get('valid', '-')}" if r.dataset else "-"
        table.add_row(
            str(r.round), ", ".join(r.committee), str(r.n_candidates or "-"),
            str(len(r.selected) if r.round else "-"), str(r.labelled or "-"), data, mae, spread,
        )  # fmt: skip
    console.print(table)
    if outcome.stopped:
        console.print(outcome.stopped)
    for name in outcome.registered:
        console.print(f"registered: {name}")
    if outcome.report:
        console.print(f"report: {outcome.report}")


@app.command()
@user_errors
def step(
    folder: FolderArgument,
    name: Annotated[
        str,
        typer.Argument(
            help="md, spread, select, label, package, train, evaluate or report: run this step "
            "of the first unfinished round (e.g. as a SLURM job: scalms hpc submit -- learn "
            "step DIR label)."
        ),
    ],
    device: Annotated[
        str | None,
        typer.Option(help="Device for this step (e.g. cuda on a GPU node). Default: the loop's."),
    ] = None,
) -> None:
    """Run one step of a learning loop, so that each can be its own (SLURM) job."""
    from scalms.learn.loop import run_step

    _run(lambda log, reporter: run_step(folder, name, device=device, log=log, reporter=reporter))


@app.command()
@user_errors
def status(folder: FolderArgument) -> None:
    """Where a learning loop stands: each round's steps done and to do, and its numbers."""
    from rich.table import Table

    from scalms.cli._console import console as make_console
    from scalms.learn.loop import status as loop_status

    console = make_console()
    settings, rounds = loop_status(folder)
    table = Table(title=f"{folder}: {settings.rounds} round(s), labeller {settings.labeller}")
    for column in ("round", "done", "to do", "picked", "labelled", "held-out F MAE meV/Å"):
        table.add_column(column)
    for r in rounds:
        record = r.record
        mae = (
            f"{1000 * record.held_out.committee_force_mae_eV_per_A:.1f}"
            if record and record.held_out
            else "-"
        )
        table.add_row(
            str(r.round), ", ".join(r.done) or "-", ", ".join(r.todo) or "-",
            str(len(record.selected)) if record and r.round else "-",
            str(record.labelled) if record and r.round else "-", mae,
        )  # fmt: skip
    console.print(table)
    stopped = next((r.record.stopped for r in rounds if r.record and r.record.stopped), "")
    if stopped:
        console.print(stopped)
    elif all(not r.todo for r in rounds) and len(rounds) == settings.rounds + 1:
        console.print("complete")
    else:
        console.print(f"continue with: scalms learn run ... --out {folder} (the same options)")
