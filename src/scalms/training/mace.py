"""``scalms train mace``: MACE trained from scratch, fine-tuned with multi-head replay, or a
model trained further on more data (``continue_from``, no replay), by MACE's own
``mace_run_train`` running as a child in the mace environment.

Every input is checked before anything starts (datasets, E0s, the name, the foundation or
continued model loaded in the mace environment). The run folder ``runs_dir/NAME`` then holds:

- ``config.yaml``: mace_run_train's settings (:mod:`scalms.training.mace_config`);
- ``replay.xyz``: the replay frames of a fine-tune, weighted (:mod:`scalms.training.replay`);
- ``job.json``: the job's identity (data by content, settings), so a different command on
  the same folder is refused instead of mixing two trainings;
- ``train.log``: everything mace_run_train printed, run after run; MACE's own ``logs/``,
  ``checkpoints/``, ``results/`` and the model file ``NAME.model``.

Resuming: the same command again continues from MACE's latest checkpoint (``restart_latest``)
and ends at ``--epochs``; a larger ``--epochs`` extends. MACE saves a checkpoint when the
validation loss improves (its default), so a resume repeats the epochs after the best one,
and MACE trains the checkpoint's own epoch number once more.

Replay must really be on: MACE turns multi-head mode off with only a warning in some set-ups,
so its log is read while it starts, and a run without the replay head is stopped.

The child-side part (:func:`describe_model_here`) runs in the mace environment as
``python -m scalms.training.mace describe MODEL``: the parent never imports torch or mace.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalms.files import WorkDirLock, atomic_write_json, atomic_write_text, file_sha256, read_json
from scalms.training.curves import read_mace_results
from scalms.training.datasets import DatasetSummary, check_dataset, check_e0
from scalms.training.mace_config import (
    MaceTrainingSpec,
    RunLayout,
    build_config,
    check_spec,
    config_yaml,
    identity_changes,
    job_identity,
    resolved_dtype,
)
from scalms.training.progress import EpochProgress
from scalms.training.trained import TrainedModel, TrainerFailed, TrainingError
from scalms.training.trainer_process import (
    environment_python,
    environment_report,
    is_complete_checkpoint,
    log_tail,
    run_trainer,
)

Log = Callable[[str], None]
REPLAY_HEAD = "pt_head"
NEW_HEAD = "Default"
_HEADS_LINE = re.compile(r"Using heads: (\[.*\])")
_REPLAY_OFF_WARNING = "need to provied a path to a pretraining file"
"""Words (misspelt as in mace-torch 0.3.16) of MACE's warning when it drops multi-head mode."""
MACE_RUN_TRAIN = "mace_run_train"
"""MACE's training command, in the mace environment beside its interpreter."""
_CHECKPOINT = re.compile(r"^(?P<tag>.+)_epoch-(?P<epoch>\d+)(_swa)?\.pt$")


# ---- the mace environment --------------------------------------------------------------------


@dataclass(frozen=True)
class MaceModelInfo:
    """What a MACE ``.model`` file holds, as loaded in the mace environment."""

    path: Path
    dtype: str
    heads: list[str]
    atomic_numbers: list[int]
    r_max_A: float


def describe_model(
    path: Path, python: Path | None = None, role: str = "foundation model"
) -> MaceModelInfo:
    """Load ``path`` in the mace environment (a child) and say what it holds; a file that does
    not load as a MACE model is refused in one line starting with ``role``."""
    report = environment_report(
        python or environment_python("mace", MACE_RUN_TRAIN),
        "scalms.training.mace",
        ["describe", str(path.absolute())],
        f"cannot load {path} in the mace environment",
        TrainingError,
    )
    if not report["ok"]:
        raise TrainingError(f"{role}: {report['error']}")
    return MaceModelInfo(
        path=path,
        dtype=report["dtype"],
        heads=report["heads"],
        atomic_numbers=report["atomic_numbers"],
        r_max_A=report["r_max"],
    )


