"""The ``cost`` job: time MD of each structure with one model, for ``scalms benchmark cost``.

The model is loaded once; then each structure runs ``n_steps`` of MD through scalms's own
engines (``torchsim_md.run_batch`` for TorchSim, ``ase_md.run_one`` for ASE), with frames
written as in ``scalms dynamics run``. The engines call back after every step, which times each
step. Before and after each run the child announces what it does (``cost_phase`` events with
its process id), so the parent's sampler can label its CPU, memory and GPU readings.

Modes:
- ``serial``: each structure alone (one system per run), as the thesis's benchmark did.
- ``batched``: each structure copied n times into one TorchSim batch for every n of
  ``batch_sizes``; with ``until_oom`` (CUDA) n keeps doubling past the list until the GPU runs
  out of memory, so the largest batch that fits is found. On CUDA, TorchSim's own estimate of
  the largest batch for one force evaluation (``determine_max_batch_size``) is recorded too.

The result file (``task.output``, JSON) holds one record per run and is rewritten after each, so
the runs a crash interrupts leave the finished ones.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ase import Atoms

from scalms.dynamics import ase_md, torchsim_md
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun
from scalms.errors import BackendUnavailable, ScalmsError
from scalms.files import atomic_write_json
from scalms.io.structures import read_frames
from scalms.models.loading import check_elements, load, software_versions
from scalms.workers.events import emit
from scalms.workers.memory import is_out_of_memory
from scalms.workers.task import Task

MB = 1024.0**2


class _StepClock:
    """Wall time of every MD step, from the engines' per-step callback; also the progress bar."""

    def __init__(self, progress: _Progress):
        self.progress = progress
        self.step_s: list[float] = []
        self.started = self._last = time.perf_counter()

    def __call__(self, n: int) -> None:
        now = time.perf_counter()
        self.step_s.append(now - self._last)
        self._last = now
        self.progress.add(1)


class _Progress:
    """Steps done over all runs, sent to the parent at most twice a second."""

    def __init__(self, total: int):
        self.done, self.total, self._sent = 0, total, 0.0
        emit("progress", done=0, total=total)

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._sent > 0.5 or self.done >= self.total:
            self._sent = now
            emit("progress", done=self.done, total=self.total)


def _writer(path: Path, atoms: Atoms, label: str, model: str, settings: MDSettings, extra: dict):
    from scalms.io.trajectory import TrajectoryWriter

    path.unlink(missing_ok=True)
    return TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=settings.time_step_fs,
        save_interval=settings.save_interval,
        model=model,
        structure=label,
        parameters={**settings.to_dict(), **extra},
        target_step=settings.n_steps,
    )


