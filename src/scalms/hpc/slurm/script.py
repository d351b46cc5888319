"""The sbatch script of a job: a template from ``HPC/``, its ``#SBATCH`` lines set, its tasks.

A template is a plain sbatch script a user can read, run and edit: its ``#SBATCH`` lines are the
defaults (DelftBlue's partitions), and one placeholder, ``{{tasks}}``, marks where scalms writes
the array's tasks. The options of ``scalms hpc submit`` replace the value of the matching
``#SBATCH`` line, or add one after the last. Plain text substitution, no template engine: a
template is bash, and bash's own ``$`` and ``${...}`` must pass through untouched.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scalms.errors import ScalmsError
from scalms.hpc.slurm.split import JobPlan, TaskSpec

TEMPLATES = {"cpu-dft": "cpu_dft.sbatch", "gpu": "gpu_node.sbatch"}
"""The shipped templates, by the name ``--template`` takes."""

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

SHORT_OPTIONS = {
    "-A": "account",
    "-a": "array",
    "-c": "cpus-per-task",
    "-e": "error",
    "-G": "gpus",
    "-J": "job-name",
    "-N": "nodes",
    "-n": "ntasks",
    "-o": "output",
    "-p": "partition",
    "-q": "qos",
    "-t": "time",
}
EXCLUSIVE = {
    "mem": ("mem-per-cpu", "mem-per-gpu"),
    "mem-per-cpu": ("mem", "mem-per-gpu"),
    "mem-per-gpu": ("mem", "mem-per-cpu"),
    # The log is one file (stdout and stderr), so status and collect can show its last lines.
    "output": ("error",),
}
SBATCH_LINE = re.compile(r"^#SBATCH\s+(--?[A-Za-z][\w-]*)(?:[=\s]\s*(.*?))?\s*$")
TIME = re.compile(r"^(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|UNLIMITED|INFINITE)$")
MEMORY = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)

EXIT_CODE = "exit_code"
"""Each task writes its exit status here when it ends (status and collect need no accounting)."""
SLURM_ID = "slurm_id"
"""Each task writes ``<array job id>_<task>`` here when it starts."""


def template_folders() -> list[Path]:
    """Where the shipped templates are: ``HPC/`` at the top of a source checkout, or a copy
    inside the installed package."""
    here = Path(__file__).resolve().parent
    return [here.parents[3] / "HPC", here / "HPC"]


def template_path(template: str) -> Path:
    """The file of a shipped template's name (``cpu-dft``, ``gpu``) or of a path."""
    if template in TEMPLATES:
        for folder in template_folders():
            path = folder / TEMPLATES[template]
            if path.is_file():
                return path
        raise ScalmsError(
            f"the {template} template ({TEMPLATES[template]}) is not installed here: pass "
            f"--template with the path of an sbatch file"
        )
    path = Path(template)
    if not path.is_file():
        names = ", ".join(TEMPLATES)
        raise ScalmsError(
            f"unknown template '{template}': use {names} or the path of an sbatch file"
        )
    return path