def describe_model_here(path: Path) -> dict:
    """Child side of :func:`describe_model` (runs in the mace environment)."""
    from scalms.errors import ModelLoadError
    from scalms.models.entry import ModelEntry
    from scalms.models.mace import _load_module

    entry = ModelEntry(name=path.stem, family="mace", model_path=path)
    try:
        module = _load_module(entry, "cpu")
    except ModelLoadError as err:
        return {"ok": False, "error": str(err).replace(f" (model '{entry.name}')", "")}
    dtype = str(next(module.parameters()).dtype).removeprefix("torch.")
    return {
        "ok": True,
        "dtype": dtype,
        "heads": [str(h) for h in getattr(module, "heads", [NEW_HEAD])],
        "atomic_numbers": [int(z) for z in module.atomic_numbers],
        "r_max": float(module.r_max),
    }


# ---- checks before any work ------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedData:
    datasets: list[DatasetSummary]
    """Train, valid and test files."""
    e0s: dict[int, float]
    """E0 of every element of the data, eV (empty when continuing: the model's own)."""
    replay: DatasetSummary | None = None
    continued: MaceModelInfo | None = None
    """The model ``continue_from`` names, as loaded in the mace environment."""


def check_data(spec: MaceTrainingSpec, python: Path | None = None) -> CheckedData:
    """The data files, labelled; an E0 for each of their elements; a batch that fits; the
    foundation model's file (whether it loads is asked of the mace environment later).

    With ``continue_from`` no E0 file is read: the model is loaded in the mace environment
    (``python``, default: found) and the data may hold only elements it knows, as MACE keeps
    the model's E0s and looks each data element up in them."""
    from ase.data import atomic_numbers, chemical_symbols

    datasets = [
        check_dataset(spec.train_file, "train"),
        check_dataset(spec.valid_file, "valid"),
        check_dataset(spec.test_file, "test"),
    ]
    train = datasets[0]
    trainable = train.frames - train.isolated_atoms
    if spec.batch_size > trainable:
        raise TrainingError(
            f"--batch-size {spec.batch_size} is larger than the {trainable} training frames of "
            f"{spec.train_file}: MACE would train on nothing (it drops incomplete batches); "
            f"use --batch-size {max(1, trainable // 2)} or fewer"
        )
    elements = frozenset().union(*(d.elements for d in datasets))
    if spec.continue_from is not None:
        if not spec.continue_from.is_file():
            raise TrainingError(f"--continue-from {spec.continue_from}: file not found")
        model = describe_model(spec.continue_from, python, role="--continue-from model")
        unknown = sorted({atomic_numbers[e] for e in elements} - set(model.atomic_numbers))
        if unknown:
            known = ", ".join(chemical_symbols[z] for z in sorted(model.atomic_numbers))
            raise TrainingError(
                f"the data hold {', '.join(chemical_symbols[z] for z in unknown)}, which "
                f"{spec.continue_from} does not know (it knows {known}): continued training "
                "keeps the model's elements; train a new model for new elements"
            )
        return CheckedData(datasets, {}, None, model)
    table = check_e0(spec.e0_file, elements)
    e0s = {atomic_numbers[e]: table[atomic_numbers[e]] for e in elements}
    replay = check_dataset(spec.replay_file, "replay") if spec.replay_file else None
    if spec.foundation_model is not None and not spec.foundation_model.is_file():
        raise TrainingError(
            f"--foundation-model {spec.foundation_model}: file not found (MACE foundation "
            "models download at run time, which cannot happen offline: give a local .model file)"
        )
    return CheckedData(datasets, e0s, replay)