class Job:
    def __init__(self, task: Task, device: str):
        params = task.params
        self.task, self.device, self.entry = task, device, task.model
        self.settings = MDSettings.from_dict(params["settings"])
        self.mode = params.get("mode", "serial")
        self.warmup = int(params.get("warmup_steps", 1))
        self.trajectories = Path(params["trajectory_dir"])
        self.structures = {s["label"]: read_frames(s["path"])[-1] for s in params["structures"]}
        self.records: list[dict] = []
        self.versions = software_versions(self.entry)

    # -- engines ---------------------------------------------------------------------------
    def load(self) -> None:
        """TorchSim model unless ASE is asked for or the family has none (``auto``)."""
        requested = self.task.params.get("backend", "auto")
        frames = {label: [atoms] for label, atoms in self.structures.items()}
        self.note = ""
        started = time.perf_counter()
        if requested != "ase":
            try:
                emit("status", message="loading TorchSim model")
                self.model = load(self.entry, "torchsim", self.device)
                check_elements(self.entry, self.model, frames)
                self.backend = "torchsim"
                self.load_s = time.perf_counter() - started
                return
            except BackendUnavailable as err:
                if requested == "torchsim" or self.mode == "batched":
                    raise
                self.note = f"{err}; used ASE"
                emit("fallback", message=self.note)
        emit("status", message="loading ASE calculator")
        self.model = load(self.entry, "ase", self.device)
        check_elements(self.entry, self.model, frames)
        self.backend = "ase"
        self.load_s = time.perf_counter() - started

    def _md(self, label: str, copies: int, folder: Path, clock: _StepClock) -> None:
        atoms = self.structures[label]
        extra = {"backend": self.backend, "benchmark": "cost", "versions": self.versions}
        checkpoint = folder / f"{label}.checkpoint"
        try:
            self._engine(label, atoms, copies, folder, checkpoint, extra, clock)
        finally:
            checkpoint.unlink(missing_ok=True)  # only a resume would need it

    def _engine(self, label, atoms, copies, folder, checkpoint, extra, clock) -> None:
        if self.backend == "ase":
            run = BatchRun(
                label,
                atoms,
                _writer(
                    folder / f"{label}.h5md", atoms, label, self.entry.name, self.settings, extra
                ),
            )
            try:
                ase_md.run_one(run, self.model, self.settings, checkpoint, progress=clock)
            finally:
                run.writer.close()
            return
        names = [label] if copies == 1 else [f"{label}_{i}" for i in range(copies)]
        runs = [
            BatchRun(
                name,
                atoms,
                _writer(
                    folder / f"{name}.h5md", atoms, name, self.entry.name, self.settings, extra
                ),
            )
            for name in names
        ]
        try:
            torchsim_md.run_batch(
                runs, self.model, self.settings, checkpoint, self.device, progress=clock
            )
        finally:
            for run in runs:
                run.writer.close()

    # -- measurements ----------------------------------------------------------------------
    def measure(self, label: str, copies: int, progress: _Progress) -> dict:
        """Run MD of ``copies`` of ``label`` in one batch; the timing record of the run."""
        import torch

        atoms = self.structures[label]
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.empty_cache()  # what an earlier run cached must not count to this one
            torch.cuda.reset_peak_memory_stats(self.device)
        self.trajectories.mkdir(parents=True, exist_ok=True)
        if self.mode == "serial":
            folder = self.trajectories
        else:
            folder = Path(tempfile.mkdtemp(prefix=f"{label}-x{copies}-", dir=self.trajectories))
        phase = {"structure": label, "n_atoms": len(atoms), "n_systems": copies}
        emit("cost_phase", phase="md", pid=os.getpid(), **phase)
        clock = _StepClock(progress)
        status, note = "ok", self.note
        try:
            self._md(label, copies, folder, clock)
        except ScalmsError:
            raise
        except Exception as err:
            if not (cuda and is_out_of_memory(err)):
                raise
            status, note = "out of memory", f"{type(err).__name__}: {str(err)[:200]}"
        finally:
            emit("cost_phase", phase="idle", pid=os.getpid(), **phase)
            if self.mode != "serial":
                shutil.rmtree(folder, ignore_errors=True)
        wall_s = time.perf_counter() - clock.started
        timed = clock.step_s[self.warmup :] or clock.step_s
        s_per_step = statistics.fmean(timed) if timed and status == "ok" else float("nan")
        n_atoms = len(atoms) * copies
        peak = torch.cuda.max_memory_allocated(self.device) / MB if cuda else float("nan")
        return {
            "model": self.entry.name,
            "family": self.entry.family,
            "backend": self.backend,
            "device": self.device,
            "mode": self.mode,
            "structure": label,
            "n_atoms": len(atoms),
            "n_systems": copies,
            "total_atoms": n_atoms,
            "steps": len(clock.step_s),
            "warmup_steps": min(self.warmup, len(clock.step_s)),
            "time_step_fs": self.settings.time_step_fs,
            "torch_threads": torch.get_num_threads(),
            "load_s": self.load_s,
            "wall_s": wall_s,
            # The engine's set-up (state, first forces, the step-0 frame) ends in its first step.
            "first_step_s": clock.step_s[0] if clock.step_s else float("nan"),
            "s_per_step": s_per_step,
            "median_step_s": statistics.median(timed) if timed else float("nan"),
            "atom_steps_per_s": n_atoms / s_per_step,
            "compute_s_per_ps": s_per_step * 1000.0 / self.settings.time_step_fs,
            "ns_per_day": self.settings.time_step_fs * 1e-6 / s_per_step * 86400.0,
            "torch_peak_memory_MB": peak,
            "status": status,
            "note": note,
            "step_s": clock.step_s,
        }

    def _record(self, record: dict) -> None:
        self.records.append(record)
        payload = {"model": self.entry.name, "versions": self.versions, "records": self.records}
        atomic_write_json(self.task.output, payload, indent=1)

    def torchsim_estimate(self, label: str) -> int | None:
        """TorchSim's largest batch of ``label`` for one force evaluation (CUDA only)."""
        if not self.device.startswith("cuda"):
            return None
        import torch
        import torch_sim as ts
        from torch_sim.autobatching import determine_max_batch_size

        state = ts.initialize_state(
            [self.structures[label]], device=torch.device(self.device), dtype=self.model.dtype
        )
        return int(determine_max_batch_size(state, self.model))

    def run(self) -> None:
        emit("cost_phase", phase="loading", pid=os.getpid())
        threads = self.task.params.get("cpu_threads")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.load()
        steps = self.settings.n_steps
        if self.mode == "serial":
            progress = _Progress(steps * len(self.structures))
            for label in self.structures:
                emit("status", message=f"{label}: {len(self.structures[label])} atoms")
                self._record(self.measure(label, 1, progress))
            return
        sizes = sorted({int(n) for n in self.task.params["batch_sizes"]})
        until_oom = bool(self.task.params.get("until_oom")) and self.device.startswith("cuda")
        limit = int(self.task.params.get("max_systems", 4096))
        progress = _Progress(steps * len(sizes) * len(self.structures))
        for label in self.structures:
            estimate = self.torchsim_estimate(label)
            queue = list(sizes)
            while queue:
                copies = queue.pop(0)
                emit("status", message=f"{label}: {copies} in one batch")
                record = self.measure(label, copies, progress)
                record["torchsim_estimated_max_systems"] = estimate
                self._record(record)
                if record["status"] != "ok":
                    break  # a larger batch will not fit either
                if until_oom and not queue and copies * 2 <= limit:
                    queue.append(copies * 2)
                    progress.total += steps


def run(task: Task, device: str) -> None:
    Job(task, device).run()
