"""MD runs that never end "complete" with lost, NaN or blown-up frames: faults tried for real.

The MD job runs in-process with the builtin Lennard-Jones model (the same code a child runs);
the command-line tests start real processes. A full disk is a real tmpfs of a few MB (root only:
CI runs as root; elsewhere the test says why it skips).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import ModelEntry
from scalms.dynamics import md_job
from scalms.dynamics.md_job import batch_checkpoint
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.workdir import readable_info
from scalms.errors import ModelLoadError, ScalmsError
from scalms.files import LOCK_NAME, CorruptFile, DiskFull
from scalms.io.trajectory import TrajectoryError, TrajectoryWriter, read_trajectory
from scalms.testing import ga_bulk, ga_cluster
from scalms.workers.task import Task
from tests.conftest import StopAfter

LJ = ModelEntry(name="lj", family="builtin")
SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
runner = CliRunner()


def _task(folder: Path, structures, settings: MDSettings, entry: ModelEntry = LJ, **params):
    """An ``md`` task as the parent writes it, for structures s0, s1, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, atoms in enumerate(structures):
        write(folder / f"s{i}.extxyz", atoms)
        runs.append(
            {
                "label": f"s{i}",
                "structure": str(folder / f"s{i}.extxyz"),
                "trajectory": str(folder / "traj" / f"s{i}.h5md"),
            }
        )
    return Task(
        "md",
        entry,
        folder / "summary.json",
        "cpu",
        0,
        {
            "settings": settings.to_dict(),
            "runs": runs,
            "checkpoint_dir": str(folder / "checkpoints"),
            "backend": "auto",
            **params,
        },
    )


def _summary(folder: Path) -> dict:
    import json

    return json.loads((folder / "summary.json").read_text())


class _InterruptedJob(md_job.Job):
    """The MD job, stopped like a Ctrl-C after ``stop_after`` steps of its TorchSim batch."""

    stop_after = 25

    def _torchsim_batch(self, labels, model, progress):
        return super()._torchsim_batch(labels, model, StopAfter(self.stop_after))


def _interrupted(folder: Path, structures, settings: MDSettings) -> Task:
    task = _task(folder, structures, settings)
    with pytest.raises(KeyboardInterrupt):
        _InterruptedJob(task, "cpu").run()
    return task


def _overlapping_pair(distance_A: float = 1.75):
    """A Ga cluster with one atom pushed to ``distance_A`` of its neighbour: LJ gallium stores
    ~15 eV in the pair at 1.75 Å (a 2.7 Å bond), which heats the cluster by thousands of K."""
    atoms = ga_cluster(3)
    direction = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + direction / np.linalg.norm(direction) * distance_A
    return atoms


# -- runs that blow up ------------------------------------------------------------------------


def test_a_structure_that_blows_up_is_stopped_alone_and_its_batch_goes_on(tmp_path):
    # Limits chosen so that the pair passes step 0 and is stopped by its heating, mid-run.
    settings = MDSettings(
        n_steps=60,
        time_step_fs=2.0,
        temperature_K=300,
        save_interval=4,
        max_force_eV_per_A=500,
        max_temperature_K=1500,
    )
    task = _task(tmp_path, [ga_cluster(3), _overlapping_pair()], settings)
    md_job.Job(task, "cpu").run()
    summary = _summary(tmp_path)
    assert summary["runs"]["s0"]["failed"] == ""
    why = summary["runs"]["s1"]["failed"]
    assert "blew up at step" in why and "temperature" in why and "--max-temperature-K" in why
    healthy = read_trajectory(tmp_path / "traj" / "s0.h5md")
    assert healthy.complete and list(healthy.step) == list(range(0, 61, 4))
    stopped = read_trajectory(tmp_path / "traj" / "s1.h5md")
    info = readable_info(tmp_path / "traj" / "s1.h5md")
    assert not stopped.complete and info.failed == why
    assert 1 <= stopped.n_frames < healthy.n_frames  # the frames before it are kept ...
    assert np.isfinite(stopped.positions).all()  # ... and none after it
    assert stopped.temperature_K.max() <= 1500
    # A second start leaves both alone: the healthy one is finished, the other would blow up.
    md_job.Job(task, "cpu").run()
    assert read_trajectory(tmp_path / "traj" / "s1.h5md").n_frames == stopped.n_frames


