"""A trainer (``mace_run_train``, ``sevenn``) or a look into a model environment, run as a child
of scalms.

The trainer gets its own process group, its output appended to the run's ``train.log``, and is
polled while it runs (progress lines, checkpoint upkeep). It dies with scalms, even when scalms
is killed outright (``PR_SET_PDEATHSIG`` on Linux), so no orphaned trainer goes on writing into
a run folder while a rerun resumes there; Ctrl-C or an error in a poll stops it (SIGTERM to its
group, a grace period, then SIGKILL).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalms.training.trained import TrainerFailed, TrainingError
from scalms.workers.lifetime import die_with_parent
from scalms.workers.parent import stop_process_group

POLL_S = 1.0
"""How often the parent polls a running trainer, s."""
STOP_GRACE_S = 10.0
"""Time a stopped trainer gets to finish writing (a checkpoint) before it is killed, s."""
ENVIRONMENT_TIMEOUT_S = 600.0
"""Longest wait for a look into a model environment (loading a model), s."""


def environment_python(family: str, trainer: str) -> Path:
    """The interpreter of ``family``'s environment (``scalms env create FAMILY``), with the
    trainer's command ``trainer`` beside it; refused with the fix when either is missing."""
    from scalms.models import FAMILIES
    from scalms.models.entry import managed_python

    python = managed_python(FAMILIES[family])
    if not python.exists() or not (python.parent / trainer).exists():
        raise TrainingError(
            f"no {family} environment ({python.parent.parent}): run `scalms env create {family}`"
        )
    return python


def run_trainer(
    command: list[str],
    cwd: Path,
    log_path: Path,
    env: dict[str, str],
    poll: Callable[[], None],
    poll_s: float = POLL_S,
) -> int:
    """Run ``command`` in ``cwd`` with ``env`` added to this environment, its output appended to
    ``log_path`` after a ``$ command`` line; call ``poll`` every ``poll_s`` while it runs. Ctrl-C,
    SIGTERM made one, or an error raised by ``poll`` stops it and is re-raised. Returns its exit
    code; a command that cannot start raises :class:`TrainerFailed`."""
    with open(log_path, "a", encoding="utf-8") as out:
        out.write(f"\n$ {shlex.join(command)}    # {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        out.flush()
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                start_new_session=True,  # its own group: stopping it stops what it started
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        except OSError as err:
            raise TrainerFailed(f"cannot start {command[0]}: {err}") from None
        try:
            while True:
                try:
                    return process.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    poll()
        except BaseException:
            stop_process_group(process, STOP_GRACE_S)
            raise


def is_complete_checkpoint(path: Path) -> bool:
    """True when ``path`` is a whole torch checkpoint: ``torch.save`` writes a zip archive, so
    one cut short by a kill fails the zip's checksums (and a trainer that fails to load it
    might start again from epoch 0 without a word)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist()) and archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def log_tail(path: Path, count: int) -> str:
    """The last ``count`` non-blank lines of a trainer's log (a failure ends with its reason)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join([line for line in lines if line.strip()][-count:])


def environment_report(
    python: Path, module: str, arguments: list[str], failure: str, error: type[TrainingError]
) -> dict[str, Any]:
    """Run ``python -m module *arguments`` (a child-side look at a model file in its model's
    environment) and return the JSON object it printed last. When it cannot run or prints none,
    raises ``error`` with ``failure`` and the reason (its last line of stderr)."""
    command = [str(python), "-m", module, *arguments]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=ENVIRONMENT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise error(f"{failure}: {err}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise error(f"{failure}: {last}")
    return json.loads(lines[-1])
