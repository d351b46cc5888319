"""The ``md`` job: molecular dynamics of many structures with one model, resumable.

Structures of one periodicity are packed into batches (TorchSim's ``BinningAutoBatcher`` sizes
them on a GPU); the packing is saved on the first start and reused on resume, because a batch's
random stream is shared by its structures. With ``auto``, a batch TorchSim cannot run goes to
ASE, structure by structure, from step 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ase.io import read

from scalms.dynamics import ase_md, torchsim_md
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun
from scalms.errors import BackendUnavailable, ScalmsError
from scalms.models.loading import check_elements, load, software_versions
from scalms.workers.events import emit
from scalms.workers.task import Task


class _Steps:
    """Structure-steps done, sent to the parent at most a few times a second."""

    def __init__(self, done: int, total: int):
        self.done, self.total, self._sent = done, total, 0.0
        emit("progress", done=done, total=total)

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._sent > 0.5 or self.done >= self.total:
            self._sent = now
            emit("progress", done=self.done, total=self.total)


def plan_batches(runs: list[dict], atoms: dict, model, device: str, max_batch_atoms) -> list[list]:
    """Labels grouped into batches: one periodicity per batch, sized by atom count."""
    import torch
    import torch_sim as ts

    from scalms.static import torchsim_batcher

    by_pbc: dict[tuple[bool, ...], list[str]] = {}
    for run in runs:
        key = tuple(bool(p) for p in atoms[run["label"]].pbc)
        by_pbc.setdefault(key, []).append(run["label"])
    batches = []
    for labels in by_pbc.values():
        state = ts.initialize_state(
            [atoms[label] for label in labels], device=torch.device(device), dtype=model.dtype
        )
        batcher = torchsim_batcher(model, device, max_batch_atoms)
        batcher.load_states(state)
        batches.extend([[labels[i] for i in sorted(b)] for b in batcher.index_bins])
    return batches


def batch_checkpoint(folder: Path, labels: list[str]) -> Path:
    """A batch's checkpoint, named by its members so that a re-planned batch never reuses it."""
    digest = hashlib.sha1("\n".join(labels).encode()).hexdigest()[:12]
    return folder / f"batch-{digest}.pt"


def is_out_of_memory(err: BaseException) -> bool:
    return "out of memory" in str(err).lower()