@pytest.mark.parametrize("ensemble", ["nvt-langevin", "nvt-nose-hoover"])
def test_a_batch_cut_after_it_dropped_a_blown_up_structure_resumes_to_the_same_frames(
    tmp_path, ensemble
):
    settings = MDSettings(
        ensemble=ensemble,
        n_steps=60,
        time_step_fs=2.0,
        temperature_K=300,
        save_interval=2,
        checkpoint_every=2,
        max_force_eV_per_A=500,
        max_temperature_K=1500,
        seed=5,
    )
    structures = [ga_cluster(3), _overlapping_pair()]
    md_job.Job(_task(tmp_path / "whole", structures, settings), "cpu").run()
    why = _summary(tmp_path / "whole")["runs"]["s1"]["failed"]
    blown_at = int(why.split("step ")[1].split(":")[0])
    assert blown_at < 40
    # Cut two checkpoints after the drop: the resume starts from a batch of one.
    _InterruptedJob.stop_after = blown_at + 9
    task = _interrupted(tmp_path / "cut", structures, settings)
    _InterruptedJob.stop_after = 25
    md_job.Job(task, "cpu").run()
    assert _summary(tmp_path / "cut")["runs"]["s1"]["failed"] == why
    for label in ("s0", "s1"):
        whole = read_trajectory(tmp_path / "whole" / "traj" / f"{label}.h5md")
        cut = read_trajectory(tmp_path / "cut" / "traj" / f"{label}.h5md")
        assert list(cut.step) == list(whole.step) and cut.complete == whole.complete
        np.testing.assert_allclose(cut.positions, whole.positions, rtol=0, atol=1e-10)
    assert read_trajectory(tmp_path / "cut" / "traj" / "s0.h5md").complete


@pytest.mark.parametrize("engine", ["torchsim", "ase"])
def test_a_time_step_of_100_fs_is_stopped_as_blown_up_not_saved_as_nan(tmp_path, engine):
    settings = MDSettings(n_steps=200, time_step_fs=100.0, temperature_K=300, save_interval=2)
    task = _task(tmp_path, [ga_cluster(3)], settings)
    task.params["backend"] = engine
    md_job.Job(task, "cpu").run()
    why = _summary(tmp_path)["runs"]["s0"]["failed"]
    assert "blew up at step" in why
    trajectory = read_trajectory(tmp_path / "traj" / "s0.h5md")
    assert not trajectory.complete and trajectory.n_frames < settings.n_frames
    assert np.isfinite(trajectory.positions).all()
    assert np.isfinite(trajectory.temperature_K).all()
    assert trajectory.temperature_K.max() <= settings.max_temperature_K


def test_a_blown_up_run_is_reported_failed_and_the_command_exits_1(tmp_path, builtin_config):
    write(tmp_path / "pair.xyz", _overlapping_pair(1.6))
    write(tmp_path / "fine.xyz", ga_cluster(3))
    workdir = tmp_path / "w"
    args = ["dynamics", "run", tmp_path / "fine.xyz", tmp_path / "pair.xyz", "-w", workdir]
    args += ["-c", builtin_config, "-m", "lj", "--n-steps", 20, "--save-interval", 5]
    result = runner.invoke(app, [str(a) for a in [*args, "--device", "cpu", "--no-plot"]])
    assert result.exit_code == 1, result.output
    assert "failed lj / pair: blew up at step 0" in " ".join(result.output.split())
    assert "--max-force-eV-per-A" in " ".join(result.output.split())
    assert "unfinished runs" not in result.output  # a resume cannot fix a blow-up
    status = runner.invoke(app, ["dynamics", "status", str(workdir)])
    assert "5/5" in status.output and "0/5" in status.output and "failed" in status.output


# -- checkpoints and trajectories that cannot be continued -------------------------------------