def training_device(device: str) -> tuple[str, dict[str, str]]:
    """MACE's device name and the child's environment for scalms's ``device`` (auto, cpu,
    cuda, cuda:N). MACE takes no GPU index, so cuda:N shows the child GPU N only."""
    from scalms.devices import check_device, check_gpu, gpu_visible

    check_device(device)
    check_gpu(device)
    if device == "auto":
        return ("cuda" if gpu_visible() else "cpu"), {}
    if device.startswith("cuda:"):
        return "cuda", {"CUDA_VISIBLE_DEVICES": device.split(":", 1)[1]}
    return device, {}


# ---- the run folder --------------------------------------------------------------------------


def input_hashes(spec: MaceTrainingSpec) -> dict[str, str]:
    files = {
        "train_file": spec.train_file,
        "valid_file": spec.valid_file,
        "test_file": spec.test_file,
        "e0_file": spec.e0_file,
        "foundation_model": spec.foundation_model,
        "replay_file": spec.replay_file,
        "continue_from": spec.continue_from,
    }
    return {key: file_sha256(path) for key, path in files.items() if path is not None}


def latest_checkpoint(layout: RunLayout, tag: str) -> tuple[Path, int] | None:
    """MACE's checkpoint with the highest epoch for ``tag``, as restart_latest picks it."""
    found = []
    for path in layout.checkpoints.glob("*.pt"):
        match = _CHECKPOINT.match(path.name)
        if match and match["tag"] == tag:
            found.append((int(match["epoch"]), path))
    if not found:
        return None
    epoch, path = max(found)
    return path, epoch


def _resume_point(layout: RunLayout, tag: str, log: Log) -> int | None:
    """Say where MACE will resume; a damaged latest checkpoint is removed first."""
    while (latest := latest_checkpoint(layout, tag)) is not None:
        path, epoch = latest
        if is_complete_checkpoint(path):
            log(f"resuming from {path} (epoch {epoch})")
            return epoch
        log(f"checkpoint {path} is damaged (killed while written): removed")
        path.unlink()
    return None


def _claim_run_dir(layout: RunLayout, identity: dict, tag: str) -> dict | None:
    """The run folder's previous job record, after refusing a folder that belongs to another
    training. A folder whose training never reached a checkpoint starts afresh."""
    if not layout.job.exists():
        leftovers = [p.name for p in layout.run_dir.iterdir() if not p.name.startswith(".")]
        if leftovers:
            raise TrainingError(
                f"{layout.run_dir} exists and is not a `scalms train mace` run (no job.json): "
                "choose another --name or --runs-dir, or remove the folder"
            )
        return None
    record = read_json(layout.job, "training job record", f"remove {layout.run_dir}")
    changed = identity_changes(record.get("identity", {}), identity)
    if not changed:
        return record
    if latest_checkpoint(layout, tag) is not None or record.get("completed"):
        raise TrainingError(
            f"{layout.run_dir} holds another training (changed: {', '.join(changed)}): run the "
            "same command to resume it, or give another --name (or remove the folder)"
        )
    # Nothing trained yet: the earlier attempt's curves and replay set go with it.
    shutil.rmtree(layout.results, ignore_errors=True)
    layout.replay.unlink(missing_ok=True)
    return None


def _write_job(layout: RunLayout, identity: dict, spec: MaceTrainingSpec, **state) -> None:
    atomic_write_json(
        layout.job,
        {
            "trainer": "mace",
            "name": spec.name,
            "epochs": spec.epochs,
            "identity": identity,
            "inputs": {
                "train_file": str(spec.train_file.absolute()),
                "valid_file": str(spec.valid_file.absolute()),
                "test_file": str(spec.test_file.absolute()),
                "e0_file": _absolute(spec.e0_file),
                "foundation_model": _absolute(spec.foundation_model),
                "replay_file": _absolute(spec.replay_file),
                "continue_from": _absolute(spec.continue_from),
            },
            **state,
        },
    )


def _absolute(path: Path | None) -> str | None:
    return str(path.absolute()) if path is not None else None


