"""The cost benchmark: how long MD takes with each model, and what it uses, by system size.

The parent's side of ``scalms benchmark cost``. Each model runs in a child in its own
environment (:mod:`scalms.benchmark.cost_job`), which times every MD step through scalms's own
engines. Meanwhile a :class:`~scalms.benchmark.sampler.ResourceSampler` thread here reads the
child's CPU and memory (and the GPU's) and labels each reading with what the child said it was
doing, so the averages belong to one model, one structure, one batch size.

Working directory::

    runs/<model>/              task, log and timing records (cost.json) of each model's child
    trajectories/<model>/      the trajectories the serial runs wrote
    cost_summary.csv           serial mode: one row per model and structure, timings and averages
    cost_samples.csv           serial mode: every reading of the sampler
    cost_batched.csv           batched mode: one row per model, structure and batch size
    cost_batched_samples.csv   batched mode: every reading
    plots/                     figures (PNG + HTML)

Running again with other models adds their rows; rows of the models run again are replaced.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalms.benchmark.sampler import ResourceSampler, Sample
from scalms.config import ModelEntry
from scalms.dynamics.settings import MDSettings
from scalms.errors import ScalmsError
from scalms.files import WorkDirLock, atomic_path, read_json
from scalms.workers.fanout import ModelOutcome, Reporter, SilentReporter, run_models
from scalms.workers.task import Task

MODES = ("serial", "batched")
RERUN = "run the benchmark of that model again"
STRUCTURE_PATTERNS = ("*.xyz", "*.extxyz")
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16)
FILES = {
    "serial": ("cost_summary.csv", "cost_samples.csv"),
    "batched": ("cost_batched.csv", "cost_batched_samples.csv"),
}


def find_structures(structures: list[Path] | None, input_dir: Path | None) -> list[Path]:
    """The given structure files, then every ``*.xyz``/``*.extxyz`` of ``input_dir`` (sorted)."""
    found = list(structures or [])
    if input_dir is not None:
        if not Path(input_dir).is_dir():
            raise ScalmsError(f"input directory not found: {input_dir}")
        matches = sorted(
            {p for pattern in STRUCTURE_PATTERNS for p in Path(input_dir).glob(pattern)}
        )
        if not matches:
            raise ScalmsError(f"no *.xyz or *.extxyz files in {input_dir}")
        found += matches
    if not found:
        raise ScalmsError("no structures: give structure files or --input-dir")
    return found


def gpu_index(device: str) -> int:
    """NVML device index for a torch device name (``cuda:1`` -> 1; ``cuda``/``auto`` -> 0)."""
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


class SamplingReporter:
    """Passes the children's events on, and points the sampler at the child that sent them."""

    def __init__(self, sampler: ResourceSampler, inner: Reporter | None = None):
        self.sampler = sampler
        self.inner = inner or SilentReporter()

    def start(self, model: str) -> None:
        self.inner.start(model)

    def event(self, model: str, event: dict) -> None:
        if event.get("event") == "cost_phase":
            # A closing reading of the phase that ends: a phase shorter than the sampling
            # interval (a small model's MD on an idle machine) still gets one.
            self.sampler.sample()
            self.sampler.watch(event.get("pid"))
            fields = {k: event[k] for k in ("structure", "n_atoms", "n_systems") if k in event}
            self.sampler.label(model=model, phase=event.get("phase", ""), **fields)
        self.inner.event(model, event)

    def finish(self, model: str, outcome: ModelOutcome) -> None:
        self.sampler.watch(None)
        self.inner.finish(model, outcome)


