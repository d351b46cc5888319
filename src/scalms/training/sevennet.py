"""Fine-tune a SevenNet checkpoint (the bundled SevenNet-0 by default) through sevenn's own
training, ``sevenn input.yaml -s``, run in the sevennet environment as a child.

The run folder ``RUNS_DIR/NAME/`` holds input.yaml (sevenn's fine_tune preset with the run's
fields set), job.json (what the run is, so a rerun knows it is the same), train.log (everything
sevenn printed), sevenn's own log.sevenn, lc.csv (learning curve) and checkpoints, and the model
to deploy, ``NAME.pth``: a copy of the last epoch's checkpoint, which scalms's SevenNet adapter
loads through ``model_path``. The last epoch, not sevenn's checkpoint_best.pth: sevenn forgets
its best value when a run is resumed, and a resumed run must end with what an uninterrupted one
would.

A rerun of the same command resumes from the newest complete checkpoint, with epoch, optimizer
and scheduler carried on, and ends at the requested epoch (a larger ``epochs`` extends the
run). A different command on the same folder is refused. The shuffling of the resumed epochs is
seeded afresh, so the weights differ slightly from an uninterrupted run's; the epochs do not.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalms.files import file_sha256
from scalms.training.datasets import DatasetSummary, check_dataset
from scalms.training.sevennet_input import (
    Hyperparameters,
    fine_tune_input,
    parse_preset,
    preset_epochs,
    preset_hyperparameters,
    render_input,
)
from scalms.training.sevennet_run import (
    clear_unfinished_start,
    last_complete_checkpoint,
    run_sevenn,
)
from scalms.training.trained import TrainedModel, TrainerFailed, TrainingError
from scalms.training.trainer_process import (
    environment_python,
    environment_report,
    is_complete_checkpoint,
)

DEFAULT_FROM = "7net-0"
DEFAULT_LR = 2.5e-5
DEFAULT_RUNS_DIR = Path("ML_training/runs")
COMMAND = "scalms train sevennet"
JOB_FILE = "job.json"
TRAINER = "sevennet"
SEVENN = "sevenn"
"""sevenn's command, in the sevennet environment beside its interpreter."""


@dataclass(frozen=True)
class SevenNetFineTune:
    """What ``scalms train sevennet`` was asked; None: the value of sevenn's fine_tune preset."""

    train: Path
    valid: Path
    name: str
    test: Path | None = None
    start_from: str = DEFAULT_FROM
    """A SevenNet model bundled with sevenn (``7net-0``) or a checkpoint file (.pth)."""
    epochs: int | None = None
    lr: float = DEFAULT_LR
    """The issue's fine-tuning rate (the thesis's, for MACE). Not the preset's 0.004: one step
    of it on 4 Ga-Pt frames took SevenNet-0's validation force RMSE from 16 to 438 meV/Å."""
    batch_size: int | None = None
    seed: int | None = None
    force_weight: float | None = None
    device: str = "auto"
    runs_dir: Path = DEFAULT_RUNS_DIR

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


@dataclass(frozen=True)
class CheckpointInfo:
    """The foundation checkpoint, as the sevennet environment sees it."""

    path: Path
    elements: frozenset[str]
    model: dict[str, Any]
    """Its model settings, as sevenn's ``checkpoint.yaml_dict('continue')`` gives them."""
    preset: str
    """The text of sevenn's fine_tune preset."""
    sevenn_version: str


def check_start_from(source: str) -> None:
    """Refuse at once a --from that is neither a file nor a model bundled with sevenn."""
    from scalms.models import FAMILIES

    bundled = FAMILIES[TRAINER].bundled
    if Path(source).is_file() or source.lower() in bundled:
        return
    if Path(source).suffix in (".pth", ".pt") or "/" in source:
        raise TrainingError(f"--from {source}: checkpoint file not found")
    raise TrainingError(
        f"--from {source}: neither a checkpoint file nor a SevenNet model bundled with sevenn "
        f"({', '.join(sorted(bundled))})"
    )