def _model_file(layout: RunLayout, name: str) -> Path | None:
    """The model MACE wrote last: the stage-two (SWA) one when there is one."""
    for stage_two in (True, False):
        path = layout.model_file(name, stage_two)
        if path.is_file():
            return path
    return None


def _trained_model(
    spec: MaceTrainingSpec, layout: RunLayout, model: Path, dtype: str
) -> TrainedModel:
    options: dict = {"default_dtype": dtype}
    if spec.fine_tune:
        options["head"] = NEW_HEAD
    return TrainedModel(
        name=spec.name,
        architecture="MACE",
        model_path=model,
        run_dir=layout.run_dir,
        options=options,
        test_file=spec.test_file,
        trainer="mace",
    )


# ---- progress while MACE trains --------------------------------------------------------------


class TrainingWatch:
    """Reads MACE's results and log while it trains: one progress line per evaluated epoch,
    and the check that the replay head is really on."""

    def __init__(
        self,
        layout: RunLayout,
        spec: MaceTrainingSpec,
        log: Log,
    ):
        self.layout = layout
        self.spec = spec
        self.log = log
        self.mace_log = layout.mace_log(spec.name, spec.seed)
        self._log_offset = self.mace_log.stat().st_size if self.mace_log.exists() else 0
        self.progress = EpochProgress(lambda: read_mace_results(layout.run_dir), spec.epochs, log)
        self.heads: list[str] | None = None

    def poll(self) -> None:
        self._check_heads()
        self.progress.update()

    def _check_heads(self) -> None:
        """Find MACE's "Using heads: [...]" line of this run; stop a fine-tune without the
        replay head (the config asked for it, so MACE dropped it)."""
        if self.heads is not None or not self.mace_log.exists():
            return
        with open(self.mace_log, encoding="utf-8", errors="replace") as handle:
            handle.seek(self._log_offset)
            text = handle.read()
        match = _HEADS_LINE.search(text)
        if match is None:
            if _REPLAY_OFF_WARNING in text:
                self._replay_off("it warned that multi-head fine-tuning needs a replay file")
            return
        self.heads = [str(h) for h in ast.literal_eval(match[1])]
        if self.spec.fine_tune and REPLAY_HEAD not in self.heads:
            self._replay_off(f"its heads are {self.heads}")
        if self.spec.fine_tune:
            self.log(f"multi-head replay on: heads {', '.join(self.heads)}")

    def _replay_off(self, why: str) -> None:
        raise TrainingError(
            f"MACE switched multi-head replay off ({why}; see {self.mace_log}) although "
            f"{self.layout.config} asks for it: training stopped"
        )

    def finish(self) -> None:
        self.poll()
        if self.spec.fine_tune and self.heads is None:
            raise TrainingError(
                f"cannot confirm that multi-head replay was on: no 'Using heads' line in "
                f"{self.mace_log}"
            )


# ---- the training ----------------------------------------------------------------------------


