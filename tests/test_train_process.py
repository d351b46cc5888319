"""The trainer child's machinery shared by ``scalms train mace`` and ``sevennet``: its log, its
polling, its stop, a look into a model environment, and the progress lines read from its curves."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from scalms.training.curves import EpochRecord
from scalms.training.progress import EpochProgress
from scalms.training.trained import TrainerFailed, TrainingError
from scalms.training.trainer_process import environment_report, log_tail, run_trainer

from .conftest import wait_for


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_trainer_logs_its_output_and_returns_its_exit_code(tmp_path: Path):
    polls = []
    script = "import time; print('step 1'); time.sleep(0.3); raise SystemExit(3)"
    code = run_trainer(
        [sys.executable, "-c", script],
        tmp_path,
        tmp_path / "train.log",
        {},
        lambda: polls.append(1),
        poll_s=0.05,
    )
    assert code == 3
    assert polls, "the trainer was never polled while it ran"
    text = (tmp_path / "train.log").read_text()
    assert text.lstrip().startswith("$ ") and "step 1" in text
    assert log_tail(tmp_path / "train.log", 1) == "step 1"


def test_an_error_in_a_poll_stops_the_trainer_and_what_it_started(tmp_path: Path):
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )

    def poll() -> None:
        if pid_file.exists() and pid_file.read_text():
            raise TrainingError("stop")

    with pytest.raises(TrainingError, match="stop"):
        run_trainer([sys.executable, "-c", script], tmp_path, tmp_path / "log", {}, poll, 0.05)
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not _running(grandchild), "the trainer's own child stopped with it")


def test_a_trainer_that_cannot_start_fails_in_one_line(tmp_path: Path):
    with pytest.raises(TrainerFailed, match="cannot start"):
        run_trainer([str(tmp_path / "missing")], tmp_path, tmp_path / "log", {}, lambda: None)


def test_an_environment_report_is_its_last_json_line_or_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    module = tmp_path / "scalms_test_report.py"
    module.write_text(
        "import json, sys\nprint('noise')\nprint(json.dumps({'ok': True, 'arg': sys.argv[1]}))\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    python = Path(sys.executable)
    report = environment_report(python, "scalms_test_report", ["a"], "look failed", TrainingError)
    assert report == {"ok": True, "arg": "a"}
    module.write_text("raise SystemExit('cannot read the model')\n")
    with pytest.raises(TrainerFailed, match=r"^look failed: cannot read the model$"):
        environment_report(python, "scalms_test_report", [], "look failed", TrainerFailed)


def test_progress_reports_only_what_is_new_since_it_started():
    records = [EpochRecord(1, "Default", "valid", 1.0, 2.0, 30.0)]
    lines: list[str] = []
    progress = EpochProgress(lambda: list(records), 3, lines.append)
    progress.update()
    assert lines == []  # an earlier run's epoch is not news
    records[0] = EpochRecord(1, "Default", "valid", 0.9, 2.0, 30.0)  # the epoch trained again
    records.append(EpochRecord(2, "Default", "valid", 0.8, 1.5, 25.0))
    progress.update()
    progress.update()
    assert lines == [
        "epoch 1/3  Default: loss 0.9, RMSE E 2.0 meV/atom, F 30.0 meV/Å",
        "epoch 2/3  Default: loss 0.8, RMSE E 1.5 meV/atom, F 25.0 meV/Å",
    ]