@dataclass
class CostRun:
    """What a cost benchmark did: outcomes, timing records with their averages, samples."""

    workdir: Path
    mode: str
    outcomes: list[ModelOutcome]
    rows: list[dict[str, Any]]
    samples: list[Sample]
    gpu_note: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _max(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else float("nan")


def averaged(record: dict[str, Any], samples: list[Sample]) -> dict[str, Any]:
    """``record`` (one MD run of the child) with the averages of the samples taken during it."""
    mine = [
        s
        for s in samples
        if s.label.get("phase") == "md"
        and s.label.get("model") == record["model"]
        and s.label.get("structure") == record["structure"]
        and s.label.get("n_systems") == record["n_systems"]
    ]

    def scope(name: str) -> str:
        counts = Counter(getattr(s, name) for s in mine)
        return counts.most_common(1)[0][0] if counts else "none"

    timing = {k: v for k, v in record.items() if k != "step_s"}  # every step: in cost.json
    return {
        **timing,
        "n_samples": len(mine),
        "cpu_percent_mean": _mean([s.cpu_percent for s in mine]),
        "cpu_percent_max": _max([s.cpu_percent for s in mine]),
        "rss_MB_mean": _mean([s.rss_MB for s in mine]),
        "rss_MB_max": _max([s.rss_MB for s in mine]),
        "gpu_util_percent_mean": _mean([s.gpu_util_percent for s in mine]),
        "gpu_memory_MB_mean": _mean([s.gpu_memory_MB for s in mine]),
        "gpu_memory_MB_max": _max([s.gpu_memory_MB for s in mine]),
        "gpu_util_scope": scope("gpu_util_scope"),
        "gpu_memory_scope": scope("gpu_memory_scope"),
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def merge_csv(path: Path, rows: list[dict[str, Any]], replaced_models: set[str]) -> Path:
    """Write ``rows`` to ``path`` after the rows already there whose model is not replaced."""
    kept = [r for r in _read_csv(path) if r.get("model") not in replaced_models]
    every = kept + rows
    columns: list[str] = []
    for row in every:
        columns += [c for c in row if c not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(every)
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a summary CSV with numbers as numbers (for plots and reports)."""
    rows = []
    for row in _read_csv(path):
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            try:
                parsed[key] = int(value)
            except ValueError:
                try:
                    parsed[key] = float(value)
                except ValueError:
                    parsed[key] = value
        rows.append(parsed)
    return rows


def run_cost(
    structures: list[Path],
    entries: list[ModelEntry],
    workdir: Path,
    settings: MDSettings,
    *,
    mode: str = "serial",
    backend: str = "auto",
    device: str = "auto",
    batch_sizes: list[int] | None = None,
    until_oom: bool = False,
    max_systems: int = 4096,
    warmup_steps: int = 1,
    cpu_threads: int | None = None,
    sample_interval_s: float = 0.25,
    timeout_s: float | None = None,
    reporter: Reporter | None = None,
    plot: bool = True,
) -> CostRun:
    """Time ``settings.n_steps`` of MD of every structure with every model, and sample the
    resources each child uses. Structures run from the smallest to the largest.

    ``cpu_threads`` sets torch's thread count in each child (default: torch's own choice). On a
    machine other jobs share, one thread gives steadier timings: torch's threads wait for each
    other when one of them loses its core.
    """
    from scalms.devices import check_device
    from scalms.io.structures import check_readable, read_frames

    check_device(device)
    if mode not in MODES:
        raise ScalmsError(f"unknown mode '{mode}'; use serial or batched")
    if backend not in ("auto", "torchsim", "ase"):
        raise ScalmsError(f"unknown backend '{backend}'; use auto, torchsim or ase")
    if mode == "batched" and backend == "ase":
        raise ScalmsError("the batched mode runs TorchSim batches; use --backend auto or torchsim")
    sizes = sorted(set(batch_sizes or DEFAULT_BATCH_SIZES))
    if mode == "batched" and (not sizes or sizes[0] < 1):
        raise ScalmsError(f"batch sizes must be at least 1, got {sizes}")
    if not 0 <= warmup_steps < settings.n_steps:
        raise ScalmsError(
            f"warm-up steps ({warmup_steps}) must be fewer than the steps ({settings.n_steps})"
        )
    if cpu_threads is not None and cpu_threads < 1:
        raise ScalmsError(f"--cpu-threads must be at least 1, got {cpu_threads}")
    if not sample_interval_s > 0:
        raise ScalmsError(f"--sample-interval-s must be positive, got {sample_interval_s}")
    if not entries:
        raise ScalmsError("no models selected")
    sources = check_readable(structures)
    n_atoms = {s.label: len(read_frames(s.path)[-1]) for s in sources}
    sources.sort(key=lambda s: n_atoms[s.label])
    workdir = Path(workdir)
    with WorkDirLock(workdir, "scalms benchmark cost"):
        return _measure(
            sources,
            entries,
            workdir,
            settings,
            mode=mode,
            backend=backend,
            device=device,
            sizes=sizes,
            until_oom=until_oom,
            max_systems=max_systems,
            warmup_steps=warmup_steps,
            cpu_threads=cpu_threads,
            sample_interval_s=sample_interval_s,
            timeout_s=timeout_s,
            reporter=reporter,
            plot=plot,
        )


def _measure(
    sources,
    entries: list[ModelEntry],
    workdir: Path,
    settings: MDSettings,
    *,
    mode: str,
    backend: str,
    device: str,
    sizes: list[int],
    until_oom: bool,
    max_systems: int,
    warmup_steps: int,
    cpu_threads: int | None,
    sample_interval_s: float,
    timeout_s: float | None,
    reporter: Reporter | None,
    plot: bool,
) -> CostRun:
    """:func:`run_cost` once its request is checked, with the working directory locked."""

    def make_task(entry: ModelEntry, model_dir: Path) -> Task:
        params = {
            "settings": settings.to_dict(),
            "structures": [{"label": s.label, "path": str(s.path.absolute())} for s in sources],
            "backend": backend,
            "mode": mode,
            "batch_sizes": sizes,
            "until_oom": until_oom,
            "max_systems": max_systems,
            "warmup_steps": warmup_steps,
            "cpu_threads": cpu_threads,
            "trajectory_dir": str((workdir / "trajectories" / entry.name).absolute()),
        }
        output = (model_dir / "cost.json").absolute()
        return Task("cost", entry, output, device, settings.seed, params)

    sampler = ResourceSampler(sample_interval_s, gpu_index=gpu_index(device))
    outcomes: list[ModelOutcome] = []
    sampler.start()
    try:
        outcomes = run_models(
            entries,
            make_task,
            workdir / "runs",
            reporter=SamplingReporter(sampler, reporter),
            timeout_s=timeout_s,
        )
    finally:
        samples = sampler.stop()
        # Also after Ctrl-C: the runs that finished are written.
        records = []
        for entry in entries:
            result = workdir / "runs" / entry.name / "cost.json"
            if result.is_file():
                records += read_json(result, "timing records", fix=RERUN)["records"]
        rows = [averaged(r, samples) for r in records]
        run = CostRun(workdir, mode, outcomes, rows, samples, sampler.gpu_note)
        summary_name, samples_name = FILES[mode]
        names = {e.name for e in entries}
        run.files["summary"] = merge_csv(workdir / summary_name, rows, names)
        run.files["samples"] = merge_csv(
            workdir / samples_name, [s.row() for s in samples if s.label.get("model")], names
        )
    if plot:
        from scalms.benchmark.report import cost_figures

        run.files.update(cost_figures(workdir, mode, run.gpu_note))
    return run
