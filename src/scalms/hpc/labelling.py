"""Labelling rattled frames: the parent side of ``scalms hpc rattle``.

A DFT code (``scalms.hpc.dft.is_dft_code``) labels in this process: it is a program started
through ASE, with nothing to import that could clash. Any other calculator name is a model of
model_config.yaml and labels in its own child, in its own environment
(``scalms.hpc.rattle_job`` through ``scalms.workers.fanout.run_models``). Both run the same loop,
:func:`label_slots`, which appends each frame to the reference file as it finishes
(:mod:`scalms.hpc.reference_file`), so a killed job keeps its frames and a rerun continues.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from scalms.errors import ScalmsError
from scalms.hpc.labels import InfoValue, Labeller, SCFNotConverged, labelled_frame, summarize
from scalms.hpc.rattle import InputFrames, RattleSpec, composition, make_candidate
from scalms.hpc.reference_file import ReferenceFile

COMMAND = "scalms hpc rattle"


class RattleLog(Protocol):
    """Where a labelling job reports: a line per frame (or refusal), and the count so far."""

    def line(self, text: str) -> None: ...
    def progress(self, done: int, total: int) -> None: ...


class SilentLog:
    def line(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass


@dataclass
class RattleOutcome:
    """How a rattle job ended. ``done`` counts this shard's frames on disk, ``computed`` those
    this run added; ``stopped`` says why the job stopped short ('' when it finished)."""

    out: Path
    total: int
    done: int
    computed: int
    refused: int
    stopped: str = ""

    @property
    def complete(self) -> bool:
        return self.done == self.total and not self.stopped


def work_dir_for(out: Path) -> Path:
    """The job's own folder beside ``out``: its lock, a model's child log, DFT scratch. One per
    reference file, so the shards of an array may share the folder of their files."""
    return out.parent / f"{out.stem}_runs"


def job_identity(spec: RattleSpec, calculator: str, settings: dict[str, InfoValue]) -> dict:
    """What a rerun must match to continue a reference file."""
    return {"rattle": spec.identity(), "calculator": calculator, "settings": dict(settings)}


def model_settings(entry) -> dict[str, InfoValue]:
    """A model's identity for the frames' ``calc_*`` info (flat values only)."""
    import json

    settings: dict[str, InfoValue] = {"family": entry.family}
    if entry.model_path is not None:
        settings["model_path"] = str(entry.model_path)
    if entry.options:
        settings["options"] = json.dumps(entry.options, sort_keys=True)
    return settings


def _slots_on_disk(frames, spec: RattleSpec, out: Path) -> set[int]:
    """The slots already in ``out``; a frame that cannot belong to this job is refused."""
    wanted = set(spec.slots())
    slots = set()
    for i, atoms in enumerate(frames):
        slot = atoms.info.get("rattle_index")
        if slot is None:
            raise ScalmsError(f"{out}, frame {i}: no rattle_index; not a `{COMMAND}` file")
        slot = int(slot)
        if slot not in wanted:
            raise ScalmsError(
                f"{out} holds slot {slot}, which shard {spec.shard[0]}/{spec.shard[1]} of "
                f"--count {spec.count} does not make: use the job's own --count and --shard"
            )
        slots.add(slot)
    return slots


def label_slots(
    spec: RattleSpec,
    labeller: Labeller,
    out: Path,
    log: RattleLog,
    job: dict[str, Any] | None = None,
) -> RattleOutcome:
    """Label every slot of ``spec`` that ``out`` lacks, one after another, appending each frame.

    A try the labeller refuses (:class:`SCFNotConverged`, in the pre-convergence or the single
    point) is logged, recorded beside ``out`` and followed by the slot's next try, at most
    ``spec.max_attempts`` in all; then the job stops, keeping what it finished. Slots on disk are
    skipped, tries refused before are not repeated. The caller holds the work folder's lock.
    """
    out = Path(out)
    settings = labeller.describe()
    job = job or job_identity(spec, labeller.name, settings)
    frames = InputFrames(spec.input)
    labeller.check(composition(spec, frames))
    reference = ReferenceFile(out)
    reference.start(job, COMMAND)
    with reference.writing():
        return _label_missing(spec, labeller, reference, frames, settings, log)


def _label_missing(spec, labeller, reference, frames, settings, log) -> RattleOutcome:
    out = reference.path
    dropped = reference.repair()
    if dropped:
        log.line(f"dropped the unfinished last frame of {out} ({dropped} bytes) left by a kill")
    done = _slots_on_disk(reference.frames(), spec, out)
    tried: dict[int, int] = {}
    for record in reference.refused():
        slot = int(record["slot"])
        tried[slot] = max(tried.get(slot, 0), int(record["attempt"]) + 1)
    slots = spec.slots()
    outcome = RattleOutcome(out, len(slots), len(done), 0, 0)
    log.progress(outcome.done, outcome.total)
    relax_calculator = labeller.calculator() if spec.relaxes else None
    relaxed: dict = {}
    for slot in slots:
        if slot in done:
            continue
        attempt = tried.get(slot, 0)
        while attempt < spec.max_attempts:
            try:
                candidate = make_candidate(spec, frames, slot, attempt, relax_calculator, relaxed)
                label = labeller.label(candidate.atoms)
            except SCFNotConverged as err:
                reference.refuse(slot, attempt, str(err))
                outcome.refused += 1
                log.line(f"slot {slot}, try {attempt + 1}: refused ({err})")
                attempt += 1
                continue
            reference.append(
                labelled_frame(
                    candidate.atoms,
                    label,
                    labeller.name,
                    settings,
                    spec.config_type,
                    rattle_index=slot,
                    rattle_attempt=attempt,
                    rattle_stddev_A=float(spec.stddev_A),
                    source_file=str(spec.input),
                    source_frame=candidate.source_frame,
                    seed=spec.seed,
                )
            )
            outcome.done += 1
            outcome.computed += 1
            log.line(f"slot {slot}: {summarize(label).line()}")
            log.progress(outcome.done, outcome.total)
            break
        else:
            outcome.stopped = (
                f"slot {slot} refused {spec.max_attempts} time(s) (see {reference.sidecar.name}); "
                f"check the DFT settings, or rerun with a higher --max-attempts"
            )
            return outcome
    return outcome


def run_rattle(
    spec: RattleSpec,
    calculator: str,
    settings=None,
    out: Path = Path("rattle.xyz"),
    *,
    model_config: Path = Path("model_config.yaml"),
    device: str = "auto",
    timeout_s: float | None = None,
    log: RattleLog | None = None,
) -> RattleOutcome:
    """Make ``spec``'s frames labelled by ``calculator`` into the reference file ``out``.

    ``calculator`` is a DFT code (``settings``: a :class:`~scalms.hpc.dft.settings.DFTSettings`;
    its default workdir becomes ``<out stem>_runs/dft``) or a model of ``model_config``. Every
    check runs before anything is written: the input, the calculator, the elements (DFT here,
    a model in its child before its first frame), and that an existing ``out`` belongs to the
    same job. Raises :class:`ScalmsError` for bad input; returns how far the job got.
    """
    from scalms.files import WorkDirLock
    from scalms.hpc.dft import is_dft_code

    log = log or SilentLog()
    probe = composition(spec, InputFrames(spec.input))  # messages name INPUT as given
    out = Path(out).absolute()
    spec = replace(spec, input=spec.input.absolute())
    workdir = work_dir_for(out)
    if is_dft_code(calculator):
        from scalms.hpc.dft import make_dft_labeller
        from scalms.hpc.dft.settings import DFTSettings

        calculator = calculator.lower()  # CP2K and cp2k are one job
        settings = settings or DFTSettings()
        if settings.workdir == DFTSettings().workdir:
            settings = replace(settings, workdir=workdir / "dft")
        labeller = make_dft_labeller(calculator, settings)
        labeller.check(probe)
        job = job_identity(spec, calculator, labeller.describe())
        with WorkDirLock(workdir, COMMAND):
            ReferenceFile(out).check(job, COMMAND)
            try:
                return label_slots(spec, labeller, out, log, job)
            finally:
                labeller.close()
    entry = model_entry(calculator, model_config, device)
    job = job_identity(spec, calculator, model_settings(entry))
    with WorkDirLock(workdir, COMMAND):
        ReferenceFile(out).check(job, COMMAND)
        return _label_in_child(spec, entry, out, job, workdir, device, timeout_s, log)


def model_entry(name: str, model_config: Path, device: str):
    """The model ``name`` of ``model_config``, ready to run here, or one line why not."""
    from scalms.config import entry_problems, load_config
    from scalms.devices import check_device, check_gpu
    from scalms.errors import ConfigError
    from scalms.hpc.dft import DFT_CODES

    check_device(device)
    check_gpu(device)
    if not Path(model_config).is_file():
        raise ConfigError(
            f"unknown calculator '{name}': not a DFT code ({', '.join(DFT_CODES)}), and no "
            f"model config {model_config} to find a model of that name in (--model-config)"
        )
    config = load_config(model_config)
    if name not in config.entries:
        known = ", ".join(config.entries) or "none"
        raise ConfigError(
            f"unknown calculator '{name}': not a DFT code ({', '.join(DFT_CODES)}) and not a "
            f"model of {model_config} (models there: {known})"
        )
    entry = config.entries[name]
    problems = entry_problems(entry)
    if problems:
        raise ScalmsError(f"model '{name}': " + "; ".join(problems))
    return entry


class _ChildEvents:
    """A :class:`scalms.workers.fanout.Reporter` passing a child's lines and counts to a log."""

    def __init__(self, log: RattleLog):
        self.log = log

    def start(self, model: str) -> None:
        pass

    def event(self, model: str, event: dict) -> None:
        if event.get("event") == "status":
            self.log.line(str(event.get("message", "")))
        elif event.get("event") == "progress":
            self.log.progress(int(event["done"]), int(event["total"]))

    def finish(self, model: str, outcome) -> None:
        pass