def test_a_truncated_checkpoint_is_named_with_what_to_do_never_restarted_through_ase(tmp_path):
    settings = MDSettings(n_steps=60, time_step_fs=2.0, save_interval=2, checkpoint_every=3)
    task = _interrupted(tmp_path, [ga_cluster(2)], settings)
    checkpoint = batch_checkpoint(tmp_path / "checkpoints", ["s0"])
    frames_before = read_trajectory(tmp_path / "traj" / "s0.h5md").n_frames
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    with pytest.raises(CorruptFile) as err:
        md_job.Job(task, "cpu").run()
    message = str(err.value)
    assert str(checkpoint) in message and "damaged" in message and "delete it" in message
    # Nothing was redone from step 0, by ASE or anyone: the kept frames are still there.
    assert read_trajectory(tmp_path / "traj" / "s0.h5md").n_frames == frames_before
    assert not list((tmp_path / "checkpoints").glob("*.ase.npz"))
    # Doing what the message says runs it again, to the end.
    checkpoint.unlink()
    (tmp_path / "traj" / "s0.h5md").unlink()
    md_job.Job(task, "cpu").run()
    assert read_trajectory(tmp_path / "traj" / "s0.h5md").complete


def test_a_trajectory_that_lost_frames_behind_its_checkpoint_is_not_resumed_into_a_gap(tmp_path):
    settings = MDSettings(n_steps=60, time_step_fs=2.0, save_interval=2, checkpoint_every=3)
    task = _interrupted(tmp_path, [ga_cluster(2)], settings)
    path = tmp_path / "traj" / "s0.h5md"
    with TrajectoryWriter.resume(path, after_step=4):  # frames 6 ... lost
        pass
    with pytest.raises(CorruptFile, match="frames are missing"):
        md_job.Job(task, "cpu").run()
    assert not read_trajectory(path).complete


@pytest.mark.slow
def test_a_trajectory_killed_before_its_header_reached_the_disk_is_started_again(
    tmp_path, builtin_config
):
    # What a SIGKILL in a run's first moments leaves: 96 bytes of HDF5 superblock, no header.
    write(tmp_path / "c.xyz", ga_cluster(2))
    workdir = tmp_path / "w"
    args = ["dynamics", "run", tmp_path / "c.xyz", "-w", workdir, "-c", builtin_config]
    args += ["-m", "lj", "--n-steps", 10, "--save-interval", 5, "--device", "cpu", "--no-plot"]
    assert runner.invoke(app, [str(a) for a in args]).exit_code == 0
    trajectory = workdir / "trajectories" / "lj" / "c.h5md"
    header = trajectory.read_bytes()[:96]
    shutil.rmtree(workdir / "checkpoints")
    trajectory.write_bytes(header)
    (workdir / "MD_dynamics_results.h5").unlink()
    status = runner.invoke(app, ["dynamics", "status", str(workdir)])
    assert status.exit_code == 0 and "0/3" in status.output
    resumed = runner.invoke(app, ["dynamics", "resume", str(workdir)])
    assert resumed.exit_code == 0, resumed.output
    assert read_trajectory(trajectory).complete and "3/3" in resumed.output


def test_complete_means_every_expected_frame_is_on_disk_and_finite(tmp_path):
    atoms = ga_cluster(2)

    def writer(name):
        return TrajectoryWriter.create(
            tmp_path / name,
            numbers=atoms.numbers,
            masses=atoms.get_masses(),
            pbc=atoms.pbc,
            time_step_fs=1.0,
            save_interval=2,
            model="lj",
            structure="c",
            parameters={},
            target_step=6,
        )

    frame = {"positions": atoms.positions, "cell": atoms.cell.array}
    frame |= {"velocities": np.zeros((13, 3)), "forces": np.zeros((13, 3))}
    with writer("short.h5md") as short:
        short.append(step=0, **frame)
        short.append(step=2, **frame)
        with pytest.raises(TrajectoryError, match="2 of 4 frames"):
            short.mark_complete()
    with writer("nan.h5md") as nan:
        for step in (0, 2, 4, 6):
            nan.append(step=step, **(frame | {"forces": np.full((13, 3), np.nan)}))
        with pytest.raises(TrajectoryError, match="non-finite"):
            nan.mark_complete()
    with writer("whole.h5md") as whole:
        for step in (0, 2, 4, 6):
            whole.append(step=step, **frame)
        whole.mark_complete()
    assert readable_info(tmp_path / "whole.h5md").complete
    # A file marked complete that then lost frames (a truncating restart) is not complete.
    with TrajectoryWriter.resume(tmp_path / "whole.h5md", after_step=2) as cut:
        cut._handle["scalms"].attrs["complete"] = True
    assert not readable_info(tmp_path / "whole.h5md").complete
    assert not read_trajectory(tmp_path / "whole.h5md").complete