def inspect_checkpoint(python: Path, source: str) -> CheckpointInfo:
    """Load ``source`` in the sevennet environment (see :mod:`.sevennet_inspect`)."""
    report = environment_report(
        python,
        "scalms.training.sevennet_inspect",
        [source],
        f"checking --from {source} in {python} failed",
        TrainerFailed,
    )
    if not report["ok"]:
        raise TrainingError(f"--from {source}: SevenNet cannot load it: {report['error']}")
    if report["multi_fidelity"]:
        raise TrainingError(
            f"--from {source} is a multi-fidelity checkpoint; scalms fine-tunes single-fidelity "
            "ones (7net-0, 7net-l3i5, or a checkpoint of an earlier fine-tune)"
        )
    return CheckpointInfo(
        Path(report["path"]),
        frozenset(report["elements"]),
        report["model"],
        report["preset"],
        report["sevenn"],
    )


def check_elements(info: CheckpointInfo, source: str, datasets: list[DatasetSummary]) -> None:
    for summary in datasets:
        unknown = sorted(summary.elements - info.elements)
        if unknown:
            raise TrainingError(
                f"{summary.role} file {summary.path} holds {', '.join(unknown)}, which SevenNet "
                f"checkpoint {source} does not know ({len(info.elements)} elements); fine-tune "
                "a checkpoint trained with them, or train MACE from scratch (`scalms train mace`)"
            )


def job_identity(info: CheckpointInfo, request: SevenNetFineTune, hyper: Hyperparameters) -> dict:
    """What makes two commands the same training: inputs by content, and the settings that
    shape it (the epoch count may grow; the device and the test set do not change training)."""
    return {
        "from_sha256": file_sha256(info.path),
        "train_sha256": file_sha256(request.train),
        "valid_sha256": file_sha256(request.valid),
        **asdict(hyper),
    }


def check_job(run_dir: Path, identity: dict) -> bool:
    """True when ``run_dir`` holds an earlier run of this same job (a rerun resumes it), False
    when it holds none; refused when it holds another one."""
    from scalms.files import read_json

    job_file = run_dir / JOB_FILE
    if not job_file.is_file():
        return False
    before = read_json(job_file, "job file", f"remove {run_dir} to start again")
    old = before.get("identity", {}) if isinstance(before, dict) else {}
    changed = sorted(key for key in identity if old.get(key) != identity[key])
    if not isinstance(before, dict) or before.get("trainer") != TRAINER or changed:
        what = ", ".join(changed) if changed else "trainer"
        raise TrainingError(
            f"{run_dir} holds a different training ({what} differ): rerun its own command "
            "to resume it, or pass another --name (or --runs-dir)"
        )
    return True


def record_job(run_dir: Path, identity: dict, request: SevenNetFineTune, epochs: int) -> None:
    """RUN_DIR/job.json: what this run is (the curves reader takes the trainer from it)."""
    from scalms.files import atomic_write_json

    record = {
        "trainer": TRAINER,
        "command": COMMAND,
        "from": request.start_from,
        "train": str(request.train.absolute()),
        "valid": str(request.valid.absolute()),
        "epochs": epochs,
        "identity": identity,
    }
    atomic_write_json(run_dir / JOB_FILE, record)


def sevenn_data_file(summary: DatasetSummary, run_dir: Path) -> Path:
    """The file sevenn reads for a dataset: the user's own, or, when it holds isolated-atom
    frames (meant for MACE's E0), a copy without them in RUN_DIR/data: a fine-tune keeps the
    foundation model's per-element energies."""
    if not summary.isolated_atoms:
        return summary.path.absolute()
    from ase.io import read, write

    from scalms.files import atomic_path
    from scalms.training.datasets import ISOLATED_ATOM

    frames = [
        f for f in read(summary.path, index=":") if f.info.get("config_type") != ISOLATED_ATOM
    ]
    target = run_dir / "data" / f"{summary.role}.extxyz"
    with atomic_path(target) as tmp:
        write(tmp, frames, format="extxyz")
    return target.absolute()


