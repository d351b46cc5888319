"""The active-learning loop: rounds of steps, resumable at every step; its status.

Round 0 scores the starting committee on the held-out set. Each later round runs the steps of
:data:`scalms.learn.state.STEPS` (functions of :mod:`scalms.learn.steps`), marking each done in
the round's ``round.json`` once its output is whole. ``run_learning`` on a folder that holds a
loop continues it: finished steps are skipped, a step that was killed continues where its own
files say (MD checkpoints, labelled frames, training checkpoints). ``run_step`` runs one step of
the first unfinished round, so that each step can be its own SLURM job
(``scalms hpc submit -- learn step DIR label``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from scalms.analysis.learning import RoundRecord
from scalms.files import WorkDirLock
from scalms.learn import steps
from scalms.learn.settings import LearnError, LearnSettings
from scalms.learn.state import STEPS, LearnDir, MemberModel, steps_of
from scalms.workers.fanout import Reporter

COMMAND = "scalms learn"


@dataclass
class LearnOutcome:
    """Where a loop stands after a command: rounds finished, why it stopped, what was
    registered in model_config.yaml."""

    folder: Path
    records: list[RoundRecord]
    finished_rounds: int
    stopped: str = ""
    registered: list[str] = field(default_factory=list)
    report: Path | None = None


def _check_same_loop(folder: LearnDir, settings: LearnSettings) -> LearnSettings:
    """The settings of a folder a rerun continues: the same loop; rounds and device as asked
    now, and stored, so that a later `learn step` or `learn status` sees them."""
    from dataclasses import replace

    stored = folder.read_settings()
    changed = stored.changes(settings)
    if changed:
        raise LearnError(
            f"{folder.root} holds a learning loop with other settings ({', '.join(changed)}); "
            "rerun with the same ones (only --rounds and --device may change), or choose "
            "another --out"
        )
    current = replace(stored, rounds=settings.rounds, device=settings.device)
    if current != stored:
        folder.write_settings(current)
    return current


def _run_round(
    ctx: steps.Context,
    index: int,
    previous: list[MemberModel],
    only: str | None = None,
    stop_after: str | None = None,
) -> tuple[RoundRecord, list[MemberModel], bool]:
    """Run the round's steps not done yet (only ``only`` when given; none after ``stop_after``);
    returns its record, its committee and whether the round is complete."""
    folder = ctx.folder
    record, done, members = folder.load_round(index)
    if record is None:
        record = RoundRecord(round=index, committee=[m.name for m in previous])
        members = list(previous) if index == 0 else []
    rd = folder.round(index)
    if only is not None and only in done:
        following = [s for s in steps_of(index) if s not in done]
        raise LearnError(
            f"round {index}: step '{only}' is done already; the next one is '{following[0]}'"
        )
    for step in steps_of(index):
        if step in done:
            continue
        if only is not None and step != only:
            raise LearnError(
                f"round {index}: step '{step}' is not done yet, so '{only}' cannot run: run "
                f"`scalms learn step {folder.root} {step}` first"
            )
        if record.stopped:
            break
        started = time.perf_counter()
        if step == "md":
            steps.run_md(ctx, rd, record, previous)
        elif step == "spread":
            steps.run_spread(ctx, rd, record, previous)
        elif step == "select":
            steps.run_select(ctx, rd, record, previous)
        elif step == "label":
            steps.run_label(ctx, rd, record, previous)
        elif step == "package":
            steps.run_package(ctx, rd, record, previous)
        elif step == "train":
            members = steps.run_train(ctx, rd, record, previous)
            record.committee = [m.name for m in members]
        elif step == "evaluate":
            steps.run_evaluate(ctx, rd, record, members)
        elif step == "report":
            steps.run_report(ctx, rd, record, previous)
        record.wall_s[step] = round(time.perf_counter() - started, 1)
        done.append(step)
        folder.save_round(record, done, members)
        if only is not None or step == stop_after:
            break
    complete = all(s in done for s in steps_of(index))
    return record, members, complete


def run_learning(
    settings: LearnSettings,
    out: Path,
    *,
    log=print,
    reporter: Reporter | None = None,
    only_step: str | None = None,
    stop_after: str | None = None,
) -> LearnOutcome:
    """Run (or continue) the loop of ``settings`` in ``out`` until ``settings.rounds`` rounds
    are done or a round selects nothing; then draw the report and register the final committee
    in model_config.yaml. With ``only_step``, run that step of the first unfinished round; with
    ``stop_after``, stop once that step of the first unfinished round is done (to run the next
    one elsewhere, e.g. the labelling as a SLURM job)."""
    for step in (only_step, stop_after):
        if step is not None and step not in STEPS:
            raise LearnError(f"unknown step '{step}'; the steps are {', '.join(STEPS)}")
    folder = LearnDir(out)
    with WorkDirLock(folder.root, COMMAND):
        if folder.exists():
            settings = _check_same_loop(folder, settings.resolved())
            log(f"continuing the learning loop in {folder.root}")
        else:
            settings = settings.resolved()
        ctx = steps.Context(folder, settings, log, reporter)
        if not folder.exists():
            steps.check_trainable(steps.starting_members(settings))
            steps.check_labeller(ctx)
            folder.write_settings(settings)
        return _rounds(ctx, only_step, stop_after)


def _rounds(ctx: steps.Context, only_step: str | None, stop_after: str | None) -> LearnOutcome:
    folder, settings = ctx.folder, ctx.settings
    members = steps.starting_members(settings)
    records: list[RoundRecord] = []
    stopped = ""
    for index in range(settings.rounds + 1):
        record, done, round_members = folder.load_round(index)
        if record is not None and all(s in done for s in steps_of(index)):
            records.append(record)
            members = round_members or members
            if record.stopped:
                stopped = record.stopped
                break
            continue
        if only_step is not None and only_step not in steps_of(index):
            raise LearnError(
                f"round {index} has no step '{only_step}' (round 0 only evaluates and reports)"
            )
        record, new_members, complete = _run_round(ctx, index, members, only_step, stop_after)
        records.append(record)
        if record.stopped:
            stopped = record.stopped
            ctx.log(record.stopped)
            break
        if not complete:
            return _outcome(ctx, records, stopped, final=False)
        members = new_members or members
        if only_step is not None or (stop_after is not None and stop_after in steps_of(index)):
            return _outcome(ctx, records, stopped, final=False)
    if only_step is not None:
        raise LearnError(
            f"{folder.root}: the loop has no step left to run ("
            + (f"it stopped: {stopped}" if stopped else f"all {settings.rounds} rounds are done")
            + "); raise --rounds with `scalms learn run` to go on"
        )
    return _outcome(ctx, records, stopped, final=True, members=members)


def _outcome(
    ctx: steps.Context,
    records: list[RoundRecord],
    stopped: str,
    *,
    final: bool,
    members: list[MemberModel] | None = None,
) -> LearnOutcome:
    from scalms.plots.learn import learn_report

    finished = sum(
        1 for r in records if all(s in ctx.folder.load_round(r.round)[1] for s in steps_of(r.round))
    )
    registered = _register(ctx, members) if final and members else []
    report = learn_report(
        records, ctx.settings.to_dict(), registered or _registered(ctx), ctx.folder.root
    )
    return LearnOutcome(ctx.folder.root, records, finished, stopped, registered, report)


def final_names(settings: LearnSettings, folder: LearnDir, members: list[MemberModel]) -> list[str]:
    """``<prefix>-<starting member>-r<round>``: the round in the name, so that a loop taken
    further registers its new committee beside the old one, never over it."""
    prefix = settings.register_as or f"learn-{folder.root.name}"
    return [f"{prefix}-{m.name}" for m in members]


def _registered(ctx: steps.Context) -> list[str]:
    from scalms.config import load_config

    config = load_config(ctx.settings.model_config)
    prefix = ctx.settings.register_as or f"learn-{ctx.folder.root.name}"
    return [name for name in config.entries if name.startswith(prefix + "-")]


def _register(ctx: steps.Context, members: list[MemberModel]) -> list[str]:
    """The final committee in model_config.yaml (once: a rerun finds them there). A loop that
    trained nothing (stopped in round 1) registers nothing: the committee is the one given. A
    name already taken by another model is refused in one line."""
    from scalms.config import load_config
    from scalms.models import FAMILIES
    from scalms.training.register import register_model

    if all(m.name == m.base for m in members):
        return []
    config = load_config(ctx.settings.model_config)
    names = []
    for name, member in zip(final_names(ctx.settings, ctx.folder, members), members, strict=True):
        entry = config.entries.get(name)
        if entry is None:
            register_model(
                ctx.settings.model_config,
                name,
                FAMILIES[member.family].display,
                Path(member.model_path),
                member.options,
            )
            ctx.log(f"registered {name} ({member.model_path}) in {ctx.settings.model_config}")
        elif (
            entry.model_path is None
            or entry.model_path.resolve() != Path(member.model_path).resolve()
        ):
            raise LearnError(
                f"{ctx.settings.model_config} already has a model '{name}' that is not this "
                f"loop's {member.name}; rename or remove it, then run the same command again "
                "(everything else is done)"
            )
        names.append(name)
    return names


def run_step(
    folder_path: Path,
    step: str,
    *,
    device: str | None = None,
    log=print,
    reporter: Reporter | None = None,
):
    """Run one step of the first unfinished round of the loop in ``folder_path`` (on
    ``device`` when given: a training step sent to a GPU node)."""
    from dataclasses import replace

    folder = LearnDir(folder_path)
    settings = folder.read_settings()
    if device is not None:
        settings = replace(settings, device=device)
    return run_learning(settings, folder.root, log=log, reporter=reporter, only_step=step)


@dataclass(frozen=True)
class RoundStatus:
    round: int
    done: list[str]
    todo: list[str]
    record: RoundRecord | None


def status(folder_path: Path) -> tuple[LearnSettings, list[RoundStatus]]:
    """Each round's steps done and to do, read from the folder (no lock: read only)."""
    folder = LearnDir(folder_path)
    settings = folder.read_settings()
    rounds = []
    for index in range(settings.rounds + 1):
        record, done, _ = folder.load_round(index)
        todo = [s for s in steps_of(index) if s not in done]
        rounds.append(RoundStatus(index, done, todo, record))
        if record is not None and record.stopped:
            break
    return settings, rounds