# -- fallback to ASE ---------------------------------------------------------------------------


class _FailsAtCall:
    """A TorchSim model that fails (a kernel error) at its ``n``-th evaluation, like a GPU
    kernel that breaks mid-run; everything else is the wrapped model's."""

    def __init__(self, model, n: int):
        self._model, self._left = model, n

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, state):
        self._left -= 1
        if self._left == 0:
            raise RuntimeError("an illegal memory access was encountered")
        return self._model(state)


def test_torchsim_failing_after_frames_never_restarts_them_from_step_0_through_ase(tmp_path):
    class BreaksMidRun(md_job.Job):
        def _load(self, backend):
            loaded = super()._load(backend)
            return _FailsAtCall(loaded, 30) if backend == "torchsim" else loaded

    settings = MDSettings(n_steps=60, time_step_fs=2.0, save_interval=2, checkpoint_every=3)
    task = _task(tmp_path, [ga_cluster(2)], settings)
    with pytest.raises(ScalmsError) as err:
        BreaksMidRun(task, "cpu").run()
    assert "illegal memory access" in str(err.value) and "dynamics resume" in str(err.value)
    kept = read_trajectory(tmp_path / "traj" / "s0.h5md")
    assert kept.n_frames > 10 and kept.attrs["backend"] == "torchsim"
    assert not list((tmp_path / "checkpoints").glob("*.ase.npz"))
    # The resume the message offers continues on TorchSim and finishes the run.
    md_job.Job(task, "cpu").run()
    whole = read_trajectory(tmp_path / "traj" / "s0.h5md")
    assert whole.complete and whole.attrs["backend"] == "torchsim"


def test_weights_that_cannot_load_fail_once_without_an_ase_retry(tmp_path):
    # float("abc") inside the adapter: what a package does with a file it cannot read.
    broken = ModelEntry(name="lj", family="builtin", options={"sigma": "abc"})
    task = _task(tmp_path, [ga_cluster(2)], MDSettings(n_steps=4), broken)
    with pytest.raises(ModelLoadError, match="model 'lj' cannot load as a TorchSim model"):
        md_job.Job(task, "cpu").run()
    assert not (tmp_path / "traj" / "s0.h5md").exists()
    assert not list((tmp_path / "checkpoints").glob("*.ase.npz"))


# -- a full disk -------------------------------------------------------------------------------


@contextlib.contextmanager
def _small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder``; needs root (as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CI runs the tests as root)")
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0 and os.environ.get("CI") != "true":
        pytest.skip(f"this machine refuses a tmpfs mount: {mounted.stderr.strip()}")
    assert mounted.returncode == 0, mounted.stderr
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_is_named_and_resume_ends_with_every_frame(tmp_path):
    settings = MDSettings(
        n_steps=1500, time_step_fs=2.0, temperature_K=400, save_interval=1, checkpoint_every=20
    )
    structures = [ga_cluster(2, seed=0), ga_cluster(2, seed=1)]
    md_job.Job(_task(tmp_path / "whole", structures, settings), "cpu").run()
    with _small_disk(tmp_path / "disk", "4m") as disk:
        task = _task(disk / "run", structures, settings)
        with pytest.raises(DiskFull, match="disk full"):
            md_job.Job(task, "cpu").run()
        left = [p for p in disk.rglob("*") if p.is_file()]
        assert not [p for p in left if p.name.endswith(".tmp")]
        assert not [p for p in left if p.stat().st_size == 0]
        for i in range(2):
            info = readable_info(disk / "run" / "traj" / f"s{i}.h5md")
            assert info is None or (not info.complete and info.n_frames < settings.n_frames)
        # Space freed: the resume continues from the checkpoints and loses no frame.
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        md_job.Job(task, "cpu").run()
        for i in range(2):
            whole = read_trajectory(tmp_path / "whole" / "traj" / f"s{i}.h5md")
            resumed = read_trajectory(disk / "run" / "traj" / f"s{i}.h5md")
            assert resumed.complete and list(resumed.step) == list(range(0, 1501))
            np.testing.assert_allclose(resumed.positions, whole.positions, rtol=0, atol=1e-10)


