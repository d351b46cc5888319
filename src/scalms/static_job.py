"""The ``static`` job: evaluate every frame of every structure with one model."""

from __future__ import annotations

import time
from pathlib import Path

from ase import Atoms

from scalms.config import ModelEntry
from scalms.errors import BackendUnavailable, ScalmsError
from scalms.io.static_results import add_run, create_file, mark_complete, write_structure
from scalms.io.structures import read_frames
from scalms.models.loading import check_elements, load, software_versions
from scalms.static import StaticResult, evaluate_ase, evaluate_torchsim
from scalms.workers.events import emit
from scalms.workers.task import Task


class _Counter:
    """Frames done across backends, reported to the parent as they finish."""

    def __init__(self, total: int):
        self.done, self.total = 0, total
        emit("progress", done=0, total=total)

    def __call__(self, n: int) -> None:
        self.done += n
        emit("progress", done=self.done, total=self.total)


class _Timer:
    """Seconds spent loading models and computing, kept apart: loading dominates short runs."""

    def __init__(self):
        self.load_s = self.compute_s = 0.0

    def add(self, what: str, since: float) -> None:
        setattr(self, what, getattr(self, what) + time.perf_counter() - since)


def _evaluate_with(backend, entry, device, frames, max_batch_atoms, progress, timer):
    """Load ``entry`` for ``backend``, check its elements, evaluate every frame; time both."""
    label = {"torchsim": "TorchSim model", "ase": "ASE calculator"}[backend]
    emit("status", message=f"loading {label}")
    started = time.perf_counter()
    loaded = load(entry, backend, device)
    check_elements(entry, loaded, frames)
    timer.add("load_s", started)
    emit("status", message=f"{label} on {device}")
    all_frames = [atoms for atoms_list in frames.values() for atoms in atoms_list]
    started = time.perf_counter()
    if backend == "torchsim":
        result = evaluate_torchsim(all_frames, loaded, device, max_batch_atoms, progress)
    else:
        result = evaluate_ase(all_frames, loaded, progress)
    timer.add("compute_s", started)
    return result


def evaluate(
    entry: ModelEntry,
    requested: str,
    device: str,
    frames: dict[str, list[Atoms]],
    max_batch_atoms: int | None,
    progress: _Counter,
    timer: _Timer,
) -> tuple[StaticResult, str, str]:
    """Evaluate with the ``requested`` backend; ``auto`` is TorchSim with ASE as the fallback.

    Returns the result, the backend that produced it and why a fallback happened ("" if none).
    """
    if requested == "ase":
        return _evaluate_with("ase", entry, device, frames, None, progress, timer), "ase", ""
    done_before = progress.done
    try:
        result = _evaluate_with("torchsim", entry, device, frames, max_batch_atoms, progress, timer)
        return result, "torchsim", ""
    except BackendUnavailable as err:
        if requested == "torchsim":
            raise
        note = f"{err}; used ASE"
    except ScalmsError:
        raise  # unusable weights or elements: ASE would fail the same way, so say it once
    except Exception as err:  # a failed batch (often out of GPU memory): ASE is the fallback
        if requested == "torchsim":
            raise
        note = f"TorchSim failed ({type(err).__name__}: {err}); used ASE"
    emit("fallback", message=note)
    progress.done = done_before
    return _evaluate_with("ase", entry, device, frames, None, progress, timer), "ase", note


def run(task: Task, device: str) -> None:
    params = task.params
    structures = {s["label"]: Path(s["path"]) for s in params["structures"]}
    frames = {label: read_frames(path) for label, path in structures.items()}
    backends = params.get("backends", ["auto"])
    progress = _Counter(sum(len(f) for f in frames.values()) * len(backends))
    handle = create_file(task.output)
    try:
        for requested in backends:
            timer = _Timer()
            result, backend, note = evaluate(
                task.model,
                requested,
                device,
                frames,
                params.get("max_batch_atoms"),
                progress,
                timer,
            )
            name = task.model.name if len(backends) == 1 else f"{task.model.name}@{requested}"
            group = add_run(
                handle,
                name,
                {
                    "model": task.model.name,
                    "family": task.model.family,
                    "backend": backend,
                    "requested_backend": requested,
                    "fallback": note,
                    "device": device,
                    "versions": software_versions(task.model),
                    "load_time_s": timer.load_s,
                    "compute_time_s": timer.compute_s,
                },
            )
            _store(group, frames, structures, result)
            group.attrs["complete"] = True
            handle.flush()
        mark_complete(handle)
    finally:
        handle.close()


def _store(group, frames, structures, result: StaticResult) -> None:
    """Split the flat result over the structures, in the order they were given."""
    start = 0
    for label, atoms_list in frames.items():
        stop = start + len(atoms_list)
        part = StaticResult(
            energy=result.energy[start:stop],
            forces=result.forces[start:stop],
            stress=result.stress[start:stop],
        )
        write_structure(group, label, str(structures[label]), atoms_list, part)
        start = stop
