"""What ``scalms train mace`` asks of MACE: the settings, and the YAML file ``mace_run_train
--config`` reads (each key is one of mace_run_train's own flags, without the dashes).

Pure: no file is read here and nothing is run, so the config can be checked in a test against
MACE's own argument parser and compared between two runs (the job identity of a run folder).

Thesis defaults for a fine-tune (``--foundation-model``): multi-head replay, 30,000 replay
frames, new-to-replay weight 10:1, learning rate 2.5e-5. What 10:1 becomes in MACE:

- every replay frame carries ``config_weight`` 0.1 (``--replay-weight``), every new frame 1.0,
  so in MACE's loss a new frame counts ten times a replay frame. MACE's own
  ``weight_pt_head`` does exactly this for its named replay sets (it writes ``config_weight``
  into the frames it selects) but is ignored for a local ``pt_train_file``, so scalms writes the
  weight into the replay file itself (``RUN_DIR/replay.xyz``) and also sets ``weight_pt_head``
  to the same value, for the reader;
- MACE's ``real_pt_data_ratio_threshold`` stays at its 0.1: where replay frames outnumber the
  new ones more than 10 to 1, MACE repeats the new frames until they are at least a tenth.

A model trained from scratch (no foundation model) takes its size from :class:`MaceModelSize`
(MACE's own defaults) and MACE's learning rate 0.01; a fine-tune keeps the foundation model's
architecture, so size options are refused with one.

Continued training (``continue_from``, active learning's committee members) is MACE's plain,
"naive" fine-tune: the model is MACE's ``foundation_model`` with ``multiheads_finetuning``
off and no replay, since the member's growing dataset already holds every earlier frame; the
model's own E0s (``E0s: foundation``) and every element it knows (``foundation_model_elements``)
are kept, so no E0 file is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scalms.training.datasets import ENERGY_KEY, FORCES_KEY
from scalms.training.trained import TrainingError

DTYPES = ("float64", "float32")
FINE_TUNE_LR = 2.5e-5
"""The thesis's learning rate for fine-tuning; ``force_mh_ft_lr`` keeps it (MACE would force
1e-4 in multi-head mode)."""
SCRATCH_LR = 0.01
"""MACE's own default, for a model trained from scratch."""
CONTINUE_LR = SCRATCH_LR / 10
"""For continued training of a model trained from scratch by scalms: the fine-tune rate 2.5e-5
is tuned for a large foundation model and barely moves a small one in a few epochs, while the
scratch rate would throw away much of what it learned; a tenth of it takes a small step from
the trained weights."""
REPLAY_SAMPLES = 30_000
REPLAY_WEIGHT = 0.1
"""Weight of a replay frame against a new frame's 1.0: the thesis's 10:1."""
DEFAULT_EPOCHS = 100
DEFAULT_BATCH_SIZE = 10
DEFAULT_SEED = 123
"""MACE's own default seed; the seed names MACE's files (``NAME_run-SEED``)."""
REPLAY_FILE_NAME = "replay.xyz"


@dataclass(frozen=True)
class MaceModelSize:
    """Size of a MACE trained from scratch; the defaults are mace_run_train's own."""

    r_max: float = 5.0
    """Cutoff radius, Å."""
    num_channels: int = 128
    max_L: int = 1
    """Highest symmetry order of the hidden features (0: invariant only)."""
    num_interactions: int = 2
    correlation: int = 3
    """Body order of the messages, less one."""
    max_ell: int = 3
    """Highest spherical harmonic of the edge features."""


@dataclass(frozen=True)
class MaceTrainingSpec:
    """Everything ``scalms train mace`` is asked to do; paths as the user gave them."""

    name: str
    """The model's name in model_config.yaml and the run folder's name."""
    train_file: Path
    valid_file: Path
    test_file: Path
    e0_file: Path | None = None
    """E0 table of ``scalms hpc e0`` (JSON, atomic number -> eV); None only with
    ``continue_from`` (the model's own E0s)."""
    foundation_model: Path | None = None
    """A local MACE ``.model`` file to fine-tune (None: train from scratch)."""
    continue_from: Path | None = None
    """A MACE ``.model`` file to train further on more data of the same kind, without replay."""
    replay_file: Path | None = None
    """Frames the foundation model was trained on (or labelled by it), replayed as its head."""
    replay_samples: int = REPLAY_SAMPLES
    replay_weight: float = REPLAY_WEIGHT
    lr: float | None = None
    """None: 2.5e-5 for a fine-tune, 1e-3 to continue, 0.01 from scratch."""
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "auto"
    seed: int = DEFAULT_SEED
    dtype: str | None = None
    """None: the starting model's dtype (fine-tune, continued), float64 from scratch."""
    size: MaceModelSize | None = None
    """None: :class:`MaceModelSize`'s defaults from scratch; refused with a starting model."""
    extra_args: dict[str, str] = field(default_factory=dict)
    """More mace_run_train flags (without dashes), passed as given."""

    @property
    def fine_tune(self) -> bool:
        """A multi-head replay fine-tune of a foundation model."""
        return self.foundation_model is not None

    @property
    def continues(self) -> bool:
        """Continued training of ``continue_from``, no replay."""
        return self.continue_from is not None

    @property
    def start_model(self) -> Path | None:
        """The model training starts from (None: from scratch)."""
        return self.continue_from or self.foundation_model

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.continues:
            return CONTINUE_LR
        return FINE_TUNE_LR if self.fine_tune else SCRATCH_LR


