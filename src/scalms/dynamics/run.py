"""MD of many structures with many models: the parent's side of ``scalms dynamics run|resume``.

Each model runs in a child in its own environment (``scalms.dynamics.md_job``), which batches the
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
from scalms.devices import check_device, check_gpu
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.workdir import DEFAULT_DATA_FILE, WorkDir, readable_info
from scalms.errors import ScalmsError
from scalms.files import WorkDirLock, read_json
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
    failed: str = ""
    """Why the run was stopped before its end (e.g. it blew up); "" when it was not."""

    @property
    def state(self) -> str:
        return "complete" if self.complete else "failed" if self.failed else "incomplete"


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

    @property
    def failed_runs(self) -> list[RunStatus]:
        """Runs stopped for good (a blow-up): a resume does not change them."""
        return [s for s in self.statuses if s.failed and not s.complete]

    @property
    def unfinished(self) -> list[RunStatus]:
        """Runs a resume can continue."""
        return [s for s in self.statuses if not s.complete and not s.failed]


def check_inputs(atoms_by_label: dict[str, Any], settings: MDSettings, backend: str) -> None:
    """What a child would refuse only after its 20-30 s start-up, refused here at once: NPT of
    a structure without a fully periodic cell, and protocols ASE cannot run."""
    import numpy as np

    problems = []
    if settings.ensemble == "npt":
        open_cells = [label for label, a in atoms_by_label.items() if not np.all(a.pbc)]
        if open_cells:
            problems.append(
                f"NPT needs a periodic cell on all three axes; {', '.join(open_cells)} "
                "is not periodic (run nanoparticles in nvt-langevin, nvt-nose-hoover or nve)"
            )
        if backend == "ase":
            problems.append("NPT runs on the TorchSim backend only; use --backend auto or torchsim")
    if backend == "ase" and settings.temperature_program and settings.ensemble != "nvt-langevin":
        problems.append(
            "temperature programs run on ASE with nvt-langevin only; use it, or --backend auto"
        )
    if problems:
        raise ScalmsError("; ".join(problems))


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
    check_gpu(device)
    if backend not in ("auto", "torchsim", "ase"):
        raise ScalmsError(f"unknown backend '{backend}' for MD; use auto, torchsim or ase")
    if consolidate not in CONSOLIDATE:
        raise ScalmsError(f"unknown consolidation '{consolidate}'; use links or repack")
    if Path(data_file).name != data_file or data_file in ("", ".", ".."):
        # The results file lives in the working dir; a path would write outside it.
        raise ScalmsError(
            f"--data-file-name must be a file name without folders (it is written inside the "
            f"working dir), got {data_file!r}"
        )
    if remove_trajectories and consolidate != "repack":
        raise ScalmsError(
            "removing the trajectory files needs --consolidate repack: links would point nowhere"
        )
    if not entries:
        raise ScalmsError("no models selected")
    sources = check_readable(structures)
    starts = {}
    for source in sources:
        frames = read_frames(source.path)
        try:
            starts[source.label] = frames[frame]
        except IndexError:
            raise ScalmsError(f"{source.path} has {len(frames)} frames; no frame {frame}") from None
    check_inputs(starts, settings, backend)
    wd = WorkDir(Path(workdir))
    # One writer per working directory, for the whole command: a second run or a resume on
    # the same folder (a requeued job racing a manual resume) is refused with one line.
    with WorkDirLock(wd.root, "scalms dynamics run"):
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
            write(wd.structure(source.label), starts[source.label], format="extxyz")
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
        manifest = wd.write_manifest(manifest)
        return execute(wd, manifest, timeout_s=timeout_s, reporter=reporter)


def resume_dynamics(
    workdir: Path, *, timeout_s: float | None = None, reporter: Reporter | None = None
) -> DynamicsRun:
    """Continue the unfinished runs of ``workdir`` from their last checkpoints."""
    wd = WorkDir(Path(workdir))
    wd.read_manifest()  # a folder that holds no run is refused before a lock file is written
    with WorkDirLock(wd.root, "scalms dynamics resume"):
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

    # Stopped runs (a blow-up) count as done: a new child would stop them at the same step.
    finished = {(s.model, s.structure) for s in statuses(wd, manifest) if s.complete or s.failed}
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

    # A file killed before its header reached the disk holds nothing to consolidate.
    runs = {
        (entry.name, label): wd.trajectory(entry.name, label)
        for entry in entries
        for label in labels
        if readable_info(wd.trajectory(entry.name, label)) is not None
    }
    if not runs:
        return None
    return consolidate(runs, wd.results(manifest), method=manifest.get("consolidate", "links"))


def statuses(wd: WorkDir, manifest: dict[str, Any]) -> list[RunStatus]:
    """Each (model, structure): frames written against frames expected, and its backend."""

    settings = MDSettings.from_dict(manifest["settings"])
    found = []
    for data in manifest["models"]:
        model = data["name"]
        summary_path = wd.checkpoints(model) / "summary.json"
        summary = {"runs": {}}
        if summary_path.exists():
            summary = read_json(
                summary_path, "MD summary", "delete it; the trajectories still hold the runs"
            )
        for s in manifest["structures"]:
            info = readable_info(wd.trajectory(model, s["label"]))
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
                    failed=(info.failed if info else "") or recorded.get("failed", ""),
                )
            )
    return found


def status_rows(run: DynamicsRun) -> list[dict[str, Any]]:
    return [asdict(s) for s in run.statuses]
