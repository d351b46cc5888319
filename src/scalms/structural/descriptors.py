"""Per-atom descriptors of selected runs, from the cache or from one child in the model's
environment (job ``descriptors``, `scalms.structural.descriptor_job`).

This is the section's parent side, and the entry point other work reuses (active learning
thins frames in descriptor space through it).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.structural.cache import CachedDescriptors, DescriptorCache, cache_key, model_identity
from scalms.structural.descriptor_job import input_output
from scalms.structural.selection import SelectedRun
from scalms.workers.fanout import Reporter, run_models
from scalms.workers.task import Task


class DescriptorJobFailed(ScalmsError):
    """The child computing descriptors failed; its log says why."""

    exit_code = 1


@dataclass(frozen=True)
class RunDescriptors:
    """Descriptors (F, N, W) of one selected run; ``cached`` when read from the cache."""

    run: SelectedRun
    values: np.ndarray
    source: str
    compute_time_s: float
    cached: bool
    versions: str = "{}"

    @property
    def width(self) -> int:
        return int(self.values.shape[-1])


@dataclass(frozen=True)
class DescriptorSet:
    """Descriptors of every run, and what getting them cost this time."""

    runs: list[RunDescriptors]
    model: str
    wall_s: float
    child_log: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def cache_hits(self) -> int:
        return sum(r.cached for r in self.runs)

    @property
    def computed_time_s(self) -> float:
        """Seconds of descriptor computation this call did (0 when all came from the cache)."""
        return sum(r.compute_time_s for r in self.runs if not r.cached)

    @property
    def n_atom_frames(self) -> int:
        return sum(r.run.n_atom_frames for r in self.runs)

    @property
    def source(self) -> str:
        return self.runs[0].source


def _write_inputs(runs: list[SelectedRun], folder: Path) -> list[dict]:
    from ase.io import write

    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for run in runs:
        path = folder / f"{run.name}.extxyz"
        write(path, run.atoms(), format="extxyz")
        inputs.append({"label": run.name, "path": str(path)})
    return inputs


def _read_input_file(path: Path, run: SelectedRun) -> CachedDescriptors | None:
    """One input's descriptors as the child wrote them, or None when the child did not get to
    it (the file is absent: it is renamed into place only when whole)."""
    from scalms.structural.descriptor_job import FORMAT, VERSION

    if not path.is_file():
        return None
    with h5py.File(path, "r") as handle:
        attrs = handle.attrs
        if attrs.get("format") != FORMAT or attrs.get("version") != VERSION:
            raise DescriptorJobFailed(
                f"{path} is not a descriptor file of this scalms (format {attrs.get('format')!r}, "
                f"version {attrs.get('version')!r}); is the model environment's scalms older?"
            )
        values = handle["descriptors"][()]
        expected = (run.trajectory.n_frames, run.trajectory.n_atoms)
        if values.shape[:2] != expected or not attrs.get("complete", False):
            raise DescriptorJobFailed(
                f"{path} holds {values.shape[:2]} descriptors for {run.name}, expected {expected}"
            )
        return CachedDescriptors(
            values,
            str(attrs["source"]),
            float(attrs["compute_time_s"]),
            str(attrs.get("versions", "{}")),
        )


def compute_descriptors(
    runs: list[SelectedRun],
    entry: ModelEntry,
    workdir: Path,
    *,
    cache: DescriptorCache | None = None,
    use_cache: bool = True,
    device: str = "auto",
    seed: int = 0,
    reporter: Reporter | None = None,
    timeout_s: float | None = None,
) -> DescriptorSet:
    """Descriptors of every run with ``entry``: cached ones are read, the others computed by one
    child and stored in the cache (also with ``use_cache=False``, which only skips reading).

    ``workdir`` holds the child's inputs, log and output while it runs; the inputs and output are
    removed once the cache holds them (the log stays). A child that fails after finishing some
    runs leaves those in the cache, so the next call computes only the rest.
    """
    from scalms.models.loading import check_descriptors

    check_descriptors(entry)
    started = time.perf_counter()
    cache = cache or DescriptorCache()
    identity = model_identity(entry)
    keys = {run.name: cache_key(run, identity) for run in runs}
    found: dict[str, CachedDescriptors] = {}
    if use_cache:
        for run in runs:
            hit = cache.load(keys[run.name])
            if hit is not None:
                found[run.name] = hit
    missing = [run for run in runs if run.name not in found]
    log = None
    notes: list[str] = []
    if missing:
        inputs_dir = workdir / "descriptor_inputs"
        inputs = _write_inputs(missing, inputs_dir)
        output = workdir / entry.name / "descriptors.h5"
        for run in missing:  # an earlier, killed run's files describe other frames
            input_output(output, run.name).unlink(missing_ok=True)

        def make_task(model: ModelEntry, model_dir: Path) -> Task:
            return Task(
                kind="descriptors",
                model=model,
                output=model_dir / "descriptors.h5",
                device=device,
                seed=seed,
                params={"inputs": inputs},
            )

        (outcome,) = run_models([entry], make_task, workdir, reporter=reporter, timeout_s=timeout_s)
        log = outcome.log
        # What the child finished is kept, even when it failed later: one file per input.
        for run in missing:
            computed = _read_input_file(input_output(output, run.name), run)
            if computed is None:
                continue
            found[run.name] = computed
            try:
                cache.store(keys[run.name], computed, run, entry.name)
            except OSError as err:  # a read-only or full cache costs the next run, not this one
                notes.append(f"descriptors of {run.name} not cached ({err})")
        if not outcome.ok:
            kept = sum(run.name in found for run in missing)
            where = f" (log: {outcome.log})" if outcome.log else ""
            saved = f"; {kept} of {len(missing)} runs were described and cached" if kept else ""
            message = f"descriptors with model '{entry.name}': {outcome.reason}{where}{saved}"
            # Never started (no environment) or refused (elements, weights): the user's to fix,
            # exit 2; a crash: exit 1.
            if outcome.log is None or outcome.refused:
                raise ScalmsError(message)
            raise DescriptorJobFailed(message)
        for run in missing:
            input_output(output, run.name).unlink(missing_ok=True)
        output.unlink(missing_ok=True)
        shutil.rmtree(inputs_dir, ignore_errors=True)
    described = [
        RunDescriptors(
            run=run,
            values=found[run.name].values,
            source=found[run.name].source,
            compute_time_s=found[run.name].compute_time_s,
            cached=run.name not in {m.name for m in missing},
            versions=found[run.name].versions,
        )
        for run in runs
    ]
    widths = {d.width for d in described}
    if len(widths) > 1:
        raise ScalmsError(
            f"descriptors of different widths {sorted(widths)} cannot be pooled; "
            "rerun with --no-cache if the model changed"
        )
    return DescriptorSet(described, entry.name, time.perf_counter() - started, log, notes)