MANAGED_KEYS = frozenset(
    {
        "name", "seed", "train_file", "valid_file", "test_file", "E0s", "energy_key",
        "forces_key", "work_dir", "model_dir", "log_dir", "checkpoints_dir", "results_dir",
        "downloads_dir", "device", "default_dtype", "lr", "max_num_epochs", "batch_size",
        "valid_batch_size", "restart_latest", "save_cpu", "foundation_model",
        "multiheads_finetuning", "pt_train_file", "force_mh_ft_lr", "weight_pt_head", "config",
        "foundation_model_elements",
    }
)  # fmt: skip
"""Keys scalms sets from its own options: an --extra-arg may not set them behind its back."""
SIZE_KEYS = frozenset(f.name for f in fields(MaceModelSize))


def check_spec(spec: MaceTrainingSpec) -> None:
    """Refuse settings that cannot make a sensible training, before any file is read."""
    _check_continue(spec)
    if spec.e0_file is None and not spec.continues:
        raise TrainingError(
            "--e0 is needed: the E0 table of `scalms hpc e0` (only --continue-from takes the "
            "model's own E0s)"
        )
    if spec.foundation_model is not None and spec.replay_file is None:
        raise TrainingError(
            "--foundation-model without --replay-file: MACE would silently switch multi-head "
            "replay off: give --replay-file, or drop --foundation-model to train from scratch"
        )
    if spec.replay_file is not None and spec.foundation_model is None:
        raise TrainingError(
            "--replay-file needs --foundation-model: the replay frames keep a foundation "
            "model's knowledge; drop --replay-file to train from scratch"
        )
    if spec.fine_tune and spec.size is not None:
        raise TrainingError(
            "model size options (--r-max, --num-channels, --max-L, --num-interactions, "
            "--correlation, --max-ell) are for a model trained from scratch; a fine-tune keeps "
            "the foundation model's architecture: drop them"
        )
    if spec.dtype is not None and spec.dtype not in DTYPES:
        raise TrainingError(f"--dtype {spec.dtype}: choose {' or '.join(DTYPES)}")
    numbers = {
        "--epochs": spec.epochs,
        "--batch-size": spec.batch_size,
        "--replay-samples": spec.replay_samples,
    }
    for option, value in numbers.items():
        if value < 1:
            raise TrainingError(f"{option} {value}: give a whole number of at least 1")
    if not spec.learning_rate > 0:
        raise TrainingError(f"--lr {spec.lr}: give a learning rate above 0")
    if not spec.replay_weight > 0:
        raise TrainingError(f"--replay-weight {spec.replay_weight}: give a weight above 0")
    for key in spec.extra_args:
        if key in MANAGED_KEYS or key in SIZE_KEYS:
            raise TrainingError(
                f"--extra-arg {key}=...: scalms sets {key} itself; use its own option "
                "(see `scalms train mace --help`)"
            )


def _check_continue(spec: MaceTrainingSpec) -> None:
    if not spec.continues:
        return
    if spec.foundation_model is not None or spec.replay_file is not None:
        raise TrainingError(
            "--continue-from trains a model further without replay; --foundation-model and "
            "--replay-file are for a multi-head replay fine-tune: give one or the other"
        )
    if spec.size is not None:
        raise TrainingError(
            "model size options (--r-max, --num-channels, --max-L, --num-interactions, "
            "--correlation, --max-ell) are for a model trained from scratch; --continue-from "
            "keeps the model's architecture: drop them"
        )
    if spec.e0_file is not None:
        raise TrainingError(
            "--e0 with --continue-from: the model keeps its own E0s (MACE's E0s: foundation), "
            "so the file would be ignored: drop --e0"
        )