class Job:
    def __init__(self, task: Task, device: str):
        from scalms.io.trajectory import trajectory_info

        params = task.params
        self.task, self.device = task, device
        self.entry = task.model
        self.settings = MDSettings.from_dict(params["settings"])
        self.runs = {run["label"]: run for run in params["runs"]}
        self.atoms = {label: read(run["structure"]) for label, run in self.runs.items()}
        self.checkpoints = Path(params["checkpoint_dir"])
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.requested = params.get("backend", "auto")
        self.parameters = dict(params.get("parameters", {}))
        # Kept beside the checkpoints so a resume adds to what the first start recorded.
        self._summary_path = self.checkpoints / "summary.json"
        self.summary: dict = {"model": self.entry.name, "runs": {}, "notes": []}
        if self._summary_path.exists():
            self.summary = json.loads(self._summary_path.read_text())
        self.complete = {
            label: Path(run["trajectory"]).exists()
            and trajectory_info(Path(run["trajectory"])).complete
            for label, run in self.runs.items()
        }

    # -- trajectory files ------------------------------------------------------------------
    def _writer(self, label: str, backend: str, resume_step: int | None):
        from scalms.io.trajectory import TrajectoryWriter

        path = Path(self.runs[label]["trajectory"])
        if resume_step is not None:
            return TrajectoryWriter.resume(path, after_step=resume_step)
        path.unlink(missing_ok=True)  # a run that never reached its first checkpoint restarts
        path.parent.mkdir(parents=True, exist_ok=True)
        atoms = self.atoms[label]
        return TrajectoryWriter.create(
            path,
            numbers=atoms.numbers,
            masses=atoms.get_masses(),
            pbc=atoms.pbc,
            time_step_fs=self.settings.time_step_fs,
            save_interval=self.settings.save_interval,
            model=self.entry.name,
            structure=label,
            parameters={
                **self.parameters,
                **self.settings.to_dict(),
                "backend": backend,
                "family": self.entry.family,
                "device": self.device,
                "versions": software_versions(self.entry),
            },
            target_step=self.settings.n_steps,
            velocities=self.settings.save_velocities,
            forces=self.settings.save_forces,
        )

    def _record(self, labels, backend: str, note: str = "", seconds: float = 0.0) -> None:
        for label in labels:
            self.summary["runs"][label] = {"backend": backend, "fallback": note, "md_s": seconds}
        text = json.dumps(self.summary, indent=2)
        self._summary_path.write_text(text)
        Path(self.task.output).write_text(text)

    # -- engines ---------------------------------------------------------------------------
    def _torchsim_batch(self, labels: list[str], model, progress) -> None:
        checkpoint_path = batch_checkpoint(self.checkpoints, labels)
        resume = torchsim_md.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        step = None if resume is None else int(resume["step"])
        runs = [BatchRun(lb, self.atoms[lb], self._writer(lb, "torchsim", step)) for lb in labels]
        try:
            torchsim_md.run_batch(
                runs, model, self.settings, checkpoint_path, self.device, resume, progress
            )
        finally:
            for run in runs:
                run.writer.close()

    def _ase_run(self, label: str, calculator, progress, fresh: bool = False) -> None:
        checkpoint_path = self.checkpoints / f"{label}.ase.npz"
        if fresh:
            checkpoint_path.unlink(missing_ok=True)
        resume = ase_md.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        step = None if resume is None else int(resume["step"])
        run = BatchRun(label, self.atoms[label], self._writer(label, "ase", step))
        try:
            ase_md.run_one(run, calculator, self.settings, checkpoint_path, resume, progress)
        finally:
            run.writer.close()

    def _calculator(self):
        if not hasattr(self, "_ase_calc"):
            emit("status", message="loading ASE calculator")
            self._ase_calc = load(self.entry, "ase", self.device)
            check_elements(self.entry, self._ase_calc, {k: [v] for k, v in self.atoms.items()})
        return self._ase_calc

    def run(self) -> None:
        pending = [label for label in self.runs if not self.complete[label]]
        n_steps = self.settings.n_steps
        progress = _Steps((len(self.runs) - len(pending)) * n_steps, len(self.runs) * n_steps)
        if not pending:
            return self._record([], "")
        backend_of = self._previous_backends()
        model = None
        if self.requested != "ase" and any(backend_of.get(lb) != "ase" for lb in pending):
            try:
                emit("status", message="loading TorchSim model")
                model = load(self.entry, "torchsim", self.device)
                check_elements(self.entry, model, {k: [v] for k, v in self.atoms.items()})
            except BackendUnavailable as err:
                if self.requested == "torchsim":
                    raise
                self.summary["notes"].append(f"{err}; used ASE")
                emit("fallback", message=f"{err}; used ASE")
        if model is not None:
            self._run_torchsim(model, backend_of, progress)
        for label in [lb for lb in pending if not self.complete[lb]]:
            emit("status", message=f"ASE: {label}")
            started = time.perf_counter()
            self._ase_run(label, self._calculator(), progress)
            self.complete[label] = True
            note = "; ".join(self.summary["notes"])
            self._record([label], "ase", note, time.perf_counter() - started)
        return None

    def _run_torchsim(self, model, backend_of: dict[str, str], progress: _Steps) -> None:
        """Every batch with unfinished runs; a batch out of memory is halved and run again."""
        queue = list(self._batches(model))
        while queue:
            labels = queue.pop(0)
            todo = [lb for lb in labels if not self.complete[lb]]
            if not todo or any(backend_of.get(lb) == "ase" for lb in labels):
                continue
            emit("status", message=f"TorchSim: {len(labels)} structure(s) in one batch")
            started, done_before = time.perf_counter(), progress.done
            try:
                self._torchsim_batch(labels, model, progress)
            except ScalmsError:
                raise
            except Exception as err:
                progress.done = done_before  # the batch's steps are done again
                if is_out_of_memory(err) and len(labels) > 1:
                    halves = [labels[: len(labels) // 2], labels[len(labels) // 2 :]]
                    note = (
                        f"TorchSim ran out of memory with {len(labels)} structures in a batch; "
                        f"running them as {len(halves[0])} + {len(halves[1])} from step 0"
                    )
                    emit("fallback", message=note)
                    self.summary["notes"].append(note)
                    self._replace_batch(labels, halves)
                    queue[:0] = halves
                    continue
                if self.requested == "torchsim":
                    raise
                note = f"TorchSim failed ({type(err).__name__}: {err}); ran with ASE from step 0"
                emit("fallback", message=note)
                for label in labels:
                    self._ase_run(label, self._calculator(), progress, fresh=True)
                    self.complete[label] = True
                self._record(labels, "ase", note)
                continue
            for label in labels:
                self.complete[label] = True
            self._record(labels, "torchsim", seconds=time.perf_counter() - started)

    def _replace_batch(self, labels: list[str], parts: list[list[str]]) -> None:
        """Swap a batch for its parts in the saved plan, and drop its checkpoint."""
        plan = self.checkpoints / "batches.json"
        batches = json.loads(plan.read_text())
        index = batches.index(labels)
        batches[index : index + 1] = parts
        plan.write_text(json.dumps(batches))
        batch_checkpoint(self.checkpoints, labels).unlink(missing_ok=True)

    def _previous_backends(self) -> dict[str, str]:
        """Which engine each unfinished run started on: a resume must stay on it."""
        found = {}
        for label in self.runs:
            if (self.checkpoints / f"{label}.ase.npz").exists():
                found[label] = "ase"
        return found

    def _batches(self, model) -> list[list[str]]:
        plan = self.checkpoints / "batches.json"
        if plan.exists():
            return json.loads(plan.read_text())
        batches = plan_batches(
            list(self.runs.values()),
            self.atoms,
            model,
            self.device,
            self.task.params.get("max_batch_atoms"),
        )
        plan.write_text(json.dumps(batches))
        return batches


def run(task: Task, device: str) -> None:
    Job(task, device).run()
