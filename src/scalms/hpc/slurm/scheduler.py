"""SLURM's own commands (sbatch, squeue, scontrol, sacct), started with argument lists.

Everything SLURM says comes through here, parsed into a few plain values, so the rest of the
package does not depend on SLURM's output formats. The commands find the cluster the usual way
(``SLURM_CONF`` or the site's configuration).
"""

from __future__ import annotations

import functools
import getpass
import subprocess
from dataclasses import dataclass

from scalms.errors import ScalmsError

TIMEOUT_S = 120.0
"""A busy controller can take a while to answer; longer than this, it is not answering."""

PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED"}
PENDING |= {"RESV_DEL_HOLD", "SPECIAL_EXIT", "RESIZING"}
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


class SchedulerError(ScalmsError):
    """A SLURM command is missing or refused what scalms asked."""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise SchedulerError(
            f"{args[0]} not found: run this on a machine with SLURM's commands (a cluster's "
            f"login node), or use --dry-run to only write the job folder"
        ) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"{args[0]} did not answer within {TIMEOUT_S:g} s") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def submit(script: str, array: str | None = None) -> str:
    """Submit ``script`` with ``sbatch --parsable`` (``--array`` overriding the script's);
    return the job id."""
    args = ["sbatch", "--parsable"]
    if array is not None:
        args.append(f"--array={array}")
    result = _run([*args, script])
    if result.returncode != 0:
        raise SchedulerError(f"sbatch refused {script}: {_first_line(result.stderr)}")
    job_id = result.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch gave no job id for {script}: {result.stdout.strip()!r}")
    return job_id


@dataclass(frozen=True)
class QueueEntry:
    """An array task SLURM still holds: ``state`` is SLURM's (PENDING, RUNNING...)."""

    state: str
    reason: str

    @property
    def pending(self) -> bool:
        return self.state in PENDING

    @property
    def running(self) -> bool:
        return self.state in RUNNING


def queue(job_ids: list[str]) -> dict[tuple[str, int], QueueEntry]:
    """The queued and running tasks of the array jobs ``job_ids``, by (job id, task)."""
    if not job_ids:
        return {}
    # The user's jobs, filtered here: squeue refuses the whole list when one id has left.
    args = ["squeue", "--noheader", "--array", "--user", getpass.getuser()]
    result = _run([*args, "--format=%F|%K|%T|%r"])
    if result.returncode != 0:
        raise SchedulerError(f"squeue failed: {_first_line(result.stderr)}")
    wanted, found = set(job_ids), {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or parts[0] not in wanted:
            continue
        job, tasks, state, reason = parts
        for task in _expand(tasks):
            found[job, task] = QueueEntry(state, reason)
    return found


def _expand(spec: str) -> list[int]:
    """Task ids of squeue's %K: ``3``, or a pending range such as ``[0-3,5%2]``."""
    spec = spec.strip("[]").split("%")[0]
    if not spec or spec == "N/A":
        return [0]
    tasks = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        step = 1
        if ":" in last:
            last, step_text = last.split(":")
            step = int(step_text)
        tasks.extend(range(int(first), int(last or first) + 1, step))
    return tasks


@dataclass(frozen=True)
class EndedTask:
    """What SLURM remembers of a task that left the queue: its state (COMPLETED, FAILED,
    TIMEOUT, CANCELLED, OUT_OF_MEMORY...) and exit code ``status:signal``."""

    state: str
    exit_code: str


def ended(job_id: str, task: int) -> EndedTask | None:
    """The record of ``<job_id>_<task>``: from accounting (sacct) when the cluster keeps it,
    else from the controller's memory (scontrol; it forgets after MinJobAge); None if neither
    knows it."""
    if accounting_enabled():
        args = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=State,ExitCode"]
        result = _run([*args, f"--jobs={job_id}_{task}"])
        if result.returncode == 0 and result.stdout.strip():
            state, _, code = result.stdout.splitlines()[0].partition("|")
            return EndedTask(state.split()[0], code)
    result = _run(["scontrol", "--oneliner", "show", "job", f"{job_id}_{task}"])
    if result.returncode != 0:
        return None
    fields = dict(
        item.split("=", 1) for item in result.stdout.split() if "=" in item and item[0].isupper()
    )
    if "JobState" not in fields:
        return None
    return EndedTask(fields["JobState"], fields.get("ExitCode", ""))


@functools.cache
def accounting_enabled() -> bool:
    """Whether the cluster keeps accounting (sacct answers); a cluster without it says
    ``accounting_storage/none``."""
    try:
        result = _run(["scontrol", "show", "config"])
    except SchedulerError:
        return False
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() not in ("", "accounting_storage/none", "(null)")
    return False
