"""The ``descriptors`` job (child side): per-atom invariant descriptors of frames with one model.

``task.params = {"inputs": [{"label": str, "path": str}, ...]}``; each path holds frames of the
same atoms in the same order (a trajectory). Each input gets its own HDF5 file
(`input_output(task.output, label)`) with a ``descriptors`` dataset (frames, atoms, width) in
float32 and attributes saying how they were made, renamed into place when whole: a child killed
on the third input leaves the first two for the cache. ``task.output`` is written last, with the
same attributes over all inputs: its presence says the job finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.files import atomic_path
from scalms.io.structures import check_structure, read_frames
from scalms.models.loading import (
    Describer,
    check_descriptors,
    check_elements,
    load_describer,
    software_versions,
)
from scalms.workers.events import emit
from scalms.workers.task import Task

FORMAT = "scalms-descriptors"
VERSION = 1


@dataclass(frozen=True)
class DescriptorInput:
    """One input file: its label (the HDF5 group), its path and its frames."""

    label: str
    path: Path
    frames: list[Atoms]


def _check_same_atoms(label: str, path: Path, frames: list[Atoms]) -> None:
    """Refuse an input whose frames do not hold the same elements in the same order: one
    (frames, atoms, width) array needs row i to be the same atom in every frame."""
    first = frames[0].numbers
    for i, atoms in enumerate(frames[1:], start=1):
        if len(atoms) != len(first) or not np.array_equal(atoms.numbers, first):
            raise ScalmsError(
                f"input '{label}' ({path}): frame {i} holds {len(atoms)} atoms "
                f"{atoms.get_chemical_formula()} where frame 0 holds {len(first)} "
                f"{frames[0].get_chemical_formula()} (or the same ones in another order); "
                "every frame of one input needs the same atoms in the same order: "
                "give each trajectory as its own input"
            )


def read_inputs(params: dict) -> list[DescriptorInput]:
    """The task's inputs, read and checked (labels unique, frames usable, same atoms)."""
    specs = params.get("inputs") or []
    if not specs:
        raise ScalmsError("the descriptors task lists no inputs; give at least one frames file")
    labels = [spec["label"] for spec in specs]
    for label in labels:
        if labels.count(label) > 1 or not label or "/" in label:
            raise ScalmsError(
                f"input label '{label}' is empty, repeated or holds '/'; "
                "labels name HDF5 groups: give each input a unique plain name"
            )
    inputs = []
    for spec in specs:
        path = Path(spec["path"])
        frames = read_frames(path)
        for i, atoms in enumerate(frames):
            check_structure(atoms, f"{path}, frame {i}")
        _check_same_atoms(spec["label"], path, frames)
        inputs.append(DescriptorInput(spec["label"], path, frames))
    return inputs


@dataclass
class _Timer:
    """Seconds spent loading the model (and checking its elements) and in describer calls."""

    load_time_s: float = 0.0
    compute_time_s: float = 0.0


class _Progress:
    """Frames described so far, reported to the parent after each one."""

    def __init__(self, total: int):
        self.done, self.total = 0, total
        emit("progress", done=0, total=total)

    def step(self) -> None:
        self.done += 1
        emit("progress", done=self.done, total=self.total)


def _describe(describer: Describer, item: DescriptorInput, index: int) -> np.ndarray:
    """Descriptors of frame ``index`` of ``item``, checked for shape and finiteness."""
    atoms = item.frames[index]
    values = np.asarray(describer(atoms))
    if values.ndim != 2 or values.shape[0] != len(atoms):
        raise RuntimeError(
            f"describer returned shape {values.shape} for {len(atoms)} atoms ({describer.source})"
        )
    if not np.isfinite(values).all():
        raise ScalmsError(
            f"input '{item.label}' ({item.path}), frame {index}: the model gave non-finite "
            "descriptors; check that frame (atoms far too close, or far outside what the "
            "model was trained on)"
        )
    return values


def input_output(output: Path, label: str) -> Path:
    """The file of one input's descriptors, beside the job's ``output``."""
    return output.with_name(f"{output.stem}.{label}{output.suffix}")


def _write_input(
    handle: h5py.File,
    describer: Describer,
    item: DescriptorInput,
    progress: _Progress,
) -> float:
    """Describe every frame of ``item`` into ``handle``, frame by frame (memory: one frame);
    return the seconds spent in the describer."""
    handle.attrs["path"] = str(item.path)
    dataset = None
    compute_s = 0.0
    for index in range(len(item.frames)):
        started = time.perf_counter()
        values = _describe(describer, item, index)
        compute_s += time.perf_counter() - started
        if dataset is None:
            shape = (len(item.frames), *values.shape)
            dataset = handle.create_dataset("descriptors", shape=shape, dtype="float32")
        elif values.shape[1] != dataset.shape[2]:
            raise RuntimeError(
                f"descriptor width changed from {dataset.shape[2]} to {values.shape[1]}"
            )
        dataset[index] = values.astype(np.float32)
        progress.step()
    return compute_s


def run(task: Task, device: str) -> None:
    """Describe every frame of every input with ``task.model``; write ``task.output``."""
    check_descriptors(task.model)
    inputs = read_inputs(task.params)
    emit("status", message=f"loading {task.model.name} descriptors on {device}")
    started = time.perf_counter()
    describer = load_describer(task.model, device)
    check_elements(task.model, describer.loaded, {item.label: item.frames for item in inputs})
    timer = _Timer(load_time_s=time.perf_counter() - started)
    emit("status", message=f"{describer.source} on {device}")
    progress = _Progress(sum(len(item.frames) for item in inputs))
    made = {
        "format": FORMAT,
        "version": VERSION,
        "model": task.model.name,
        "family": task.model.family,
        "device": device,
        "source": describer.source,
        "load_time_s": timer.load_time_s,
        "versions": json.dumps(software_versions(task.model)),
    }
    for item in inputs:
        with atomic_path(input_output(task.output, item.label)) as tmp, h5py.File(tmp, "w") as f:
            compute_s = _write_input(f, describer, item, progress)
            timer.compute_time_s += compute_s
            f.attrs.update(made)
            f.attrs.update(
                width=int(describer.width),
                compute_time_s=compute_s,
                n_atom_frames=len(item.frames) * len(item.frames[0]),
            )
            f.flush()
            f.attrs["complete"] = True
    with atomic_path(task.output) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(made)
        handle.attrs.update(
            width=int(describer.width),
            compute_time_s=timer.compute_time_s,
            n_atom_frames=sum(len(i.frames) * len(i.frames[0]) for i in inputs),
            inputs=json.dumps([item.label for item in inputs]),
            complete=True,
        )
