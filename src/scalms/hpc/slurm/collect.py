"""Merge a finished job array's task outputs into the command's own output; resubmit failures.

- rattle: the tasks' reference files, frames ordered by ``rattle_index``, into ``--out``
  (exactly ``--count`` distinct slots, or nothing is written).
- static: the tasks' results files into ``--out``, structures under the labels an unsplit run
  gives them (``scalms.io.static_results.merge_files``).
- dynamics run: the tasks' trajectories linked into one results file in ``--working-dir``
  (``scalms.io.results.consolidate``), which ``scalms analyze`` reads; plus an index of each
  task's own results file.

The output is written only when every task has finished successfully, atomically, so it is
either whole or absent; collecting again rewrites it from the same task files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalms.errors import ScalmsError
from scalms.files import WorkDirLock, atomic_write_bytes, atomic_write_json
from scalms.hpc.slurm.jobdir import JobDir, JobRecord, Submission, now
from scalms.hpc.slurm.jobs import TaskStatus, job_status, resubmit
from scalms.hpc.slurm.split import JobPlan

LOG_TAIL_LINES = 15


@dataclass
class Collected:
    """What a collect did: the tasks' states, the output written (None while any task is not
    done), the failed tasks' last log lines, and a resubmission if one was made."""

    statuses: list[TaskStatus]
    output: Path | None = None
    summary: str = ""
    log_tails: dict[int, list[str]] = field(default_factory=dict)
    resubmitted: Submission | None = None

    @property
    def failed(self) -> list[TaskStatus]:
        return [s for s in self.statuses if s.state == "failed"]

    @property
    def unfinished(self) -> list[TaskStatus]:
        return [s for s in self.statuses if not s.finished]


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a task's log (none when it has not been written)."""
    if path is None or not path.is_file():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64_000))  # a long log: its end is what says why
        text = handle.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


def collect_job(job_dir: Path, resubmit_failed: bool = False) -> Collected:
    """Merge the job's outputs if every task is done; otherwise say which are not and why,
    and with ``resubmit_failed`` submit the failed tasks again (only those)."""
    jd = JobDir(Path(job_dir).absolute())
    with WorkDirLock(jd.root, "scalms hpc collect"):
        record = jd.read()
        statuses = job_status(jd.root, record)
        result = Collected(statuses)
        result.log_tails = {s.task: log_tail(s.log) for s in result.failed}
        if not result.failed and not result.unfinished:
            result.output, result.summary = merge(jd, record)
            atomic_write_json(
                jd.collected,
                {
                    "collected": now(),
                    "kind": record.plan.kind,
                    "output": str(result.output) if result.output else None,
                    "summary": result.summary,
                    "tasks": [str(jd.task_dir(t.index)) for t in record.plan.tasks],
                },
            )
        elif resubmit_failed and result.failed:
            result.resubmitted = resubmit(jd, record, [s.task for s in result.failed])
    return result


def merge(jd: JobDir, record: JobRecord) -> tuple[Path | None, str]:
    """Write the command's output from its tasks' outputs; return it and a one-line summary."""
    plan = record.plan
    if plan.kind == "command":
        return None, "one task, run as given: its outputs are where the command wrote them"
    # The command's own paths were relative to the folder it was submitted from.
    out = Path(record.cwd) / plan.out
    mergers = {"rattle": merge_rattle, "static": merge_static, "dynamics": merge_dynamics}
    return out, mergers[plan.kind](jd, plan, out)


def _task_output(jd: JobDir, plan: JobPlan, task: int) -> Path:
    return jd.task_dir(task) / Path(plan.out).name


def merge_rattle(jd: JobDir, plan: JobPlan, out: Path) -> str:
    from scalms.hpc.reference_file import frame_text, read_reference

    by_slot: dict[int, Any] = {}
    for task in plan.tasks:
        path = _task_output(jd, plan, task.index)
        for atoms in read_reference(path):
            slot = int(atoms.info["rattle_index"])
            if slot in by_slot:
                raise ScalmsError(f"slot {slot} is in two task files (one is {path}): not merged")
            by_slot[slot] = atoms
    expected = set(range(plan.count))
    if set(by_slot) != expected:
        missing = sorted(expected - set(by_slot))
        raise ScalmsError(
            f"the tasks hold {len(by_slot)} of the {plan.count} frames (missing slots "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''}): nothing merged"
        )
    atomic_write_bytes(out, b"".join(frame_text(by_slot[slot]) for slot in sorted(by_slot)))
    return f"{plan.count} frames from {len(plan.tasks)} tasks, in slot order"


def _label_map(plan: JobPlan, task_items: list[str]) -> dict[str, str]:
    """A task's structure labels -> the labels an unsplit run gives the same files (they
    differ when two files share a name and only one of them is in the task)."""
    from scalms.io.structures import label_sources

    full = {s.path: s.label for s in label_sources(plan.items)}
    return {s.label: full[s.path] for s in label_sources(task_items)}


def merge_static(jd: JobDir, plan: JobPlan, out: Path) -> str:
    from scalms.io.static_results import merge_files

    parts = [
        (_task_output(jd, plan, task.index), _label_map(plan, task.items)) for task in plan.tasks
    ]
    try:
        merge_files(out, parts)
    except (OSError, KeyError, ValueError) as err:
        raise ScalmsError(f"cannot merge the task results into {out}: {err}") from None
    return f"{len(plan.items)} structures from {len(plan.tasks)} tasks"


def merge_dynamics(jd: JobDir, plan: JobPlan, workdir: Path) -> str:
    from scalms.dynamics.workdir import WorkDir
    from scalms.io.results import consolidate

    runs: dict[tuple[str, str], Path] = {}
    index, data_file = [], "MD_dynamics_results.h5"
    for task in plan.tasks:
        wd = WorkDir(jd.task_dir(task.index))
        manifest = wd.read_manifest()
        data_file = manifest.get("data_file", data_file)
        labels = _label_map(plan, task.items)
        for model in manifest["models"]:
            for structure in manifest["structures"]:
                label = structure["label"]
                runs[model["name"], labels[label]] = wd.trajectory(model["name"], label)
        index.append(
            {"task": task.index, "structures": task.items, "results": str(wd.results(manifest))}
        )
    consolidate(runs, workdir / data_file, method="links")
    atomic_write_json(workdir / "slurm_tasks.json", {"job_dir": str(jd.root), "tasks": index})
    return f"{len(runs)} runs of {len(plan.tasks)} tasks linked into {data_file}"
