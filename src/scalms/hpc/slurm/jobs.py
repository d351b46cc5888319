"""Submit a scalms command as a SLURM job array, and tell each task's state.

Plain sbatch scripts rather than submitit: a user on a cluster reads, edits and resubmits the
script with SLURM's own tools, and a task runs the scalms command it shows, word for word.
submitit pickles a Python function per task, which only Python can read or rerun, and ties
the job to the interpreter that submitted it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from scalms.errors import ScalmsError
from scalms.files import WorkDirLock, atomic_write_text
from scalms.hpc.slurm import scheduler
from scalms.hpc.slurm.jobdir import JobDir, JobRecord, Submission
from scalms.hpc.slurm.script import EXIT_CODE, SbatchOptions, render
from scalms.hpc.slurm.split import JobPlan, plan_job


def scalms_executable() -> str:
    """The ``scalms`` program of this installation, which the tasks run."""
    beside = Path(sys.executable).with_name("scalms")
    if beside.is_file():
        return str(beside)
    found = shutil.which("scalms")
    if found:
        return str(Path(found).absolute())
    raise ScalmsError("cannot find the scalms program beside this Python or on the PATH")


@dataclass(frozen=True)
class Submitted:
    job_dir: JobDir
    plan: JobPlan
    job_id: str | None
    """None for a dry run."""


def submit_job(
    command: list[str],
    job_dir: Path,
    commands,
    *,
    n_tasks: int = 1,
    template: str = "cpu-dft",
    options: SbatchOptions | None = None,
    dry_run: bool = False,
) -> Submitted:
    """Write ``job_dir`` (script, record, task folders) for the scalms ``command`` split into
    ``n_tasks`` array tasks, and submit it unless ``dry_run``. ``commands`` is the ``scalms``
    click group, to parse ``command`` exactly as the task will.

    A folder that already holds a submitted job is refused (collect and resubmit it instead);
    one written by a dry run is written again.
    """
    options = options or SbatchOptions()
    options.check()
    jd = JobDir(Path(job_dir).absolute())
    if jd.record_path.exists() and jd.read().submissions:
        raise ScalmsError(
            f"{jd.root} already holds a submitted job: follow it with `scalms hpc status` and "
            f"`scalms hpc collect` (--resubmit-failed), or choose another --dir"
        )
    plan = plan_job(command, n_tasks, jd.root, commands)
    cwd = Path.cwd()
    scalms = scalms_executable()
    text = render(template, plan, options, jd.root, cwd, scalms)
    with WorkDirLock(jd.root, "scalms hpc submit"):
        jd.logs.mkdir(parents=True, exist_ok=True)
        for task in plan.tasks:
            jd.task_dir(task.index).mkdir(parents=True, exist_ok=True)
        atomic_write_text(jd.script, text)
        jd.script.chmod(0o755)
        record = JobRecord(plan, template, asdict(options), str(cwd), scalms)
        jd.write(record)
        if dry_run:
            return Submitted(jd, plan, None)
        job_id = scheduler.submit(str(jd.script))
        record.submissions.append(Submission(job_id, [t.index for t in plan.tasks]))
        jd.write(record)
    return Submitted(jd, plan, job_id)


def resubmit(jd: JobDir, record: JobRecord, tasks: list[int]) -> Submission:
    """Submit ``tasks`` of the job's script again (``sbatch --array=<tasks>``), recorded in
    ``job.json``. Their old exit codes go first, so status sees them pending, not failed.
    The caller holds the job folder's lock."""
    for task in tasks:
        (jd.task_dir(task) / EXIT_CODE).unlink(missing_ok=True)
    job_id = scheduler.submit(str(jd.script), array=",".join(map(str, sorted(tasks))))
    submission = Submission(job_id, sorted(tasks))
    record.submissions.append(submission)
    jd.write(record)
    return submission


STATES = ("not submitted", "pending", "running", "done", "failed")


@dataclass(frozen=True)
class TaskStatus:
    """One array task: ``state`` is one of :data:`STATES`; ``detail`` says why (SLURM's reason,
    the exit code, TIMEOUT...); ``log`` is its latest attempt's output."""

    task: int
    state: str
    detail: str
    log: Path | None
    job_id: str | None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def job_status(job_dir: Path, record: JobRecord | None = None) -> list[TaskStatus]:
    """Each task's state: the queue first (pending, running), then the exit code the task
    wrote (done, failed), then SLURM's memory of it (accounting when the cluster keeps it,
    else scontrol): a task that left the queue without an exit code was killed."""
    jd = JobDir(Path(job_dir).absolute())
    record = record or jd.read()
    latest = {t.index: _latest_job(jd, record, t.index) for t in record.plan.tasks}
    queued = scheduler.queue(sorted({job for job in latest.values() if job is not None}))
    statuses = []
    for task, job_id in latest.items():
        if job_id is None:
            detail = "dry run (or submitted by hand and not started yet)"
            statuses.append(TaskStatus(task, "not submitted", detail, None, None))
            continue
        log = jd.log(job_id, task)
        code = jd.exit_code(task)
        entry = queued.get((job_id, task))
        if entry is not None and not (entry.state == "COMPLETING" and code is not None):
            state = "pending" if entry.pending else "running"
            reason = entry.reason if entry.pending and entry.reason not in ("", "None") else ""
            detail = entry.state.lower() + (f" ({reason})" if reason else "")
            statuses.append(TaskStatus(task, state, detail, log, job_id))
        elif code is not None:
            state = "done" if code == 0 else "failed"
            statuses.append(TaskStatus(task, state, f"exit code {code}", log, job_id))
        else:
            statuses.append(_without_exit_code(task, job_id, log))
    return statuses


def _latest_job(jd: JobDir, record: JobRecord, task: int) -> str | None:
    """The array job that ran ``task`` last: the newest of what scalms submitted and what the
    task itself recorded when it started (it may have been resubmitted by hand with sbatch)."""
    submission = record.latest(task)
    candidates = [submission.job_id] if submission else []
    started = jd.slurm_id(task)
    if started and started.partition("_")[0].isdigit():
        candidates.append(started.partition("_")[0])
    return max(candidates, key=int, default=None)


def _without_exit_code(task: int, job_id: str, log: Path) -> TaskStatus:
    ended = scheduler.ended(job_id, task)
    if ended is None:
        detail = "left the queue without an exit code (killed, or the node failed)"
    elif ended.state in scheduler.PENDING | scheduler.RUNNING:
        # Between squeue's answer and scontrol's: it is still SLURM's.
        state = "pending" if ended.state in scheduler.PENDING else "running"
        return TaskStatus(task, state, ended.state.lower(), log, job_id)
    else:
        detail = f"{ended.state} without an exit code (exit {ended.exit_code}): killed"
    return TaskStatus(task, "failed", detail, log, job_id)