def train_mace(
    spec: MaceTrainingSpec,
    config_path: Path,
    runs_dir: Path,
    log: Log = print,
) -> TrainedModel:
    """Train (or resume) ``spec`` in ``runs_dir/NAME`` and return the model MACE wrote.

    Refused in one line, before MACE starts: bad settings, an unreadable or unlabelled
    dataset, an element without E0, a name already in ``config_path``, a run folder that holds
    another training, no mace environment, a foundation model without a replay file or that
    does not load, a continued model that does not load or lacks an element of the data. A
    failed mace_run_train raises :class:`TrainerFailed` naming its log.
    """
    from scalms.training.register import check_name_free

    check_spec(spec)
    device, child_env = training_device(spec.device)
    check_name_free(config_path, spec.name)
    data = check_data(spec)
    # A continued model's precision is known now: a --dtype it cannot train in is refused here.
    dtype = resolved_dtype(spec, data.continued.dtype if data.continued else None)
    if data.continued is not None:
        start = data.continued
        log(
            f"continuing {spec.continue_from} ({start.dtype}, r_max {start.r_max_A:g} Å): no "
            f"replay, its own E0s, lr {spec.learning_rate:g}"
        )
    for summary in data.datasets:
        log(summary.line())
    layout = RunLayout(runs_dir / spec.name)
    identity = job_identity(spec, input_hashes(spec))
    with WorkDirLock(layout.run_dir, "scalms train mace"):
        record = _claim_run_dir(layout, identity, layout.tag(spec.name, spec.seed))
        python = environment_python("mace", MACE_RUN_TRAIN)
        if spec.foundation_model is not None:
            foundation = describe_model(spec.foundation_model, python)
            dtype = resolved_dtype(spec, foundation.dtype)
            log(
                f"foundation model: {spec.foundation_model} ({foundation.dtype}, heads "
                f"{', '.join(foundation.heads)}, r_max {foundation.r_max_A:g} Å)"
            )
        model = _model_file(layout, spec.name)
        if record and record.get("completed") and record.get("epochs") == spec.epochs and model:
            log(f"{layout.run_dir}: already trained for {spec.epochs} epochs: {model}")
            return _trained_model(spec, layout, model, dtype)
        config = build_config(spec, layout, data.e0s, dtype, device)
        model = _run_mace(spec, layout, config, identity, python, child_env, log)
        _write_job(layout, identity, spec, completed=True, model=str(model))
        log(f"model: {model}")
        return _trained_model(spec, layout, model, dtype)


def _run_mace(
    spec: MaceTrainingSpec,
    layout: RunLayout,
    config: dict,
    identity: dict,
    python: Path,
    child_env: dict[str, str],
    log: Log,
) -> Path:
    """Write the replay set and the config, run mace_run_train to its end; its model file."""
    from scalms.training.replay import write_replay_subset

    if spec.fine_tune and not layout.replay.exists():
        subset = write_replay_subset(
            spec.replay_file, layout.replay, spec.replay_samples, spec.seed, spec.replay_weight
        )
        log(
            f"replay: {subset.frames} of {subset.available} frames of {spec.replay_file} "
            f"-> {layout.replay} (weight {spec.replay_weight} each, new frames 1)"
        )
    atomic_write_text(layout.config, config_yaml(config))
    log(f"config: {layout.config}")
    if _resume_point(layout, layout.tag(spec.name, spec.seed), log) is None:
        log("no checkpoint yet: training starts at epoch 0")
    for stale in layout.run_dir.glob(f"{spec.name}*.model"):
        stale.unlink()  # never mistake an earlier attempt's model for this run's
    _write_job(layout, identity, spec, completed=False)
    watch = TrainingWatch(layout, spec, log)
    command = [str(python.parent / MACE_RUN_TRAIN), "--config", str(layout.config.absolute())]
    log(f"mace_run_train on {config['device']}, {spec.epochs} epochs; output: {layout.train_log}")
    returncode = run_trainer(command, layout.run_dir, layout.train_log, child_env, watch.poll)
    if returncode != 0:
        raise TrainerFailed(
            f"mace_run_train failed (exit code {returncode}); its log: {layout.train_log}, "
            f"which ends:\n{log_tail(layout.train_log, 6)}"
        )
    watch.finish()
    model = _model_file(layout, spec.name)
    if model is None:
        raise TrainerFailed(
            f"mace_run_train ended without writing {layout.model_file(spec.name)}; its log: "
            f"{layout.train_log}"
        )
    return model


def main(argv: list[str]) -> int:
    """``python -m scalms.training.mace describe MODEL`` (in the mace environment)."""
    if len(argv) != 2 or argv[0] != "describe":
        print("usage: python -m scalms.training.mace describe MODEL", file=sys.stderr)
        return 2
    import mace  # noqa: F401  first: e3nn needs mace's torch.load setting to import

    print(json.dumps(describe_model_here(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
