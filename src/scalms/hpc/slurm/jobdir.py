"""The job folder: the script, what was submitted, and each task's folder and log.

```
JOBDIR/
  job.sbatch                the script (readable; `sbatch --array=K job.sbatch` reruns task K)
  job.json                  the command, its split into tasks, the options, every submission
  logs/<job id>_<task>.out  each attempt's output (stdout and stderr)
  tasks/<task>/             the task's outputs, slurm_id (its SLURM id) and exit_code
  collected.json            what `scalms hpc collect` merged, and where
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalms.errors import ScalmsError
from scalms.files import atomic_write_json, read_json
from scalms.hpc.slurm.script import EXIT_CODE, SLURM_ID
from scalms.hpc.slurm.split import JobPlan

FORMAT = "scalms-slurm-job"
FORMAT_VERSION = 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Submission:
    """One ``sbatch`` of the script: the array job id and the tasks it ran."""

    job_id: str
    tasks: list[int]
    submitted: str = field(default_factory=now)


@dataclass
class JobRecord:
    """``job.json``: enough to render the script again, and to know each task's latest job."""

    plan: JobPlan
    template: str
    sbatch_options: dict[str, Any]
    cwd: str
    scalms: str
    submissions: list[Submission] = field(default_factory=list)
    created: str = field(default_factory=now)

    def latest(self, task: int) -> Submission | None:
        """The last submission that ran ``task`` (None: never submitted)."""
        for submission in reversed(self.submissions):
            if task in submission.tasks:
                return submission
        return None

    def to_dict(self) -> dict[str, Any]:
        from scalms import __version__

        data = asdict(self)
        data["plan"] = self.plan.to_dict()
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "scalms_version": __version__,
            **data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(
            plan=JobPlan.from_dict(data["plan"]),
            template=data["template"],
            sbatch_options=data["sbatch_options"],
            cwd=data["cwd"],
            scalms=data["scalms"],
            submissions=[Submission(**s) for s in data["submissions"]],
            created=data["created"],
        )


@dataclass(frozen=True)
class JobDir:
    root: Path

    @property
    def script(self) -> Path:
        return self.root / "job.sbatch"

    @property
    def record_path(self) -> Path:
        return self.root / "job.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def collected(self) -> Path:
        return self.root / "collected.json"

    def task_dir(self, task: int) -> Path:
        return self.root / "tasks" / str(task)

    def log(self, job_id: str, task: int) -> Path:
        return self.logs / f"{job_id}_{task}.out"

    def exit_code(self, task: int) -> int | None:
        """The exit status the task's last attempt left; None while it runs or if it was
        killed before it could write one."""
        path = self.task_dir(task) / EXIT_CODE
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def slurm_id(self, task: int) -> str | None:
        path = self.task_dir(task) / SLURM_ID
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def read(self) -> JobRecord:
        if not self.record_path.is_file():
            raise ScalmsError(
                f"{self.root} is not a scalms job folder (no job.json): make one with "
                f"`scalms hpc submit --dir {self.root} -- <scalms command>`"
            )
        data = read_json(self.record_path, "job record", "submit the job again into a new --dir")
        if data.get("format") != FORMAT:
            raise ScalmsError(f"{self.record_path} is not a scalms job record")
        return JobRecord.from_dict(data)

    def write(self, record: JobRecord) -> None:
        atomic_write_json(self.record_path, record.to_dict())