def run_model_child(entry, make_task, workdir: Path, reporter, timeout_s, wrote_nothing):
    """Run one model's child (``scalms.workers.fanout.run_models`` with one entry).

    A child that refused its task (elements, weights: its one-line message, no traceback) while
    ``wrote_nothing()`` holds raises that line as :class:`ScalmsError` and leaves no folder of
    its own behind; any other failure is returned, its log kept.
    """
    from scalms.workers.fanout import run_models

    model_dir = workdir / entry.name
    made_model_dir = not model_dir.exists()
    [child] = run_models([entry], make_task, workdir, reporter=reporter, timeout_s=timeout_s)
    if child.ok:
        return child
    crashed = child.log is not None and "Traceback" in child.log.read_text(errors="replace")
    if wrote_nothing() and not crashed:
        if made_model_dir:
            shutil.rmtree(model_dir, ignore_errors=True)
        raise ScalmsError(f"{entry.name}: {child.reason}")
    return child


def _label_in_child(spec, entry, out, job, workdir, device, timeout_s, log) -> RattleOutcome:
    from scalms.files import read_json
    from scalms.workers.task import Task

    reference = ReferenceFile(out)
    before = len(reference.frames())
    refused_before = len(reference.refused())
    params = {"spec": spec.to_dict(), "out": str(out), "job": job}

    def make_task(entry, model_dir: Path) -> Task:
        output = (model_dir / "result.json").absolute()
        return Task("rattle", entry, output, device, spec.seed, params)

    child = run_model_child(
        entry,
        make_task,
        workdir,
        _ChildEvents(log),
        timeout_s,
        lambda: not reference.sidecar.exists() and not out.exists(),
    )
    done = len(reference.frames())
    outcome = RattleOutcome(
        out, len(spec.slots()), done, done - before, len(reference.refused()) - refused_before
    )
    if child.ok:
        outcome.stopped = str(read_json(child.output, "child result").get("stopped", ""))
    else:
        where = f" (log: {child.log})" if child.log else ""
        outcome.stopped = f"{entry.name} failed: {child.reason}{where}"
    return outcome
