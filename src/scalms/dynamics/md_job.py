"""The ``md`` job: molecular dynamics of many structures with one model, resumable.

Structures of one periodicity are packed into batches (TorchSim's ``BinningAutoBatcher`` sizes
them on a GPU); the packing is saved on the first start and reused on resume, because a batch's
random stream is shared by its structures. With ``auto``, a batch TorchSim cannot run goes to
ASE, structure by structure, from step 0, but only while its runs hold no frame past the
starting one: a run with frames continues from its checkpoint on its own engine, never from
step 0 over kept frames. A model that cannot load fails once; a full disk fails as a full disk.
A structure that blows up is stopped and marked failed, and the others go on.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ase.io import read

from scalms.dynamics import ase_md, torchsim_md
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun
from scalms.dynamics.workdir import readable_info
from scalms.errors import BackendUnavailable, ModelLoadError, ScalmsError
from scalms.files import CorruptFile, atomic_write_json, disk_full_error, is_disk_full, read_json
from scalms.io.trajectory import TrajectoryError
from scalms.models.loading import check_elements, load, software_versions
from scalms.workers.events import emit
from scalms.workers.memory import is_out_of_memory
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


class Job:
    def __init__(self, task: Task, device: str):
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
            self.summary = read_json(
                self._summary_path,
                "MD summary",
                "delete it; the trajectories and checkpoints still hold the runs",
            )
        self.complete, self.failed = {}, {}
        for label, run in self.runs.items():
            info = readable_info(Path(run["trajectory"]))
            self.complete[label] = bool(info and info.complete)
            if not self.complete[label]:
                # The trajectory says it first: a kill can come before the summary is written.
                recorded = self.summary["runs"].get(label, {}).get("failed", "")
                self.failed[label] = (info.failed if info else "") or recorded

    def _done(self, label: str) -> bool:
        """Finished, or stopped for good (a blow-up repeats on every try)."""
        return self.complete[label] or bool(self.failed.get(label))

    # -- trajectory files ------------------------------------------------------------------
    def _writer(self, label: str, backend: str, resume_step: int | None):
        from scalms.io.trajectory import TrajectoryWriter

        path = Path(self.runs[label]["trajectory"])
        if resume_step is not None:
            return self._resumed_writer(path, resume_step)
        # No checkpoint: the run starts again, whatever the file holds (nothing, a header that
        # never reached the disk, or frames no checkpoint can continue).
        path.unlink(missing_ok=True)
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

    def _resumed_writer(self, path: Path, step: int):
        """The trajectory cut back to the checkpoint at ``step``. It must hold every frame up
        to there, or the resumed run would end "complete" with a gap."""
        from scalms.io.trajectory import TrajectoryWriter

        fix = (
            f"delete it and the checkpoints in {self.checkpoints} to run model "
            f"'{self.entry.name}' again from step 0 (`scalms dynamics resume`)"
        )
        try:
            writer = TrajectoryWriter.resume(path, after_step=step)
        except TrajectoryError as err:
            raise CorruptFile(f"trajectory {path} is damaged ({err}); {fix}") from None
        expected = (step // self.settings.save_interval) * self.settings.save_interval
        if writer.last_step != expected:
            writer.close()
            raise CorruptFile(
                f"trajectory {path} ends at step {writer.last_step} but its checkpoint is at "
                f"step {step}: frames are missing; {fix}"
            )
        return writer

    def _record(
        self,
        labels: list[str],
        backend: str,
        note: str = "",
        seconds: float = 0.0,
        failed: dict[str, str] | None = None,
    ) -> None:
        for label in labels:
            why = (failed or {}).get(label, "")
            self.summary["runs"][label] = {
                "backend": backend,
                "fallback": note,
                "md_s": seconds,
                "failed": why,
            }
            if why:
                self.failed[label] = why
                emit("status", message=f"{label} stopped: {why}")
        atomic_write_json(self._summary_path, self.summary)
        atomic_write_json(self.task.output, self.summary)

    # -- engines ---------------------------------------------------------------------------
    def _torchsim_batch(self, labels: list[str], model, progress) -> dict[str, str]:
        checkpoint_path = batch_checkpoint(self.checkpoints, labels)
        resume = torchsim_md.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        step = None if resume is None else int(resume["step"])
        # A resumed batch holds the structures its checkpoint holds: those that blew up before
        # it had been dropped from the batch state.
        members = labels if resume is None else list(resume["labels"])
        runs: list[BatchRun] = []
        try:
            for label in members:
                writer = self._writer(label, "torchsim", step)
                runs.append(BatchRun(label, self.atoms[label], writer))
            return torchsim_md.run_batch(
                runs, model, self.settings, checkpoint_path, self.device, resume, progress
            )
        finally:
            for run in runs:
                run.writer.close()

    def _ase_run(self, label: str, calculator, progress, fresh: bool = False) -> str:
        checkpoint_path = self.checkpoints / f"{label}.ase.npz"
        if fresh:
            checkpoint_path.unlink(missing_ok=True)
        resume = ase_md.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        step = None if resume is None else int(resume["step"])
        run = BatchRun(label, self.atoms[label], self._writer(label, "ase", step))
        try:
            return ase_md.run_one(run, calculator, self.settings, checkpoint_path, resume, progress)
        finally:
            run.writer.close()

    def _load(self, backend: str):
        """The model for ``backend``, its elements checked. Weights that cannot load fail here,
        once, whatever the package raised: ASE would read the same file."""
        what = {"torchsim": "TorchSim model", "ase": "ASE calculator"}[backend]
        emit("status", message=f"loading {what}")
        try:
            loaded = load(self.entry, backend, self.device)
        except ScalmsError:
            raise
        except Exception as err:
            if is_out_of_memory(err):
                raise
            raise ModelLoadError(
                f"model '{self.entry.name}' cannot load as a {what} ({type(err).__name__}: {err})"
            ) from None
        check_elements(self.entry, loaded, {k: [v] for k, v in self.atoms.items()})
        return loaded

    def _calculator(self):
        if not hasattr(self, "_ase_calc"):
            self._ase_calc = self._load("ase")
        return self._ase_calc

    def run(self) -> None:
        """Run every unfinished structure; a full disk is raised as :class:`DiskFull`."""
        try:
            self._run()
        except Exception as err:
            if is_disk_full(err) and not isinstance(err, ScalmsError):
                raise disk_full_error(self.checkpoints, err) from err
            raise

    def _run(self) -> None:
        pending = [label for label in self.runs if not self._done(label)]
        n_steps = self.settings.n_steps
        progress = _Steps((len(self.runs) - len(pending)) * n_steps, len(self.runs) * n_steps)
        if not pending:
            return self._record([], "")
        backend_of = self._previous_backends()
        model = None
        if self.requested != "ase" and any(backend_of.get(lb) != "ase" for lb in pending):
            try:
                model = self._load("torchsim")
            except BackendUnavailable as err:
                if self.requested == "torchsim":
                    raise
                self.summary["notes"].append(f"{err}; used ASE")
                emit("fallback", message=f"{err}; used ASE")
        if model is not None:
            self._run_torchsim(model, backend_of, progress)
        for label in [lb for lb in pending if not self._done(lb)]:
            emit("status", message=f"ASE: {label}")
            started = time.perf_counter()
            why = self._ase_run(label, self._calculator(), progress)
            self.complete[label] = not why
            note = "; ".join(self.summary["notes"])
            self._record([label], "ase", note, time.perf_counter() - started, {label: why})
        return None

    def _frames_past_start(self, labels: list[str]) -> list[str]:
        """Runs of ``labels`` whose trajectories hold a frame after step 0."""
        found = []
        for label in labels:
            info = readable_info(Path(self.runs[label]["trajectory"]))
            if info is not None and info.n_frames > 1:
                found.append(label)
        return found

    def _run_torchsim(self, model, backend_of: dict[str, str], progress: _Steps) -> None:
        """Every batch with unfinished runs; a batch out of memory is halved and run again."""
        queue = list(self._batches(model))
        while queue:
            labels = queue.pop(0)
            if all(self._done(lb) for lb in labels):
                continue
            if any(backend_of.get(lb) == "ase" for lb in labels):
                continue
            emit("status", message=f"TorchSim: {len(labels)} structure(s) in one batch")
            started, done_before = time.perf_counter(), progress.done
            try:
                failed = self._torchsim_batch(labels, model, progress)
            except ScalmsError:
                raise
            except Exception as err:
                if is_disk_full(err):
                    raise
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
                with_frames = self._frames_past_start(labels)
                if with_frames:
                    raise ScalmsError(
                        f"TorchSim failed ({type(err).__name__}: {err}) after "
                        f"{', '.join(with_frames)} had frames on disk; they keep them up to "
                        "their last checkpoint, and `scalms dynamics resume` continues them"
                    ) from err
                if self.requested == "torchsim":
                    raise
                self._ase_instead(labels, err, progress)
                continue
            # Structures dropped before the checkpoint this batch resumed from stay failed.
            failed = {lb: self.failed[lb] for lb in labels if self.failed.get(lb)} | failed
            for label in labels:
                self.complete[label] = label not in failed
            self._record(labels, "torchsim", seconds=time.perf_counter() - started, failed=failed)

    def _ase_instead(self, labels: list[str], err: Exception, progress: _Steps) -> None:
        """Run a batch TorchSim failed on, before any frame past the start, with ASE."""
        note = f"TorchSim failed ({type(err).__name__}: {err}); ran with ASE from step 0"
        emit("fallback", message=note)
        failed = {}
        for label in labels:
            failed[label] = self._ase_run(label, self._calculator(), progress, fresh=True)
            self.complete[label] = not failed[label]
        self._record(labels, "ase", note, failed=failed)

    def _replace_batch(self, labels: list[str], parts: list[list[str]]) -> None:
        """Swap a batch for its parts in the saved plan, and drop its checkpoint."""
        plan = self.checkpoints / "batches.json"
        batches = read_json(plan, "batch plan", "delete it to plan the batches again")
        index = batches.index(labels)
        batches[index : index + 1] = parts
        atomic_write_json(plan, batches, indent=None)
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
            return read_json(plan, "batch plan", "delete it to plan the batches again")
        batches = plan_batches(
            list(self.runs.values()),
            self.atoms,
            model,
            self.device,
            self.task.params.get("max_batch_atoms"),
        )
        atomic_write_json(plan, batches, indent=None)
        return batches


def run(task: Task, device: str) -> None:
    Job(task, device).run()
