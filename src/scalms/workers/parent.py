"""Start children in their model's environment, follow their events, collect their results."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalms.workers.child import EXIT_CRASH, EXIT_OK, EXIT_OOM, EXIT_USER
from scalms.workers.events import parse
from scalms.workers.task import Task

EventHandler = Callable[[dict], None]
TIMEOUT_EXIT = -1000
"""Pseudo exit code for a child the parent stopped at its time limit."""


@dataclass
class ChildResult:
    """How one child ended. ``message`` says why it failed, in the child's words when it said."""

    model: str
    returncode: int
    message: str
    log: Path
    output: Path
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_OK and self.output.exists()

    def reason(self) -> str:
        if self.ok:
            return "ok"
        if self.message:
            return self.message
        if self.returncode == TIMEOUT_EXIT:
            return "stopped at the time limit"
        if self.returncode < 0:
            try:
                return f"killed by signal {signal.Signals(-self.returncode).name}"
            except ValueError:  # real-time signals have no name
                return f"killed by signal {-self.returncode}"
        kinds = {EXIT_CRASH: "crashed", EXIT_USER: "refused the task", EXIT_OOM: "out of memory"}
        return kinds.get(self.returncode, f"exited with code {self.returncode}")


STOP_GRACE_S = 5.0
"""Time a stopped child gets to flush its files before it is killed, s."""


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads; a group already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop_process_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """End a child started with ``start_new_session=True`` and anything it started (it leads
    its own process group): SIGTERM, ``grace_s`` to flush its files, then SIGKILL for the whole
    group, even on a second Ctrl-C."""
    kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        kill_group(process.pid, signal.SIGKILL)
        process.wait()


def run_child(
    task: Task,
    workdir: Path,
    timeout_s: float | None = None,
    on_event: EventHandler | None = None,
) -> ChildResult:
    """Run ``task`` in its model's interpreter; block until it ends or ``timeout_s`` passes.

    Files in ``workdir``: ``task.json``, ``child.log`` (everything the child printed that is not
    an event) and the child's result file, ``task.output``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    task_file = task.write(workdir / "task.json")
    log_path = workdir / "child.log"
    if task.output.exists():
        task.output.unlink()  # never mistake an old result for this run's
    python = task.model.python
    command = [str(python), "-m", "scalms.workers.child", str(task_file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    errors: list[str] = []
    with open(log_path, "w", buffering=1) as log:
        log.write(f"$ {' '.join(command)}\n")
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",  # a stray byte from a model package must not stop the reader
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            return ChildResult(
                task.model.name,
                EXIT_CRASH,
                f"cannot start {python}: {err}",
                log_path,
                task.output,
                0.0,
            )

        def follow() -> None:
            for line in process.stdout:
                event = parse(line)
                if event is None:
                    log.write(line)
                    continue
                if event.get("event") == "error":
                    errors.append(event.get("message", ""))
                    log.write(f"error: {event.get('message', '')}\n")
                if on_event:
                    try:
                        on_event(event)
                    except Exception as err:  # a display problem must not stop the draining
                        log.write(f"event handler failed: {err!r}\n")

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            returncode = TIMEOUT_EXIT
            errors.append(f"stopped after the {timeout_s:g} s time limit")
        except BaseException:  # Ctrl-C in the parent: take the child down with us
            stop_process_group(process)
            raise
        # Whatever the child left behind in its group goes too, so the pipe closes.
        kill_group(process.pid, signal.SIGKILL)
        reader.join()
        process.stdout.close()
    return ChildResult(
        model=task.model.name,
        returncode=returncode,
        message="; ".join(e for e in errors if e),
        log=log_path,
        output=task.output,
        wall_s=time.perf_counter() - started,
    )