def deploy(run_dir: Path, name: str, epochs: int) -> Path:
    """Copy the last epoch's checkpoint to RUN_DIR/NAME.pth, the file the model entry names."""
    from scalms.files import atomic_path

    final = run_dir / f"checkpoint_{epochs}.pth"
    if not is_complete_checkpoint(final):
        raise TrainerFailed(
            f"sevenn ended without a complete {final.name}; see {run_dir / 'train.log'}"
        )
    target = run_dir / f"{name}.pth"
    with atomic_path(target) as tmp:
        shutil.copyfile(final, tmp)
    return target


def fine_tune_sevennet(
    request: SevenNetFineTune,
    config_path: Path,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    """Check everything, then fine-tune (or resume) in ``request.run_dir``; return the model to
    register. Bad input raises :class:`TrainingError` before anything is written; a failed
    sevenn raises :class:`TrainerFailed`; Ctrl-C stops sevenn and keeps its checkpoints."""
    from scalms.files import WorkDirLock, atomic_write_text
    from scalms.training.register import check_name_free

    check_name_free(config_path, request.name)  # also refuses a name unfit for a folder
    datasets = [check_dataset(request.train, "train"), check_dataset(request.valid, "valid")]
    if request.test is not None:
        datasets.append(check_dataset(request.test, "test"))
    check_start_from(request.start_from)
    python = environment_python(TRAINER, SEVENN)
    sevenn = python.parent / SEVENN
    for summary in datasets:
        log(summary.line())
    log(f"loading {request.start_from} in the sevennet environment")
    info = inspect_checkpoint(python, request.start_from)
    check_elements(info, request.start_from, datasets)

    preset = parse_preset(info.preset)
    defaults = preset_hyperparameters(preset)
    hyper = Hyperparameters(
        lr=request.lr,
        batch_size=defaults.batch_size if request.batch_size is None else request.batch_size,
        seed=defaults.seed if request.seed is None else request.seed,
        force_weight=defaults.force_weight
        if request.force_weight is None
        else request.force_weight,
    )
    epochs = preset_epochs(preset) if request.epochs is None else request.epochs
    run_dir = request.run_dir
    with WorkDirLock(run_dir, COMMAND):
        identity = job_identity(info, request, hyper)
        last = last_complete_checkpoint(run_dir) if check_job(run_dir, identity) else None
        if last is not None and last[0] > epochs:
            raise TrainingError(
                f"{run_dir} is already trained to epoch {last[0]}, beyond --epochs {epochs}: "
                f"pass --epochs {last[0]} or more"
            )
        record_job(run_dir, identity, request, epochs)
        if last is None:
            clear_unfinished_start(run_dir)
            start_from, resume = info.path, False
            log(f"fine-tuning {request.start_from} for {epochs} epochs in {run_dir}")
        else:
            start_from, resume = last[1].absolute(), True
            log(f"resuming {run_dir} from {last[1].name} (epoch {last[0]} of {epochs})")
        if last is None or last[0] < epochs:
            config = fine_tune_input(
                preset,
                info.model,
                start_from,
                resume,
                sevenn_data_file(datasets[0], run_dir),
                sevenn_data_file(datasets[1], run_dir),
                epochs,
                hyper,
                request.device,
            )
            input_yaml = run_dir / "input.yaml"
            atomic_write_text(input_yaml, render_input(config, COMMAND))
            command = [str(sevenn), str(input_yaml.absolute()), "-s", "-w", str(run_dir.absolute())]
            run_sevenn(command, run_dir, run_dir / "train.log", epochs, log)
        model_path = deploy(run_dir, request.name, epochs)
    log(f"model: {model_path}")
    return TrainedModel(
        name=request.name,
        architecture="SevenNet",
        model_path=model_path,
        run_dir=run_dir,
        options={},
        test_file=request.test,
        trainer=TRAINER,
    )
