"""MD of many structures with many models: the parent's side of ``scalms dynamics run|resume``.

Each model runs in a child in its own environment (``scalms.workers.md_job``), which batches the
structures through TorchSim or falls back to ASE. The parent lays out the working directory,
consolidates the trajectories into one results file, and runs the requested analyses. A killed
run is resumed from the manifest and the checkpoints, and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scalms.config import ModelEntry
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.workdir import DEFAULT_DATA_FILE, WorkDir
from scalms.errors import ScalmsError
from scalms.evaluate import check_device
from scalms.workers.fanout import ModelOutcome, Reporter, run_models
from scalms.workers.task import Task

CONSOLIDATE = ("links", "repack")


@dataclass
class RunStatus:
    model: str
    structure: str
    n_frames: int
    expected_frames: int
    complete: bool
    backend: str = ""
    note: str = ""


@dataclass
class DynamicsRun:
    workdir: WorkDir
    results: Path | None
    outcomes: list[ModelOutcome]
    statuses: list[RunStatus] = field(default_factory=list)
    analysis_notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]


def start_dynamics(
    structures: list[Path],
    entries: list[ModelEntry],
    workdir: Path,
    settings: MDSettings,
    *,
    analyses: dict[str, Any] | None = None,
    backend: str = "auto",
    device: str = "auto",
    data_file: str = DEFAULT_DATA_FILE,
    consolidate: str = "links",
    remove_trajectories: bool = False,
    plot: bool = True,
    frame: int = -1,
    max_batch_atoms: int | None = None,
    timeout_s: float | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> DynamicsRun:
    """Lay out ``workdir`` for every structure x model and run it (see :func:`execute`).

    ``frame`` picks the starting frame of multi-frame structure files (the last by default, so a
    melting trajectory continues from where it ended).
    """
    from ase.io import write

    from scalms.io.structures import check_readable, read_frames

    check_device(device)
    if backend not in ("auto", "torchsim", "ase"):
        raise ScalmsError(f"unknown backend '{backend}' for MD; use auto, torchsim or ase")
    if consolidate not in CONSOLIDATE:
        raise ScalmsError(f"unknown consolidation '{consolidate}'; use links or repack")
    if remove_trajectories and consolidate != "repack":
        raise ScalmsError(
            "removing the trajectory files needs --consolidate repack: links would point nowhere"
        )
    if not entries:
        raise ScalmsError("no models selected")
    sources = check_readable(structures)
    wd = WorkDir(Path(workdir))
    if wd.manifest.exists():
        if not overwrite:
            raise ScalmsError(
                f"{wd.root} already holds an MD run; continue it with "
                f"`scalms dynamics resume {wd.root}`, or pass --overwrite to start again"
            )
        for sub in ("trajectories", "checkpoints", "runs", "analysis", "structures"):
            shutil.rmtree(wd.root / sub, ignore_errors=True)
    wd.structures.mkdir(parents=True, exist_ok=True)
    labels = []
    for source in sources:
        frames = read_frames(source.path)
        try:
            atoms = frames[frame]
        except IndexError:
            raise ScalmsError(f"{source.path} has {len(frames)} frames; no frame {frame}") from None
        write(wd.structure(source.label), atoms, format="extxyz")
        labels.append({"label": source.label, "source": str(source.path.absolute())})
    manifest = {
        "settings": settings.to_dict(),
        "structures": labels,
        "models": [entry.to_dict() for entry in entries],
        "backend": backend,
        "device": device,
        "data_file": data_file,
        "consolidate": consolidate,
        "remove_trajectories": remove_trajectories,
        "plot": plot,
        "analyses": analyses or {},
        "max_batch_atoms": max_batch_atoms,
    }
    wd.write_manifest(manifest)
    return execute(wd, manifest, timeout_s=timeout_s, reporter=reporter)


def resume_dynamics(
    workdir: Path, *, timeout_s: float | None = None, reporter: Reporter | None = None
) -> DynamicsRun:
    """Continue the unfinished runs of ``workdir`` from their last checkpoints."""
    wd = WorkDir(Path(workdir))
    return execute(wd, wd.read_manifest(), timeout_s=timeout_s, reporter=reporter)


def execute(
    wd: WorkDir,
    manifest: dict[str, Any],
    *,
    timeout_s: float | None = None,
    reporter: Reporter | None = None,
) -> DynamicsRun:
    """Run (or continue) every model's child, then consolidate and analyse what exists.

    Finished runs are skipped, so this is both the first start and the resume. The results file
    is written even when a model fails or the run is interrupted, so what finished stays readable.
    """
    settings = MDSettings.from_dict(manifest["settings"])
    entries = [ModelEntry.from_dict(data) for data in manifest["models"]]
    labels = [s["label"] for s in manifest["structures"]]

    def make_task(entry: ModelEntry, model_dir: Path) -> Task:
        params = {
            "settings": settings.to_dict(),
            "runs": [
                {
                    "label": label,
                    "structure": str(wd.structure(label).absolute()),
                    "trajectory": str(wd.trajectory(entry.name, label).absolute()),
                }
                for label in labels
            ],
            "checkpoint_dir": str(wd.checkpoints(entry.name).absolute()),
            "backend": manifest["backend"],
            "max_batch_atoms": manifest.get("max_batch_atoms"),
            "parameters": {
                "sources": {s["label"]: s["source"] for s in manifest["structures"]},
                "analyses": manifest.get("analyses", {}),
            },
        }
        output = (model_dir / "md_summary.json").absolute()
        return Task("md", entry, output, manifest["device"], settings.seed, params)

    finished = {(s.model, s.structure) for s in statuses(wd, manifest) if s.complete}
    pending = [e for e in entries if any((e.name, label) not in finished for label in labels)]
    outcomes: list[ModelOutcome] = []
    results = None
    try:
        outcomes = run_models(pending, make_task, wd.runs, reporter=reporter, timeout_s=timeout_s)
    finally:
        # Also on Ctrl-C: whatever the children wrote becomes readable through one file.
        results = consolidate_runs(wd, manifest, entries, labels)
    run = DynamicsRun(wd, results, outcomes, statuses(wd, manifest))
    finished = results is not None and all(s.complete for s in run.statuses)
    if finished and manifest.get("remove_trajectories") and manifest.get("consolidate") == "repack":
        shutil.rmtree(wd.root / "trajectories", ignore_errors=True)
    if results is not None and manifest.get("analyses"):
        from scalms.dynamics.analyses import AnalysisRequest, run_analyses

        request = AnalysisRequest.from_dict(manifest["analyses"])
        done = run_analyses(results, request, wd.analysis, plot=manifest.get("plot", True))
        run.analysis_notes = done.notes
        from scalms.dynamics.report import write_workdir_report

        write_workdir_report(wd, manifest, done)
    return run


def consolidate_runs(wd: WorkDir, manifest, entries, labels) -> Path | None:
    from scalms.io.results import consolidate

    runs = {
        (entry.name, label): wd.trajectory(entry.name, label)
        for entry in entries
        for label in labels
        if wd.trajectory(entry.name, label).exists()
    }
    if not runs:
        return None
    return consolidate(runs, wd.results(manifest), method=manifest.get("consolidate", "links"))


def statuses(wd: WorkDir, manifest: dict[str, Any]) -> list[RunStatus]:
    """Each (model, structure): frames written against frames expected, and its backend."""
    import json

    from scalms.io.trajectory import trajectory_info

    settings = MDSettings.from_dict(manifest["settings"])
    found = []
    for data in manifest["models"]:
        model = data["name"]
        summary_path = wd.checkpoints(model) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
        for s in manifest["structures"]:
            path = wd.trajectory(model, s["label"])
            info = trajectory_info(path) if path.exists() else None
            recorded = summary["runs"].get(s["label"], {})
            found.append(
                RunStatus(
                    model=model,
                    structure=s["label"],
                    n_frames=info.n_frames if info else 0,
                    expected_frames=settings.n_frames,
                    complete=bool(info and info.complete),
                    backend=recorded.get("backend", ""),
                    note=recorded.get("fallback", ""),
                )
            )
    return found


def status_rows(run: DynamicsRun) -> list[dict[str, Any]]:
    return [asdict(s) for s in run.statuses]