def parse_extra_args(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (mace_run_train flags without dashes) as a dict, values kept as
    text: MACE's parser reads every config value as text and converts it itself."""
    extra: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key or not value.strip():
            raise TrainingError(
                f"--extra-arg {pair!r}: write KEY=VALUE with a mace_run_train flag, e.g. "
                "--extra-arg ema=True"
            )
        extra[key] = value.strip()
    return extra


@dataclass(frozen=True)
class RunLayout:
    """Where MACE writes inside a run folder (``runs_dir/NAME``)."""

    run_dir: Path

    @property
    def config(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def job(self) -> Path:
        return self.run_dir / "job.json"

    @property
    def train_log(self) -> Path:
        """Everything mace_run_train printed, appended run after run."""
        return self.run_dir / "train.log"

    @property
    def replay(self) -> Path:
        return self.run_dir / REPLAY_FILE_NAME

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def results(self) -> Path:
        return self.run_dir / "results"

    def tag(self, name: str, seed: int) -> str:
        """MACE's file stem for a run (``tools.get_tag``)."""
        return f"{name}_run-{seed}"

    def mace_log(self, name: str, seed: int) -> Path:
        return self.logs / f"{self.tag(name, seed)}.log"

    def model_file(self, name: str, stage_two: bool = False) -> Path:
        return self.run_dir / f"{name}{'_stagetwo' if stage_two else ''}.model"


def resolved_dtype(spec: MaceTrainingSpec, foundation_dtype: str | None) -> str:
    """The training's dtype: as asked, else the starting model's (foundation or continued),
    else float64. Training a model in another dtype than its own fails inside MACE ("both
    inputs should have same dtype"), so it is refused here with the fix."""
    if foundation_dtype is None:
        return spec.dtype or "float64"
    if spec.dtype is not None and spec.dtype != foundation_dtype:
        what = "the model" if spec.continues else "the foundation model"
        raise TrainingError(
            f"--dtype {spec.dtype}: {what} {spec.start_model} is {foundation_dtype}, and MACE "
            f"cannot train it further in another precision; use --dtype {foundation_dtype} "
            f"(or leave --dtype out)"
        )
    return foundation_dtype


def build_config(
    spec: MaceTrainingSpec,
    layout: RunLayout,
    e0s: dict[int, float],
    dtype: str,
    device: str,
) -> dict[str, Any]:
    """mace_run_train's settings as a mapping (YAML keys = its flags). Paths are absolute, so
    the file reads the same from any working directory; ``e0s`` holds the data's elements
    (unused when continuing: the model's own E0s)."""
    run_dir = layout.run_dir.absolute()
    config: dict[str, Any] = {
        "name": spec.name,
        "seed": spec.seed,
        "device": device,
        "default_dtype": dtype,
        "train_file": str(spec.train_file.absolute()),
        "valid_file": str(spec.valid_file.absolute()),
        "test_file": str(spec.test_file.absolute()),
        "E0s": str({z: e0s[z] for z in sorted(e0s)}),
        "energy_key": ENERGY_KEY,
        "forces_key": FORCES_KEY,
        "lr": spec.learning_rate,
        "max_num_epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "valid_batch_size": spec.batch_size,
        "work_dir": str(run_dir),
        "model_dir": str(run_dir),
        "log_dir": str(run_dir / layout.logs.name),
        "checkpoints_dir": str(run_dir / layout.checkpoints.name),
        "results_dir": str(run_dir / layout.results.name),
        "downloads_dir": str(run_dir / "downloads"),
        # A rerun continues from the latest checkpoint (none on the first run: MACE starts).
        "restart_latest": True,
        # A model trained on a GPU must load on a laptop.
        "save_cpu": True,
        # scalms draws the curves and runs the test-set benchmark itself; MACE's own figures
        # cost a matplotlib import and another pass over every set (--extra-arg plot=True).
        "plot": False,
    }
    if spec.continues:
        config.update(
            foundation_model=str(spec.continue_from.absolute()),
            # The dataset holds every earlier frame: no replay head, MACE's plain fine-tune.
            multiheads_finetuning=False,
            E0s="foundation",
            # A member keeps every element it knows, even one a round's data lack.
            foundation_model_elements=True,
        )
    elif spec.fine_tune:
        config.update(
            foundation_model=str(spec.foundation_model.absolute()),
            multiheads_finetuning=True,
            pt_train_file=str(run_dir / layout.replay.name),
            # Without it MACE replaces the learning rate by 1e-4 in multi-head mode.
            force_mh_ft_lr=True,
            weight_pt_head=spec.replay_weight,
        )
    else:
        config.update(asdict(spec.size or MaceModelSize()))
    config.update(spec.extra_args)
    return config


def config_yaml(config: dict[str, Any]) -> str:
    """The config as mace_run_train's ``--config`` file, with a header saying what made it."""
    import yaml

    header = (
        "# mace_run_train --config file written by `scalms train mace` (rewritten on each run).\n"
        "# Replay frames carry config_weight in replay.xyz: MACE ignores weight_pt_head for a\n"
        "# local pt_train_file.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def job_identity(spec: MaceTrainingSpec, file_hashes: dict[str, str]) -> dict[str, Any]:
    """What makes two commands the same training: the data (by content) and every setting
    except the ones a resume may change (``--epochs`` extends, ``--device`` moves to a GPU)."""
    settings = asdict(spec)
    for key in ("epochs", "device", "train_file", "valid_file", "test_file", "e0_file"):
        settings.pop(key)
    settings.pop("foundation_model")
    settings.pop("replay_file")
    settings.pop("continue_from")  # by content, in the files
    settings["lr"] = spec.learning_rate
    starts_from_model = spec.fine_tune or spec.continues
    settings["size"] = None if starts_from_model else asdict(spec.size or MaceModelSize())
    return {"settings": settings, "files": dict(sorted(file_hashes.items()))}


def identity_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the settings and files that differ between two identities."""
    changed = []
    for group in ("settings", "files"):
        old, new = recorded.get(group, {}), current.get(group, {})
        changed += [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return changed
