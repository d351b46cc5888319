"""`scalms train mace`: MACE's training config, the checks before any work, the replay set, the
run folder's identity; and, in the mace environment, MACE's own parser and trainer: a
multi-head replay fine-tune of the tiny Ga-Pt MACE and a from-scratch training killed and
resumed through the real command.

The data are the 13-atom Ga-Pt clusters of ML_training/data (SevenNet-0 labels), a few frames
each, so every real training stays within seconds of MACE's own start-up.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import load_config
from scalms.testing import write_model_config
from scalms.training.curves import read_mace_results
from scalms.training.mace import latest_checkpoint, train_mace
from scalms.training.mace_config import (
    FINE_TUNE_LR,
    MaceModelSize,
    MaceTrainingSpec,
    RunLayout,
    build_config,
    check_spec,
    config_yaml,
    job_identity,
    parse_extra_args,
)
from scalms.training.replay import replay_indices, write_replay_subset
from scalms.training.trained import TrainingError
from scalms.training.trainer_process import is_complete_checkpoint

from .conftest import REPO, needs_env, wait_for

runner = CliRunner()
DATA = REPO / "ML_training" / "data" / "GaPt_train.extxyz"
TEST_FRAMES = REPO / "ML_training" / "data" / "GaPt_test.extxyz"
E0 = REPO / "tests" / "data" / "E0_7net0_GaPtPdAgAuBiCH.json"
FOUNDATION = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
SMALL_CLUSTERS = slice(36, 48)
"""The 12 frames of 13-atom clusters: the cheapest to train on."""
SMALLEST = ["--num-channels", "8", "--max-L", "0", "--num-interactions", "1"]
SMALLEST += ["--correlation", "1", "--max-ell", "1"]
E0S = {31: -0.5707905292510986, 78: -1.1318731307983398}


def _frames(tmp_path: Path, name: str, indices: list[int]) -> Path:
    frames = read(DATA, index=":")
    path = tmp_path / name
    write(path, [frames[i] for i in indices], format="extxyz")
    return path


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    """Small train/valid/test files and a model config with the tiny MACE in it."""
    small = list(range(48))[SMALL_CLUSTERS]
    return {
        "train": _frames(tmp_path, "train.xyz", small[:8]),
        "valid": _frames(tmp_path, "valid.xyz", small[8:10]),
        "test": _frames(tmp_path, "test.xyz", small[10:12]),
        "config": write_model_config(
            tmp_path, f"MACE:\n  models:\n    tiny:\n      model_path: {FOUNDATION}\n"
        ),
    }


def _spec(data: dict[str, Path], **changes) -> MaceTrainingSpec:
    settings = dict(
        name="new",
        train_file=data["train"],
        valid_file=data["valid"],
        test_file=data["test"],
        e0_file=E0,
        batch_size=2,
        device="cpu",
    )
    return MaceTrainingSpec(**{**settings, **changes})


def _cli(data: dict[str, Path], *extra) -> list[str]:
    return [
        "train", "mace", "--train", str(data["train"]), "--valid", str(data["valid"]),
        "--test", str(data["test"]), "--e0", str(E0), "-c", str(data["config"]),
        "--batch-size", "2", "--device", "cpu", *map(str, extra),
    ]  # fmt: skip


def _refused(result, *words: str) -> str:
    """The one error line of a refused command (exit 2), checked for ``words``."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in errors[0], result.output
    return errors[0]


# ---- the config MACE reads --------------------------------------------------------------------


def test_a_model_from_scratch_gets_its_size_maces_learning_rate_and_no_replay(data, tmp_path):
    spec = _spec(data, size=MaceModelSize(num_channels=16, max_L=0))
    config = build_config(spec, RunLayout(tmp_path / "runs" / "new"), E0S, "float64", "cpu")
    assert config["num_channels"] == 16 and config["max_L"] == 0 and config["r_max"] == 5.0
    assert config["lr"] == 0.01 and config["max_num_epochs"] == spec.epochs
    assert "foundation_model" not in config and "pt_train_file" not in config
    assert config["energy_key"] == "REF_energy" and config["forces_key"] == "REF_forces"
    assert config["restart_latest"] is True
    assert eval(config["E0s"]) == E0S  # MACE reads the string with ast.literal_eval
    assert config["checkpoints_dir"] == str((tmp_path / "runs" / "new" / "checkpoints").absolute())


