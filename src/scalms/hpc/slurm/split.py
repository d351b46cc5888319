"""How a scalms command becomes the tasks of a SLURM job array.

The command is parsed by scalms's own CLI (click, through typer), so a command that would not
run is refused before anything is written or submitted. Its arguments are then rewritten per
task, keeping the user's spelling of everything else:

- ``scalms hpc rattle ... --count C --out F``: task k runs ``--shard k/N`` and writes
  ``JOBDIR/tasks/k/<F name>``; rattle sends slot j to shard j % N (with ``--each-frame``
  frame j of INPUT, so task k labels frames k, k + N, ...).
- ``scalms static S1 S2 ... --out F``: the structure files are dealt out in order, in
  contiguous runs; task k writes ``JOBDIR/tasks/k/<F name>``.
- ``scalms dynamics run S1 S2 ... --working-dir W``: likewise, each task with its own working dir
  ``JOBDIR/tasks/k``; a task whose dir already holds a started run (a requeue after a wall-time
  kill) runs ``scalms dynamics resume`` instead.
- any other scalms command: one task, run as given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scalms.errors import ScalmsError

KINDS = ("rattle", "static", "dynamics", "command")


@dataclass(frozen=True)
class TaskSpec:
    """One array task: the scalms arguments it runs (without the program name)."""

    index: int
    argv: list[str]
    items: list[str] = field(default_factory=list)
    """Its share of the work: structure files, or the rattle shard ``k/N``."""
    resume_argv: list[str] | None = None
    """Run instead of ``argv`` when ``resume_marker`` exists in the task's folder."""
    resume_marker: str | None = None