# -- checks in the parent, before any child starts --------------------------------------------


def _nan_structure(path: Path) -> Path:
    atoms = ga_cluster(2)
    atoms.positions[3, 1] = np.nan
    write(path, atoms)
    return path


def _doubled_atom(path: Path) -> Path:
    atoms = ga_cluster(2)
    atoms.positions[4] = atoms.positions[2]
    write(path, atoms)
    return path


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: (write(p, ga_cluster(2)), p)[1], ["--ensemble", "npt"], "periodic cell"),
        (
            lambda p: (write(p, ga_bulk(2)), p)[1],
            ["--ensemble", "npt", "--backend", "ase"],
            "TorchSim backend only",
        ),
        (_nan_structure, [], "non-finite"),
        (_doubled_atom, [], "apart"),
        (lambda p: (write(p, ga_cluster(2)), p)[1], ["--max-temperature-K", "400"], "raise it"),
    ],
)
def test_problems_a_child_would_find_late_stop_the_command_at_once(
    tmp_path, builtin_config, make, args, message
):
    structure = make(tmp_path / "s.extxyz")
    workdir = tmp_path / "w"
    command = ["dynamics", "run", structure, "-w", workdir, "-c", builtin_config, "-m", "lj"]
    result = runner.invoke(app, [str(a) for a in [*command, "--n-steps", 5, *args]])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (workdir / "runs").exists() and not (workdir / "dynamics.json").exists()


def test_cuda_without_a_gpu_is_refused_before_any_child_starts(tmp_path, builtin_config):
    from scalms.devices import gpu_visible

    if gpu_visible():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    write(tmp_path / "c.xyz", ga_cluster(2))
    command = ["dynamics", "run", tmp_path / "c.xyz", "-w", tmp_path / "w", "-c", builtin_config]
    result = runner.invoke(app, [str(a) for a in [*command, "-m", "lj", "--device", "cuda"]])
    assert result.exit_code == 2 and "no GPU is visible" in result.output
    assert not (tmp_path / "w" / "runs").exists()


# -- one writer per working directory ---------------------------------------------------------


def _lock_held(workdir: Path) -> bool:
    """Whether another process holds the working directory's lock (checked without keeping it)."""
    path = workdir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock this test took
    return False


def test_a_second_command_on_a_working_dir_in_use_is_refused_with_one_line(
    tmp_path, builtin_config
):
    write(tmp_path / "c.xyz", ga_cluster(3))
    workdir = tmp_path / "w"
    run = ["dynamics", "run", str(tmp_path / "c.xyz"), "-w", str(workdir)]
    run += ["-c", str(builtin_config), "-m", "lj", "--device", "cpu"]
    first = subprocess.Popen(
        [*SCALMS, *run, "--n-steps", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not ((workdir / "trajectories").exists() and _lock_held(workdir)):
            assert first.poll() is None, "the first run ended before it held the lock"
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.1)
        for command in (
            ["dynamics", "resume", str(workdir)],
            [*run, "--overwrite"],
        ):
            second = subprocess.run([*SCALMS, *command], capture_output=True, text=True)
            assert second.returncode == 2, second.stdout + second.stderr
            output = (second.stdout + second.stderr).strip()
            assert "in use by pid" in output and "Traceback" not in output
            assert (workdir / "trajectories").exists()  # --overwrite removed nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
