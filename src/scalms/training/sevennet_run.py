"""Running ``sevenn`` in a run folder (as a child, :mod:`.trainer_process`): its checkpoints,
its progress, its end.

sevenn writes ``checkpoint_<epoch>.pth`` every epoch (scalms sets ``per_epoch: 1``), straight to
the final name with ``torch.save``: a kill during the write leaves a truncated file. A torch
checkpoint is a zip archive with a checksum per member, so a complete one is told from a
truncated one without torch (:func:`.trainer_process.is_complete_checkpoint`), and a rerun
resumes from the newest complete one. Older checkpoints are removed as training goes, keeping
the two newest, so a 100-epoch run does not leave a gigabyte of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from scalms.training.curves import read_sevenn_curves
from scalms.training.progress import EpochProgress
from scalms.training.trained import TrainerFailed
from scalms.training.trainer_process import POLL_S, is_complete_checkpoint, log_tail, run_trainer

CHECKPOINT = re.compile(r"^checkpoint_(\d+)\.pth$")
SEVENN_OUTPUTS = ("checkpoint_*.pth", "lc*.csv", "log*.sevenn")
"""What sevenn writes into its working folder (besides sevenn_data/, its processed datasets)."""
KEEP_CHECKPOINTS = 2


def epoch_checkpoints(run_dir: Path) -> dict[int, Path]:
    """``checkpoint_<epoch>.pth`` files sevenn wrote after an epoch (epoch >= 1), by epoch."""
    found = {}
    for path in run_dir.glob("checkpoint_*.pth"):
        match = CHECKPOINT.match(path.name)
        if match and int(match.group(1)) >= 1:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def last_complete_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """The newest epoch checkpoint that is whole, with its epoch; None before the first."""
    for epoch, path in reversed(epoch_checkpoints(run_dir).items()):
        if is_complete_checkpoint(path):
            return epoch, path
    return None


def prune_checkpoints(run_dir: Path, keep: int = KEEP_CHECKPOINTS) -> None:
    """Remove all but the ``keep`` newest epoch checkpoints (the newest may be mid-write)."""
    for path in list(epoch_checkpoints(run_dir).values())[:-keep]:
        path.unlink(missing_ok=True)


def clear_unfinished_start(run_dir: Path) -> None:
    """Remove what a run killed before its first epoch checkpoint left (logs, a half-processed
    dataset): starting again is then the same as starting fresh."""
    import shutil

    for pattern in SEVENN_OUTPUTS:
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / "sevenn_data", ignore_errors=True)


def run_sevenn(
    command: list[str],
    run_dir: Path,
    train_log: Path,
    epochs: int,
    log: Callable[[str], None],
    poll_s: float = POLL_S,
) -> None:
    """Run ``command`` (sevenn on the run's input.yaml) in ``run_dir`` until it ends, its output
    appended to ``train_log``, one line per newly logged epoch to ``log``; checkpoints beyond
    the newest two removed as it goes. Ctrl-C (or SIGTERM made one) stops sevenn and is re-raised:
    the checkpoints stay for the rerun. A failure raises :class:`TrainerFailed`."""
    progress = EpochProgress(lambda: read_sevenn_curves(run_dir), epochs, log)

    def poll() -> None:
        progress.update()
        prune_checkpoints(run_dir)

    returncode = run_trainer(command, run_dir, train_log, {}, poll, poll_s)
    progress.update()
    if returncode != 0:
        raise TrainerFailed(
            f"sevenn failed (exit code {returncode}); its output is in {train_log}, "
            f"ending:\n{log_tail(train_log, 4)}"
        )
    prune_checkpoints(run_dir, keep=1)