@dataclass(frozen=True)
class JobPlan:
    """A scalms command split into array tasks, and what ``collect`` merges them into."""

    kind: str
    command: list[str]
    """The command as given, without the program name (``["static", "a.xyz", ...]``)."""
    tasks: list[TaskSpec]
    out: str | None = None
    """The command's own output: ``--out`` (rattle, static) or ``--working-dir`` (dynamics)."""
    count: int | None = None
    """rattle: the frames expected in ``out``."""
    items: list[str] = field(default_factory=list)
    """static, dynamics: every structure file, in the order given."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPlan:
        tasks = [TaskSpec(**task) for task in data["tasks"]]
        return cls(**{**data, "tasks": tasks})


@dataclass(frozen=True)
class _Piece:
    """A run of tokens of the command line: one option with its values, or one argument."""

    option: str | None  # the click parameter's name; None for a positional argument
    tokens: list[str]


def _resolve(args: list[str], root):
    """The click command that ``args`` names under ``root`` (the ``scalms`` click group, which
    the CLI passes in: the library does not import the CLI), its path and its args."""
    import click

    command = root
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group):
        if not rest or rest[0] not in command.commands:
            known = ", ".join(sorted(command.commands))
            where = " ".join(["scalms", *path])
            got = f"'{rest[0]}'" if rest else "nothing"
            raise ScalmsError(
                f"not a scalms command: {where} {got} (after `--` give a scalms command: "
                f"{where} {{{known}}} ...)"
            )
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


def _check_parses(command, path: list[str], rest: list[str]) -> dict[str, Any]:
    """Parse like the real command would (types and ranges included); one line if it fails."""
    import click

    try:
        with command.make_context(" ".join(["scalms", *path]), list(rest)) as ctx:
            return dict(ctx.params)
    except click.exceptions.Exit:
        raise ScalmsError(f"`scalms {' '.join(path)}` would only print its help") from None
    except click.ClickException as err:
        raise ScalmsError(f"scalms {' '.join(path)}: {err.format_message()}") from None


def _pieces(command, rest: list[str]) -> list[_Piece]:
    """Split ``rest`` into options (with their values) and positional arguments."""
    import click

    options: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in [*param.opts, *param.secondary_opts]:
                options[name] = param
    pieces, i = [], 0
    while i < len(rest):
        token = rest[i]
        if token == "--":
            pieces.extend(_Piece(None, [t]) for t in rest[i + 1 :])
            break
        name = token.partition("=")[0] if token.startswith("--") else token
        param = options.get(name)
        if param is None and token[:1] == "-" and token[:2] in options and "=" not in token:
            param = options[token[:2]]  # a short option with its value attached: -ofile.h5
            pieces.append(_Piece(param.name, [token]))
            i += 1
            continue
        if param is None:
            pieces.append(_Piece(None, [token]))
            i += 1
        elif param.is_flag or param.count or "=" in token:
            pieces.append(_Piece(param.name, [token]))
            i += 1
        else:
            pieces.append(_Piece(param.name, rest[i : i + 1 + param.nargs]))
            i += 1 + param.nargs
    return pieces


def _flatten(pieces: list[_Piece]) -> list[str]:
    return [token for piece in pieces for token in piece.tokens]


def _without(pieces: list[_Piece], *names: str | None) -> list[_Piece]:
    return [piece for piece in pieces if piece.option not in names]


def _deal(items: list[str], n_tasks: int) -> list[list[str]]:
    """``items`` in ``n_tasks`` contiguous runs whose sizes differ by at most one."""
    n = len(items)
    return [items[k * n // n_tasks : (k + 1) * n // n_tasks] for k in range(n_tasks)]


def _check_count(n_tasks: int, n_items: int, what: str) -> None:
    if n_tasks > n_items:
        raise ScalmsError(
            f"--array-tasks {n_tasks} is more than the {n_items} {what} to share out: "
            f"use at most {n_items}"
        )


def plan_job(args: list[str], n_tasks: int, job_dir: Path, commands) -> JobPlan:
    """Split the scalms command ``args`` (with or without a leading ``scalms``) into
    ``n_tasks`` array tasks writing under ``job_dir/tasks/<k>/``; ``commands`` is the ``scalms``
    click group the command is parsed with."""
    if n_tasks < 1:
        raise ScalmsError(f"--array-tasks must be 1 or more, not {n_tasks}")
    args = list(args)
    if args and Path(args[0]).name == "scalms":
        args = args[1:]
    if not args:
        raise ScalmsError("no command to submit: put the scalms command after `--`")
    command, path, rest = _resolve(args, commands)
    params = _check_parses(command, path, rest)
    pieces = _pieces(command, rest)
    task_dirs = [Path(job_dir).absolute() / "tasks" / str(k) for k in range(n_tasks)]
    name = " ".join(path)
    if name == "hpc rattle":
        return _plan_rattle(path, pieces, params, n_tasks, task_dirs)
    if name in ("static", "dynamics run"):
        return _plan_structures(name, path, pieces, params, n_tasks, task_dirs)
    if name.startswith("hpc ") and path[1] in ("submit", "status", "collect"):
        raise ScalmsError(f"`scalms {name}` talks to SLURM itself: run it on the login node")
    if n_tasks != 1:
        raise ScalmsError(
            f"`scalms {name}` is not split into tasks (rattle, static and dynamics run are): "
            f"submit it with --array-tasks 1"
        )
    return JobPlan("command", args, [TaskSpec(0, args)])


def _plan_rattle(path, pieces, params, n_tasks, task_dirs) -> JobPlan:
    if any(p.option == "shard" for p in pieces):
        raise ScalmsError("the command already has --shard: scalms hpc submit sets it per task")
    from scalms.hpc.rattle import resolve_count

    # --count may be left out (10, or with --each-frame every frame of INPUT): each task
    # resolves it the same way from the same INPUT, and collect expects that many frames.
    count = resolve_count(params["input"], params["count"], params["each_frame"])
    out = Path(params["out"])
    _check_count(n_tasks, count, "frames (--count)")
    if out.exists():
        raise ScalmsError(
            f"{out} already exists and the tasks would not continue it: choose another --out "
            f"(or finish it with the same command, unsplit)"
        )
    kept = _flatten(_without(pieces, "out"))
    tasks = [
        TaskSpec(
            k,
            [*path, *kept, "--shard", f"{k}/{n_tasks}", "--out", str(task_dirs[k] / out.name)],
            items=[f"{k}/{n_tasks}"],
        )
        for k in range(n_tasks)
    ]
    return JobPlan("rattle", [*path, *_flatten(pieces)], tasks, out=str(out), count=count)


def _plan_structures(name, path, pieces, params, n_tasks, task_dirs) -> JobPlan:
    structures = [p.tokens[0] for p in pieces if p.option is None]
    _check_count(n_tasks, len(structures), "structure files")
    if name == "static":
        out, out_option = Path(params["out"]), "out"
        if out.exists() and not params.get("overwrite"):
            raise ScalmsError(
                f"{out} exists; pass --overwrite to replace it, or choose another --out"
            )
    else:
        out, out_option = Path(params["working_dir"]), "working_dir"
        if (out / "dynamics.json").exists():
            # collect links the tasks' runs into this folder: it must not hold a run of its own.
            raise ScalmsError(
                f"{out} already holds an MD run; choose another --working-dir for the job"
            )
    # The structures go where they stood (after the subcommand), the rest as given.
    options = _flatten(_without(pieces, None, out_option, "overwrite"))
    tasks = []
    for k, share in enumerate(_deal(structures, n_tasks)):
        task_dir = task_dirs[k]
        if name == "static":
            # --overwrite: a failed task's partial file is replaced when it is resubmitted.
            argv = [*path, *share, *options, "--out", str(task_dir / out.name), "--overwrite"]
            tasks.append(TaskSpec(k, argv, items=share))
        else:
            argv = [*path, *share, *options, "--working-dir", str(task_dir)]
            timeout = [t for p in pieces if p.option == "timeout" for t in p.tokens]
            resume = ["dynamics", "resume", str(task_dir), *timeout]
            tasks.append(TaskSpec(k, argv, share, resume, "dynamics.json"))
    kind = "static" if name == "static" else "dynamics"
    return JobPlan(kind, [*path, *_flatten(pieces)], tasks, out=str(out), items=structures)