@dataclass(frozen=True)
class SbatchOptions:
    """What ``scalms hpc submit`` may set; None leaves the template's line as it is."""

    partition: str | None = None
    time: str | None = None
    nodes: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    gpus: int | None = None
    """GPUs per task; 0 drops the template's GPU request."""
    account: str | None = None
    qos: str | None = None
    job_name: str | None = None
    requeue: bool = False

    def check(self) -> None:
        """One line for a value sbatch would refuse, before anything is written."""
        if self.time is not None and not TIME.match(self.time):
            raise ScalmsError(
                f"--time '{self.time}' is not a SLURM time: MINUTES, HH:MM:SS or D-HH:MM:SS"
            )
        if self.mem is not None and not MEMORY.match(self.mem):
            raise ScalmsError(f"--mem '{self.mem}' is not a SLURM size such as 4000M or 16G")
        for name in ("nodes", "cpus_per_task"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ScalmsError(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
        if self.gpus is not None and self.gpus < 0:
            raise ScalmsError(f"--gpus must be 0 or more, not {self.gpus}")

    def lines(self) -> dict[str, str | None]:
        """``#SBATCH`` option -> value ('' for a flag, None to drop the line)."""
        values: dict[str, str | None] = {}
        for name in ("partition", "time", "nodes", "cpus_per_task", "mem", "account", "qos"):
            value = getattr(self, name)
            if value is not None:
                values[name.replace("_", "-")] = str(value)
        if self.job_name is not None:
            values["job-name"] = self.job_name
        if self.gpus is not None:
            values["gpus-per-task"] = str(self.gpus) if self.gpus else None
            if not self.gpus:
                values.update({"gpus": None, "gres": None})
        if self.requeue:
            values["requeue"] = ""
        return values


def set_sbatch_lines(text: str, options: dict[str, str | None]) -> str:
    """``text`` with each option's ``#SBATCH`` line set to its value: replaced in place where
    the template has it, otherwise added after the last ``#SBATCH`` line; None drops it."""
    lines = text.splitlines()
    dropped = {other for name in options for other in EXCLUSIVE.get(name, ())}
    dropped |= {name for name, value in options.items() if value is None}
    written, out = set(), []
    for line in lines:
        match = SBATCH_LINE.match(line)
        if match:
            flag = match.group(1)
            name = SHORT_OPTIONS.get(flag, flag.lstrip("-"))
            if options.get(name, "") is None or (name in dropped and name not in options):
                continue  # dropped, or excluded by an option set (--mem against --mem-per-cpu)
            if name in options:
                if name in written:
                    continue
                line = _sbatch_line(name, options[name])
                written.add(name)
        out.append(line)
    missing = [name for name, value in options.items() if value is not None and name not in written]
    last = max((i for i, line in enumerate(out) if SBATCH_LINE.match(line)), default=0)
    out[last + 1 : last + 1] = [_sbatch_line(name, options[name]) for name in missing]
    return "\n".join(out) + "\n"


def _sbatch_line(name: str, value: str | None) -> str:
    return f"#SBATCH --{name}" + (f"={value}" if value else "")


def sbatch_lines(text: str) -> dict[str, str]:
    """The ``#SBATCH`` options of a script, long names -> value ('' for flags)."""
    found = {}
    for line in text.splitlines():
        match = SBATCH_LINE.match(line)
        if match:
            flag = match.group(1)
            found[SHORT_OPTIONS.get(flag, flag.lstrip("-"))] = match.group(2) or ""
    return found


def _run_line(argv: list[str]) -> str:
    return '"$SCALMS" ' + shlex.join(argv)


def _branch(task: TaskSpec) -> list[str]:
    share = f"  # {', '.join(task.items)}" if task.items else ""
    lines = [f"  {task.index}){share}"]
    if task.resume_argv and task.resume_marker:
        lines += [
            f'    if [ -f "$TASK_DIR/{task.resume_marker}" ]; then  # started before: continue',
            f"      {_run_line(task.resume_argv)}",
            "    else",
            f"      {_run_line(task.argv)}",
            "    fi",
        ]
    else:
        lines.append(f"    {_run_line(task.argv)}")
    return [*lines, "    ;;"]


def tasks_block(plan: JobPlan, job_dir: Path, cwd: Path, scalms: str) -> str:
    """The part of the script scalms writes: one ``case`` branch per array task with the exact
    command it runs, around it the lines that record its SLURM id and exit code."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        f"# ---- written by `scalms hpc submit` ({when}): {len(plan.tasks)} array task(s) of",
        f"#   scalms {shlex.join(plan.command)}",
        "# Task K runs in JOB_DIR/tasks/K and leaves its exit status in tasks/K/exit_code, so",
        "# `scalms hpc status` and `scalms hpc collect` tell success from failure without",
        "# accounting. Resubmit tasks with `sbatch --array=K,... job.sbatch` (or collect",
        "# --resubmit-failed): a task continues the work its folder holds.",
        f"SCALMS={shlex.quote(scalms)}",
        f"JOB_DIR={shlex.quote(str(job_dir))}",
        'TASK="${SLURM_ARRAY_TASK_ID:-0}"',
        'TASK_DIR="$JOB_DIR/tasks/$TASK"',
        'mkdir -p "$TASK_DIR"',
        f'rm -f "$TASK_DIR/{EXIT_CODE}"',
        f'echo "${{SLURM_ARRAY_JOB_ID:-${{SLURM_JOB_ID:-none}}}}_$TASK" > "$TASK_DIR/{SLURM_ID}"',
        "# The command's relative paths are the submitter's:",
        f'cd {shlex.quote(str(cwd))} || {{ echo 1 > "$TASK_DIR/{EXIT_CODE}"; exit 1; }}',
        "",
        'case "$TASK" in',
    ]
    for task in plan.tasks:
        lines += _branch(task)
    lines += [
        "  *)",
        '    echo "no array task $TASK in this script" >&2',
        "    false",
        "    ;;",
        "esac",
        "code=$?",
        f'echo "$code" > "$TASK_DIR/{EXIT_CODE}.tmp" && mv "$TASK_DIR/{EXIT_CODE}.tmp" '
        f'"$TASK_DIR/{EXIT_CODE}"',
        'exit "$code"',
    ]
    return "\n".join(lines)


def render(
    template: str,
    plan: JobPlan,
    options: SbatchOptions,
    job_dir: Path,
    cwd: Path,
    scalms: str,
) -> str:
    """The job's sbatch script: ``template`` (a shipped name or a path) with its ``#SBATCH``
    lines set from ``options``, the array and the log path, and ``{{tasks}}`` filled."""
    path = template_path(template)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScalmsError(f"cannot read the template {path}: {err}") from None
    names = PLACEHOLDER.findall(text)
    if names != ["tasks"]:
        unknown = sorted(set(names) - {"tasks"})
        problem = f"unknown placeholders {unknown}" if unknown else "needs one {{tasks}} line"
        raise ScalmsError(f"template {path}: {problem} (scalms fills exactly one, {{{{tasks}}}})")
    if not text.startswith("#!"):
        raise ScalmsError(f"template {path} is not a script: its first line must be #!/bin/bash")
    values = options.lines()
    if "job-name" not in values and "job-name" not in sbatch_lines(text):
        values["job-name"] = f"scalms-{plan.kind if plan.kind != 'command' else 'job'}"
    values["output"] = str(job_dir / "logs" / "%A_%a.out")
    values["array"] = f"0-{len(plan.tasks) - 1}"
    text = set_sbatch_lines(text, values)
    block = tasks_block(plan, job_dir, cwd, scalms)
    return PLACEHOLDER.sub(lambda _: block, text)