def test_a_fine_tune_turns_multi_head_replay_on_with_the_local_replay_set_and_keeps_lr(data):
    spec = _spec(data, foundation_model=FOUNDATION, replay_file=data["train"])
    layout = RunLayout(Path("runs/new"))
    config = build_config(spec, layout, E0S, "float64", "cpu")
    assert config["multiheads_finetuning"] is True
    assert config["pt_train_file"] == str(layout.replay.absolute())
    assert config["foundation_model"] == str(FOUNDATION)
    # the thesis's lr survives MACE's multi-head default of 1e-4 only with force_mh_ft_lr
    assert config["lr"] == FINE_TUNE_LR == 2.5e-5 and config["force_mh_ft_lr"] is True
    assert config["weight_pt_head"] == 0.1
    assert not {"num_channels", "max_L", "r_max"} & set(config)  # the foundation's architecture
    assert "multiheads_finetuning: true" in config_yaml(config)


def test_extra_args_pass_through_as_text_but_may_not_override_scalms_settings(data):
    assert parse_extra_args(["ema=True", "--ema_decay=0.99"]) == {
        "ema": "True",
        "ema_decay": "0.99",
    }
    with pytest.raises(TrainingError, match="KEY=VALUE"):
        parse_extra_args(["ema"])
    with pytest.raises(TrainingError, match="scalms sets lr itself"):
        check_spec(_spec(data, extra_args={"lr": "0.1"}))


def test_size_options_are_refused_for_a_fine_tune(data):
    spec = _spec(data, foundation_model=FOUNDATION, replay_file=data["train"], size=MaceModelSize())
    with pytest.raises(TrainingError, match="model size options"):
        check_spec(spec)


def test_progress_shows_one_line_per_epoch_with_every_head():
    from scalms.training.curves import EpochRecord
    from scalms.training.progress import epoch_lines

    records = [
        EpochRecord(0, "Default", "valid", 2.0, 30.0, 300.0),
        EpochRecord(1, "pt_head", "valid", 0.5, 5.0, 100.0),
        EpochRecord(1, "Default", "valid", 1.0, 20.0, 200.0),
        EpochRecord(1, "all heads", "train", 1.5),
    ]
    assert epoch_lines(records, 4) == [
        "before training  Default: loss 2, RMSE E 30.0 meV/atom, F 300.0 meV/Å",
        "epoch 1/4  pt_head: loss 0.5, RMSE E 5.0 meV/atom, F 100.0 meV/Å | "
        "Default: loss 1, RMSE E 20.0 meV/atom, F 200.0 meV/Å",
    ]


# ---- refusals, one line and exit 2, before anything runs --------------------------------------


def test_a_foundation_model_without_a_replay_file_is_refused(data, tmp_path):
    args = _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs")
    result = runner.invoke(app, [*args, "--foundation-model", str(FOUNDATION)])
    _refused(result, "silently switch multi-head replay off", "--replay-file")
    assert not (tmp_path / "runs").exists()


def test_a_missing_foundation_model_file_is_refused(data, tmp_path):
    args = _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs", "--replay-file")
    args += [str(data["train"]), "--foundation-model", str(tmp_path / "mace-mp-medium.model")]
    _refused(runner.invoke(app, args), "file not found", "download")


def test_an_element_without_e0_is_refused(data, tmp_path):
    only_ga = tmp_path / "E0_Ga.json"
    only_ga.write_text(json.dumps({"31": -0.57}))
    args = _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs")
    args[args.index("--e0") + 1] = str(only_ga)
    _refused(runner.invoke(app, args), "no energy for Pt", "scalms hpc e0")
    assert not (tmp_path / "runs" / "new").exists()


