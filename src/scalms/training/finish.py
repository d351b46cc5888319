"""After a training succeeds: the curves figure, the model_config.yaml entry, the accuracy
benchmark of the new model on the held-out frames, and ``RUN_DIR/summary.json`` linking them.

The benchmark is passed in (the CLI wraps ``scalms.benchmark.accuracy``), so that this section
imports no other section's parent side. A failed benchmark is reported, not raised: the model is
registered by then and stays so; :attr:`FinishRecord.ok` tells the caller to exit non-zero.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalms.errors import ScalmsError
from scalms.files import atomic_write_json
from scalms.training.curves import EpochRecord, last_epoch_per_head, read_curves
from scalms.training.register import register_model
from scalms.training.trained import TrainedModel

Benchmark = Callable[[str, Path, Path], Path]
"""(model name, test file, output folder) -> the benchmark's summary file."""

CURVES_FIGURE = "training_curves.png"
BENCHMARK_DIR = "benchmark"
SUMMARY = "summary.json"
BENCHMARK_METRICS = "metrics.csv"
"""The accuracy benchmark's table, one row per model, beside its summary page."""


@dataclass
class FinishRecord:
    """Where everything a finished training produced is, and whether its benchmark ran."""

    name: str
    architecture: str
    model_path: Path
    config_path: Path
    config_entry: str
    """``ARCHITECTURE.models.NAME``."""
    registered_model_path: str
    """model_path as written in the config (relative to its folder when inside it)."""
    summary_path: Path
    curves_figure: Path | None = None
    benchmark_summary: Path | None = None
    benchmark_error: str | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    """The new model's row of the benchmark's metrics.csv (units in the column names)."""
    last_epoch: list[EpochRecord] = field(default_factory=list)
    """The last validation record of each head."""

    @property
    def ok(self) -> bool:
        """False when the benchmark was asked for and failed."""
        return self.benchmark_error is None


def _draw_curves(trained: TrainedModel, log: Callable[[str], None]) -> tuple[Path | None, list]:
    records = read_curves(trained.run_dir, trained.trainer) if trained.trainer else []
    if not records:
        log(f"no per-epoch records under {trained.run_dir}: training curves not drawn")
        return None, []
    from scalms.plots.training import save_training_curves

    path = trained.run_dir / CURVES_FIGURE
    try:
        save_training_curves(path, records, title=f"{trained.name} ({trained.architecture})")
    except (OSError, ValueError, RuntimeError) as err:
        # A figure that cannot be drawn must not cost the model its registration.
        log(f"training curves not drawn ({type(err).__name__}: {err})")
        return None, records
    return path, records


def _test_metrics(summary: Path, name: str) -> dict[str, float]:
    """The model's row of metrics.csv beside the benchmark's summary, numbers only."""
    table = summary.parent / BENCHMARK_METRICS
    if not table.is_file():
        return {}
    with table.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("model") == name:
                metrics: dict[str, float] = {}
                for key, value in row.items():
                    try:
                        metrics[key] = int(value) if value.isdigit() else float(value)
                    except (AttributeError, ValueError):
                        continue
                return metrics
    return {}


def _link(path: Path | None, run_dir: Path) -> str | None:
    """A path for summary.json: relative to the run folder when inside it."""
    if path is None:
        return None
    target, base = os.path.abspath(path), os.path.abspath(run_dir)
    return os.path.relpath(target, base) if Path(target).is_relative_to(base) else target


def finish_training(
    trained: TrainedModel,
    config_path: Path,
    benchmark: Benchmark | None,
    log: Callable[[str], None] = print,
) -> FinishRecord:
    """Draw ``RUN_DIR/training_curves.png``, register the model in ``config_path``, benchmark
    it on ``trained.test_file`` (when both are given) in ``RUN_DIR/benchmark/``, and write
    ``RUN_DIR/summary.json``. Registration errors (a taken name, a config that cannot take the
    entry) are raised; a benchmark failure is recorded in the returned record."""
    run_dir = Path(trained.run_dir)
    config_path = Path(config_path)
    curves_figure, records = _draw_curves(trained, log)
    registered = register_model(
        config_path, trained.name, trained.architecture, trained.model_path, trained.options
    )
    entry = f"{trained.architecture}.models.{trained.name}"
    record = FinishRecord(
        name=trained.name,
        architecture=trained.architecture,
        model_path=Path(trained.model_path),
        config_path=config_path,
        config_entry=entry,
        registered_model_path=registered,
        summary_path=run_dir / SUMMARY,
        curves_figure=curves_figure,
        last_epoch=last_epoch_per_head(records),
    )
    if trained.test_file is not None and benchmark is not None:
        log(f"benchmarking {trained.name} on {trained.test_file}")
        try:
            record.benchmark_summary = benchmark(
                trained.name, Path(trained.test_file), run_dir / BENCHMARK_DIR
            )
        except Exception as err:  # any failure of the benchmark leaves the registration
            kind = "" if isinstance(err, ScalmsError) else f"{type(err).__name__}: "
            record.benchmark_error = f"{kind}{err}".strip()
            log(f"benchmark of {trained.name} failed: {record.benchmark_error}")
        else:
            record.test_metrics = _test_metrics(record.benchmark_summary, trained.name)
    elif trained.test_file is None:
        log("no test file: the accuracy benchmark was not run")
    else:
        log("no benchmark given: the accuracy benchmark was not run")
    atomic_write_json(record.summary_path, summary_json(record, trained))
    return record


def summary_json(record: FinishRecord, trained: TrainedModel) -> dict[str, Any]:
    """What ``RUN_DIR/summary.json`` holds; paths relative to the run folder when inside it."""
    run_dir = Path(trained.run_dir)
    return {
        "name": record.name,
        "architecture": record.architecture,
        "trainer": trained.trainer,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_file": _link(record.model_path, run_dir),
        "config": {
            "path": os.path.abspath(record.config_path),
            "entry": record.config_entry,
            "model_path": record.registered_model_path,
            "options": trained.options,
        },
        "curves_figure": _link(record.curves_figure, run_dir),
        "test_file": str(trained.test_file) if trained.test_file else None,
        "benchmark": {
            "ran": trained.test_file is not None and record.benchmark_summary is not None,
            "summary": _link(record.benchmark_summary, run_dir),
            "error": record.benchmark_error,
            "metrics": record.test_metrics,
        },
        "last_epoch": [asdict(r) for r in record.last_epoch],
    }