def test_a_dataset_without_ref_forces_is_refused(data, tmp_path):
    frames = read(data["valid"], index=":")
    for frame in frames:
        del frame.arrays["REF_forces"]
    write(data["valid"], frames, format="extxyz")
    result = runner.invoke(app, _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs"))
    _refused(result, "valid file", "REF_forces")


def test_a_registered_name_is_refused_and_the_config_is_untouched(data, tmp_path):
    before = data["config"].read_bytes()
    result = runner.invoke(app, _cli(data, "--name", "tiny", "--runs-dir", tmp_path / "runs"))
    _refused(result, "'tiny' is already in")
    assert data["config"].read_bytes() == before


def test_an_unknown_dtype_is_refused(data, tmp_path):
    result = runner.invoke(app, _cli(data, "--name", "new", "--dtype", "float16"))
    assert result.exit_code == 2 and "float16" in result.output


def test_a_batch_larger_than_the_training_set_is_refused(data, tmp_path):
    args = _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs")
    args[args.index("--batch-size") + 1] = "9"
    _refused(runner.invoke(app, args), "--batch-size 9", "8 training frames")


# ---- replay set -------------------------------------------------------------------------------


def test_replay_frames_are_drawn_by_seed_without_repetition_and_weighted(tmp_path):
    first = write_replay_subset(DATA, tmp_path / "a.xyz", samples=10, seed=7, weight=0.1)
    again = write_replay_subset(DATA, tmp_path / "b.xyz", samples=10, seed=7, weight=0.1)
    assert first.frames == 10 and first.available == 48
    a, b = read(first.path, index=":"), read(again.path, index=":")
    assert [f.info["REF_energy"] for f in a] == [f.info["REF_energy"] for f in b]
    assert all(f.info["config_weight"] == 0.1 for f in a) and "REF_forces" in a[0].arrays
    chosen = replay_indices(48, 10, seed=7)
    assert len(set(chosen)) == 10 and chosen == sorted(chosen)
    assert replay_indices(48, 10, seed=8) != chosen
    everything = write_replay_subset(DATA, tmp_path / "c.xyz", samples=30_000, seed=7, weight=1)
    assert everything.frames == 48


# ---- the run folder ---------------------------------------------------------------------------


def test_a_different_training_on_a_started_run_folder_is_refused(data, tmp_path):
    from scalms.training.mace import input_hashes

    started = _spec(data, lr=0.01)
    layout = RunLayout(tmp_path / "runs" / "new")
    layout.checkpoints.mkdir(parents=True)
    (layout.checkpoints / "new_run-123_epoch-3.pt").write_bytes(b"")
    layout.job.write_text(json.dumps({"identity": job_identity(started, input_hashes(started))}))
    with pytest.raises(TrainingError, match=r"holds another training \(changed: lr\)"):
        train_mace(_spec(data, lr=0.02), data["config"], tmp_path / "runs", log=lambda _: None)
    # more epochs or another device is the same training: it resumes
    longer = _spec(data, lr=0.01, epochs=500, device="cuda")
    assert job_identity(longer, input_hashes(longer)) == job_identity(
        started, input_hashes(started)
    )
    assert latest_checkpoint(layout, "new_run-123") == (
        layout.checkpoints / "new_run-123_epoch-3.pt",
        3,
    )


def test_a_folder_that_is_not_a_training_run_is_refused(data, tmp_path):
    (tmp_path / "runs" / "new").mkdir(parents=True)
    (tmp_path / "runs" / "new" / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="not a `scalms train mace` run"):
        train_mace(_spec(data), data["config"], tmp_path / "runs", log=lambda _: None)


# ---- SLURM ------------------------------------------------------------------------------------


def test_a_training_is_submitted_as_one_gpu_task_that_a_requeue_reruns(data, tmp_path):
    job = tmp_path / "job"
    command = _cli(data, "--name", "new", "--epochs", "50")
    command[command.index("--device") + 1] = "cuda"
    submit = ["hpc", "submit", "--dir", str(job), "--template", "gpu", "--requeue", "--dry-run"]
    result = runner.invoke(app, [*submit, "--", *command])
    assert result.exit_code == 0, result.output
    record = json.loads((job / "job.json").read_text())
    assert record["plan"]["kind"] == "command" and len(record["plan"]["tasks"]) == 1
    script = (job / "job.sbatch").read_text()
    assert "#SBATCH --requeue" in script and "gpus-per-task" in script
    # the task runs the command as given: run again after a requeue, it resumes (same run folder)
    assert f'"$SCALMS" train mace --train {data["train"]}' in script


# ---- MACE itself (mace environment) -----------------------------------------------------------

MACE_PYTHON = REPO / ".venvs" / "mace" / "bin" / "python"


@pytest.mark.mace
@needs_env("mace")
def test_the_written_config_is_accepted_by_maces_own_parser_with_replay_on(data, tmp_path):
    spec = _spec(data, foundation_model=FOUNDATION, replay_file=data["train"])
    layout = RunLayout(tmp_path / "runs" / "new")
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(build_config(spec, layout, E0S, "float64", "cpu")))
    parse = (
        "import json, sys\n"
        "from mace.tools import build_default_arg_parser\n"
        "args = build_default_arg_parser().parse_args(['--config', sys.argv[1]])\n"
        "print(json.dumps({k: str(v) for k, v in vars(args).items()}))\n"
    )
    done = subprocess.run(
        [str(MACE_PYTHON), "-c", parse, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    args = json.loads(done.stdout.strip().splitlines()[-1])
    assert args["multiheads_finetuning"] == "True" and args["force_mh_ft_lr"] == "True"
    assert args["pt_train_file"] == str(layout.replay.absolute())
    assert args["foundation_model"] == str(FOUNDATION) and float(args["lr"]) == 2.5e-5
    assert args["energy_key"] == "REF_energy" and args["restart_latest"] == "True"
    assert eval(args["E0s"]) == E0S


@pytest.mark.mace
@pytest.mark.slow
@needs_env("mace")
def test_multi_head_replay_fine_tune_trains_both_heads_at_the_kept_learning_rate(data, tmp_path):
    small = list(range(48))[SMALL_CLUSTERS]
    spec = _spec(
        data,
        train_file=_frames(tmp_path, "ft_train.xyz", small[:2]),
        valid_file=_frames(tmp_path, "ft_valid.xyz", small[2:3]),
        test_file=_frames(tmp_path, "ft_test.xyz", small[3:4]),
        foundation_model=FOUNDATION,
        replay_file=_frames(tmp_path, "replay_source.xyz", small),
        replay_samples=10,
        epochs=1,
    )
    lines: list[str] = []
    trained = train_mace(spec, data["config"], tmp_path / "runs", log=lines.append)
    assert trained.options == {"default_dtype": "float64", "head": "Default"}
    assert trained.model_path == tmp_path / "runs" / "new" / "new.model"
    assert any(line.startswith("multi-head replay on: heads") for line in lines), lines
    trained_heads = {r.head for r in read_mace_results(trained.run_dir) if r.epoch == 1}
    assert {"Default", "pt_head"} <= trained_heads
    replay = read(trained.run_dir / "replay.xyz", index=":")
    assert len(replay) == 10 and {f.info["config_weight"] for f in replay} == {0.1}
    mace_log = (trained.run_dir / "logs" / "new_run-123.log").read_text()
    assert "Param group 0: lr = 2.5e-05" in mace_log  # not MACE's multi-head 1e-4


@pytest.mark.mace
@needs_env("mace")
@pytest.mark.parametrize(
    "foundation, extra, words",
    [
        ("broken", [], ["cannot load MACE weights file"]),
        ("tiny", ["--dtype", "float32"], ["is float64", "--dtype float64"]),
    ],
)
def test_a_foundation_model_that_does_not_load_or_fit_is_refused(
    data, tmp_path, foundation, extra, words
):
    path = FOUNDATION
    if foundation == "broken":
        path = tmp_path / "broken.model"
        path.write_bytes(FOUNDATION.read_bytes()[:2000])  # a download cut short
    args = _cli(data, "--name", "new", "--runs-dir", tmp_path / "runs", "--foundation-model")
    args += [str(path), "--replay-file", str(data["train"]), *extra]
    _refused(runner.invoke(app, args), *words)
    assert not (tmp_path / "runs" / "new").exists()
    assert "new" not in load_config(data["config"]).entries


def _results_lines(run_dir: Path) -> list[dict]:
    [path] = (run_dir / "results").glob("*_train.txt")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trainer_processes(config: Path) -> list[int]:
    """Processes whose command line names ``config`` (mace_run_train of that run)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(config).encode() in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.mace
@pytest.mark.slow
@needs_env("mace")
def test_a_killed_training_resumes_from_its_checkpoint_and_ends_at_the_requested_epoch(tmp_path):
    """The real command, killed (SIGKILL) once MACE has saved a checkpoint past its first
    epoch, then run again: it resumes from that checkpoint, ends at --epochs, registers the
    model and benchmarks it on the test frames."""
    small = list(range(48))[SMALL_CLUSTERS]
    data = {
        "train": _frames(tmp_path, "train.xyz", small[:4]),
        "valid": _frames(tmp_path, "valid.xyz", small[4:6]),
        "test": TEST_FRAMES,
        "config": write_model_config(
            tmp_path, f"MACE:\n  models:\n    tiny:\n      model_path: {FOUNDATION}\n"
        ),
    }
    epochs = 12
    command = [str(REPO / ".venv" / "bin" / "scalms"), *_cli(data, "--name", "new")]
    command += ["--epochs", str(epochs), "--runs-dir", str(tmp_path / "runs"), *SMALLEST]
    layout = RunLayout(tmp_path / "runs" / "new")
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def checkpoint_past_first_epoch() -> bool:
        if first.poll() is not None:
            pytest.fail("the training ended before it could be killed: give it more epochs")
        latest = latest_checkpoint(layout, "new_run-123") if layout.checkpoints.exists() else None
        # whole, not merely present: MACE deletes the old checkpoint, then writes the new one,
        # and a kill during that write would leave nothing to resume from. The next write comes
        # an epoch later, long after the kill.
        return latest is not None and latest[1] >= 1 and is_complete_checkpoint(latest[0])

    wait_for(checkpoint_past_first_epoch, "a whole checkpoint after epoch 1", poll_s=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not _trainer_processes(layout.config), "mace_run_train dies with its parent")
    killed_at = latest_checkpoint(layout, "new_run-123")[1]
    before = [r for r in _results_lines(layout.run_dir) if r["mode"] == "eval"]

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"_epoch-{killed_at}.pt (epoch {killed_at})" in again.stdout
    evals = [r for r in _results_lines(layout.run_dir) if r["mode"] == "eval"]
    resumed = evals[len(before) :]
    # the resumed run starts from the checkpoint's weights: its first evaluation repeats the
    # first run's evaluation of that epoch, and it trains on from there, not from epoch 0
    [at_kill] = [r for r in before if r["epoch"] == killed_at]
    assert resumed[0]["epoch"] is None
    assert resumed[0]["loss"] == pytest.approx(at_kill["loss"], rel=1e-9)
    assert min(r["epoch"] for r in resumed[1:]) == killed_at
    assert max(r["epoch"] for r in resumed[1:]) == epochs - 1
    assert max(r.epoch for r in read_mace_results(layout.run_dir)) == epochs
    entry = load_config(data["config"]).entries["new"]
    assert entry.model_path == (layout.run_dir / "new.model").absolute()
    assert (layout.run_dir / "summary.json").is_file()
    assert json.loads(layout.job.read_text())["completed"] is True
