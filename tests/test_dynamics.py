"""The MD engines in-process with the builtin Lennard-Jones model: conservation, frames, resume."""

from __future__ import annotations

import numpy as np
import pytest

from scalms.config import ModelEntry
from scalms.dynamics import ase_md, torchsim_md
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun
from scalms.errors import ScalmsError
from scalms.io.trajectory import TrajectoryWriter, read_trajectory, trajectory_info
from scalms.models.loading import load
from scalms.testing import ga_bulk, ga_cluster
from tests.conftest import StopAfter

LJ = ModelEntry(name="lj", family="builtin")


@pytest.fixture(scope="module")
def lj_torchsim():
    return load(LJ, "torchsim", "cpu")


@pytest.fixture(scope="module")
def lj_ase():
    return load(LJ, "ase", "cpu")


def _writer(path, atoms, settings, label="run"):
    return TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=settings.time_step_fs,
        save_interval=settings.save_interval,
        model="lj",
        structure=label,
        parameters=settings.to_dict(),
        target_step=settings.n_steps,
    )


def _torchsim_runs(folder, structures, settings):
    return [
        BatchRun(f"s{i}", atoms, _writer(folder / f"s{i}.h5md", atoms, settings, f"s{i}"))
        for i, atoms in enumerate(structures)
    ]


def _close(runs):
    for run in runs:
        run.writer.close()


def test_settings_reject_impossible_values_all_at_once():
    with pytest.raises(ScalmsError) as err:
        MDSettings(n_steps=0, time_step_fs=-1, ensemble="npt-magic", save_interval=0)
    message = str(err.value)
    for part in ("n_steps", "time step", "npt-magic", "save_interval"):
        assert part in message


def test_frames_fall_on_multiples_of_the_save_interval_up_to_the_target(tmp_path, lj_torchsim):
    settings = MDSettings(n_steps=23, time_step_fs=2.0, temperature_K=300, save_interval=5)
    runs = _torchsim_runs(tmp_path, [ga_cluster(3)], settings)
    torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
    _close(runs)
    trajectory = read_trajectory(tmp_path / "s0.h5md")
    assert list(trajectory.step) == [0, 5, 10, 15, 20]
    np.testing.assert_allclose(trajectory.time_fs, trajectory.step * 2.0)
    assert trajectory.complete and trajectory_info(tmp_path / "s0.h5md").complete
    assert torchsim_md.load_checkpoint(tmp_path / "b.pt")["step"] == 23


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torchsim", "ase"])
def test_nve_conserves_total_energy(tmp_path, engine, lj_torchsim, lj_ase):
    settings = MDSettings(
        n_steps=200, time_step_fs=1.0, temperature_K=300, ensemble="nve", save_interval=10
    )
    atoms = ga_cluster(3, rattle_A=0.02)
    if engine == "torchsim":
        runs = _torchsim_runs(tmp_path, [atoms], settings)
        torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
    else:
        runs = [BatchRun("s0", atoms, _writer(tmp_path / "s0.h5md", atoms, settings))]
        ase_md.run_one(runs[0], lj_ase, settings, tmp_path / "s0.npz")
    _close(runs)
    trajectory = read_trajectory(tmp_path / "s0.h5md")
    total = trajectory.potential_energy + trajectory.kinetic_energy
    drift_per_atom = np.abs(total - total[0]).max() / trajectory.n_atoms
    assert drift_per_atom < 1e-4, drift_per_atom
    # Kinetic energy really moved between potential and kinetic: the test could fail.
    assert np.ptp(trajectory.kinetic_energy) > 100 * np.abs(total - total[0]).max()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("engine", "ensemble"),
    [
        ("torchsim", "nvt-langevin"),
        ("torchsim", "nvt-nose-hoover"),
        ("torchsim", "npt"),
        ("ase", "nvt-langevin"),
        ("ase", "nvt-nose-hoover"),
    ],
)
def test_every_thermostat_holds_the_target_after_five_thermostat_times(
    tmp_path, engine, ensemble, lj_torchsim, lj_ase
):
    # Gallium (69.7 amu) in a periodic cell, started on its lattice at the target temperature:
    # half the kinetic energy flows into the lattice at once, and the thermostat must put it
    # back within its time. NPT's friction was once given as a rate, 70 times too weak for Ga.
    tau_fs = 25.0
    settings = MDSettings(
        n_steps=105,
        time_step_fs=5.0,
        temperature_K=600,
        ensemble=ensemble,
        save_interval=1,
        thermostat_time_fs=tau_fs,
        barostat_time_fs=500.0,
    )
    structures = [ga_bulk(3, rattle_A=0.0, seed=s) for s in range(2 if engine == "torchsim" else 1)]
    if engine == "torchsim":
        runs = _torchsim_runs(tmp_path, structures, settings)
        torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
    else:
        runs = [
            BatchRun("s0", structures[0], _writer(tmp_path / "s0.h5md", structures[0], settings))
        ]
        ase_md.run_one(runs[0], lj_ase, settings, tmp_path / "s0.npz")
    _close(runs)
    late = np.concatenate(
        [
            trajectory.temperature_K[trajectory.time_fs >= 5 * tau_fs]
            for trajectory in (read_trajectory(tmp_path / f"s{i}.h5md") for i in range(len(runs)))
        ]
    )
    assert late.mean() == pytest.approx(600, rel=0.06), late.mean()


def _lj_fcc_gallium(a_A: float):
    """32 Ga atoms on an fcc lattice of constant ``a_A`` (Å), periodic."""
    from ase.build import bulk

    return bulk("Ga", "fcc", a=a_A, cubic=True).repeat(2)


def _static_pressure_GPa(a_A: float, calculator) -> float:
    from ase import units

    atoms = _lj_fcc_gallium(a_A)
    atoms.calc = calculator
    return float(-np.trace(atoms.get_stress(voigt=False)) / 3 / units.GPa)


@pytest.mark.slow
def test_npt_moves_the_volume_towards_the_pressure_asked_in_bar(tmp_path, lj_torchsim, lj_ase):
    from scipy.optimize import brentq

    # The static pressure-volume curve of the same model (ASE's stress) is the reference:
    # where it crosses 1 atm and 10 GPa (100,000 bar).
    a_zero = brentq(lambda a: _static_pressure_GPa(a, lj_ase), 3.5, 4.2)
    a_high = brentq(lambda a: _static_pressure_GPa(a, lj_ase) - 10.0, 3.4, 4.2)
    v_zero, v_high = _lj_fcc_gallium(a_zero).get_volume(), _lj_fcc_gallium(a_high).get_volume()

    def volumes(pressure_bar, starts, folder):
        settings = MDSettings(
            n_steps=200,
            time_step_fs=4.0,
            temperature_K=100,
            ensemble="npt",
            save_interval=5,
            thermostat_time_fs=100.0,
            barostat_time_fs=1000.0,
            pressure_bar=pressure_bar,
        )
        folder.mkdir()
        runs = _torchsim_runs(folder, [_lj_fcc_gallium(a_zero * f) for f in starts], settings)
        torchsim_md.run_batch(runs, lj_torchsim, settings, folder / "b.pt", "cpu")
        _close(runs)
        return [
            np.abs(np.linalg.det(read_trajectory(folder / f"s{i}.h5md").cell))
            for i in range(len(starts))
        ]

    # At 1 atm a cell compressed 11 % above its equilibrium density expands, and one stretched
    # 12 % below it contracts, each closing more than half of its gap.
    compressed, stretched = volumes(1.01325, (0.96, 1.04), tmp_path / "atm")
    assert compressed[-1] - compressed[0] > 0.5 * (v_zero - compressed[0])
    assert stretched[0] - stretched[-1] > 0.5 * (stretched[0] - v_zero)
    # At 100,000 bar the volume oscillates about the static curve's 10 GPa volume (8 % below
    # the 1 atm one); a pressure read in the wrong unit would land nowhere near it.
    (squeezed,) = volumes(100_000.0, (1.0,), tmp_path / "high")
    assert squeezed[len(squeezed) // 2 :].mean() == pytest.approx(v_high, rel=0.02)
    assert v_high < 0.94 * v_zero


def test_batched_structures_each_get_their_own_frames(tmp_path, lj_torchsim):
    settings = MDSettings(n_steps=10, time_step_fs=1.0, temperature_K=300, save_interval=5)
    structures = [ga_cluster(3, seed=0), ga_cluster(4, seed=1)]
    runs = _torchsim_runs(tmp_path, structures, settings)
    torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
    _close(runs)
    for i, atoms in enumerate(structures):
        trajectory = read_trajectory(tmp_path / f"s{i}.h5md")
        assert trajectory.n_atoms == len(atoms)
        np.testing.assert_array_equal(trajectory.numbers, atoms.numbers)
        np.testing.assert_allclose(trajectory.positions[0], atoms.positions, atol=1e-12)
        # Energies are per structure: the first frame is the model's energy of that structure.
        atoms.calc = load(LJ, "ase", "cpu")
        assert trajectory.potential_energy[0] == pytest.approx(atoms.get_potential_energy())


def _interrupted_then_resumed(folder, structures, settings, model, stop_after):
    runs = _torchsim_runs(folder, structures, settings)
    with pytest.raises(KeyboardInterrupt):
        torchsim_md.run_batch(
            runs, model, settings, folder / "b.pt", "cpu", progress=StopAfter(stop_after)
        )
    _close(runs)
    checkpoint = torchsim_md.load_checkpoint(folder / "b.pt")
    assert 0 < checkpoint["step"] < stop_after  # frames after the checkpoint exist and are redone
    writers = [
        TrajectoryWriter.resume(folder / f"s{i}.h5md", after_step=checkpoint["step"])
        for i in range(len(structures))
    ]
    runs = [
        BatchRun(f"s{i}", a, w) for i, (a, w) in enumerate(zip(structures, writers, strict=True))
    ]
    torchsim_md.run_batch(runs, model, settings, folder / "b.pt", "cpu", resume_from=checkpoint)
    _close(runs)


@pytest.mark.parametrize("ensemble", ["nvt-langevin", "nvt-nose-hoover"])
def test_torchsim_resume_reproduces_the_uninterrupted_run(tmp_path, ensemble, lj_torchsim):
    settings = MDSettings(
        n_steps=60,
        time_step_fs=2.0,
        temperature_K=400,
        ensemble=ensemble,
        save_interval=4,
        checkpoint_every=3,
        seed=7,
    )
    structures = [ga_cluster(3, seed=0), ga_cluster(3, seed=1, solute="Pd")]
    (tmp_path / "whole").mkdir()
    runs = _torchsim_runs(tmp_path / "whole", structures, settings)
    torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "whole" / "b.pt", "cpu")
    _close(runs)
    (tmp_path / "cut").mkdir()
    _interrupted_then_resumed(tmp_path / "cut", structures, settings, lj_torchsim, stop_after=31)
    for i in range(2):
        whole = read_trajectory(tmp_path / "whole" / f"s{i}.h5md")
        cut = read_trajectory(tmp_path / "cut" / f"s{i}.h5md")
        assert list(cut.step) == list(whole.step) == list(range(0, 61, 4))
        assert cut.complete
        np.testing.assert_allclose(cut.positions, whole.positions, rtol=0, atol=1e-10)
        np.testing.assert_allclose(cut.velocities, whole.velocities, rtol=0, atol=1e-10)
        np.testing.assert_allclose(cut.potential_energy, whole.potential_energy, atol=1e-10)


def test_ase_resume_reproduces_the_uninterrupted_run(tmp_path, lj_ase):
    settings = MDSettings(
        n_steps=50, time_step_fs=2.0, temperature_K=400, save_interval=5, checkpoint_every=2
    )
    atoms = ga_cluster(3)
    whole = BatchRun("s0", atoms, _writer(tmp_path / "whole.h5md", atoms, settings))
    ase_md.run_one(whole, lj_ase, settings, tmp_path / "whole.npz")
    whole.writer.close()
    cut = BatchRun("s0", atoms, _writer(tmp_path / "cut.h5md", atoms, settings))
    with pytest.raises(KeyboardInterrupt):
        ase_md.run_one(cut, lj_ase, settings, tmp_path / "cut.npz", progress=StopAfter(27))
    cut.writer.close()
    checkpoint = ase_md.load_checkpoint(tmp_path / "cut.npz")
    assert checkpoint["step"] == 20
    resumed = BatchRun("s0", atoms, TrajectoryWriter.resume(tmp_path / "cut.h5md", after_step=20))
    ase_md.run_one(resumed, lj_ase, settings, tmp_path / "cut.npz", resume_from=checkpoint)
    resumed.writer.close()
    a, b = read_trajectory(tmp_path / "whole.h5md"), read_trajectory(tmp_path / "cut.h5md")
    assert list(a.step) == list(b.step)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-12)


def test_npt_refuses_a_nanoparticle(tmp_path, lj_torchsim):
    settings = MDSettings(n_steps=5, ensemble="npt")
    runs = _torchsim_runs(tmp_path, [ga_cluster(3)], settings)
    with pytest.raises(ScalmsError, match="periodic"):
        torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
    _close(runs)


def _md_task(tmp_path, structures, settings, backend="auto"):
    from ase.io import write

    from scalms.workers.task import Task

    runs = []
    for i, atoms in enumerate(structures):
        write(tmp_path / f"s{i}.extxyz", atoms)
        runs.append(
            {
                "label": f"s{i}",
                "structure": str(tmp_path / f"s{i}.extxyz"),
                "trajectory": str(tmp_path / "traj" / f"s{i}.h5md"),
            }
        )
    params = {
        "settings": settings.to_dict(),
        "runs": runs,
        "checkpoint_dir": str(tmp_path / "checkpoints"),
        "backend": backend,
    }
    return Task("md", LJ, tmp_path / "summary.json", "cpu", 0, params)


class _OutOfMemoryAbove:
    """A TorchSim model whose device holds at most ``n_atoms`` atoms: a larger batch raises
    torch's own ``OutOfMemoryError`` (with a message that does not say "out of memory")."""

    def __init__(self, model, n_atoms: int):
        self._model, self._n_atoms = model, n_atoms

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, state):
        import torch

        if state.n_atoms > self._n_atoms:
            raise torch.OutOfMemoryError(f"Tried to allocate 2.00 GiB for {state.n_atoms} atoms")
        return self._model(state)


def test_a_batch_out_of_memory_is_halved_and_rerun_with_torchsim(tmp_path):
    import json

    from scalms.dynamics import md_job

    sizes = []

    class SmallDevice(md_job.Job):
        def _load(self, backend):
            loaded = super()._load(backend)
            return _OutOfMemoryAbove(loaded, n_atoms=55) if backend == "torchsim" else loaded

        def _torchsim_batch(self, labels, model, progress):
            sizes.append(len(labels))
            return super()._torchsim_batch(labels, model, progress)

    settings = MDSettings(n_steps=6, time_step_fs=2.0, save_interval=3)
    task = _md_task(tmp_path, [ga_cluster(3, seed=s) for s in range(3)], settings)
    SmallDevice(task, "cpu").run()
    assert sizes == [3, 1, 2, 1, 1]  # 3 -> 1 + 2 -> 1 + 1 + 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {run["backend"] for run in summary["runs"].values()} == {"torchsim"}
    assert "out of memory" in summary["notes"][0]
    plan = json.loads((tmp_path / "checkpoints" / "batches.json").read_text())
    assert plan == [["s0"], ["s1"], ["s2"]]
    for i in range(3):
        trajectory = read_trajectory(tmp_path / "traj" / f"s{i}.h5md")
        assert trajectory.complete and list(trajectory.step) == [0, 3, 6]


def test_out_of_memory_is_told_by_torch_s_error_type_and_by_other_backends_messages():
    import torch

    from scalms.workers.memory import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    try:
        try:
            raise torch.OutOfMemoryError("Tried to allocate 20 MiB")
        except torch.OutOfMemoryError as err:
            raise RuntimeError("the batch failed") from err
    except RuntimeError as wrapped:
        assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(RuntimeError("an illegal memory access was encountered"))


def test_a_failing_batch_falls_back_to_ase_and_says_why(tmp_path, monkeypatch):
    import json

    from scalms.dynamics import md_job

    def broken(*args, **kwargs):
        raise RuntimeError("a kernel failed")

    monkeypatch.setattr(torchsim_md, "run_batch", broken)
    settings = MDSettings(n_steps=4, time_step_fs=2.0, save_interval=2)
    task = _md_task(tmp_path, [ga_cluster(3)], settings)
    md_job.Job(task, "cpu").run()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["runs"]["s0"]["backend"] == "ase"
    assert "a kernel failed" in summary["runs"]["s0"]["fallback"]
    trajectory = read_trajectory(tmp_path / "traj" / "s0.h5md")
    assert trajectory.complete and trajectory.attrs["backend"] == "ase"
    with pytest.raises(RuntimeError, match="kernel failed"):
        (tmp_path / "x").mkdir()
        md_job.Job(_md_task(tmp_path / "x", [ga_cluster(3)], settings, "torchsim"), "cpu").run()


# -- temperature programs (a melt's stages) ---------------------------------------------

STAGES = [(60, 300.0), (90, 1500.0), (60, 300.0)]


def test_a_temperature_program_is_checked_and_read_stage_by_stage():
    settings = MDSettings.staged(STAGES, time_step_fs=2.0, save_interval=5)
    assert settings.n_steps == 210 and settings.temperature_K == 300
    assert [settings.temperature_at(s) for s in (1, 60, 61, 150, 151, 210)] == [
        300,
        300,
        1500,
        1500,
        300,
        300,
    ]
    # The manifest stores the program as JSON lists; it reads back to the same settings.
    import json

    assert MDSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ScalmsError) as err:
        MDSettings(n_steps=100, temperature_K=500, temperature_program=((50, 300), (20, -5)))
    for part in ("add up to 70 steps", "first stage runs at 300 K", "must not be negative"):
        assert part in str(err.value)
    with pytest.raises(ScalmsError, match="NVE has no thermostat"):
        MDSettings.staged(STAGES, ensemble="nve")


def _stage_temperatures(trajectory, settings):
    """Mean temperature over the second half of each stage."""
    means, start = [], 0
    for n, _ in settings.temperature_program:
        half = (trajectory.step > start + n // 2) & (trajectory.step <= start + n)
        means.append(trajectory.temperature_K[half].mean())
        start += n
    return means


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torchsim", "ase"])
def test_both_engines_follow_the_temperature_program(tmp_path, engine, lj_torchsim, lj_ase):
    settings = MDSettings.staged(STAGES, time_step_fs=2.0, save_interval=2, thermostat_time_fs=20)
    atoms = ga_cluster(3)
    if engine == "torchsim":
        runs = _torchsim_runs(tmp_path, [atoms], settings)
        torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "b.pt", "cpu")
        _close(runs)
    else:
        run = BatchRun("s0", atoms, _writer(tmp_path / "s0.h5md", atoms, settings))
        ase_md.run_one(run, lj_ase, settings, tmp_path / "s0.npz")
        run.writer.close()
    cold, hot, back = _stage_temperatures(read_trajectory(tmp_path / "s0.h5md"), settings)
    assert 200 < cold < 450 and 1100 < hot < 1900 and 200 < back < 600
    assert hot > 3 * cold


@pytest.mark.slow
def test_a_run_cut_in_the_hot_stage_resumes_to_the_same_frames(tmp_path, lj_torchsim):
    settings = MDSettings.staged(
        STAGES, time_step_fs=2.0, save_interval=5, checkpoint_every=4, seed=3
    )
    structures = [ga_cluster(3, seed=0)]
    (tmp_path / "whole").mkdir()
    runs = _torchsim_runs(tmp_path / "whole", structures, settings)
    torchsim_md.run_batch(runs, lj_torchsim, settings, tmp_path / "whole" / "b.pt", "cpu")
    _close(runs)
    (tmp_path / "cut").mkdir()
    _interrupted_then_resumed(tmp_path / "cut", structures, settings, lj_torchsim, stop_after=97)
    whole = read_trajectory(tmp_path / "whole" / "s0.h5md")
    cut = read_trajectory(tmp_path / "cut" / "s0.h5md")
    assert list(cut.step) == list(whole.step) == list(range(0, 211, 5))
    np.testing.assert_allclose(cut.positions, whole.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cut.temperature_K, whole.temperature_K, rtol=0, atol=1e-8)


def test_ase_refuses_a_program_its_thermostat_cannot_follow(tmp_path, lj_ase):
    settings = MDSettings.staged(STAGES, ensemble="nvt-nose-hoover")
    atoms = ga_cluster(3)
    run = BatchRun("s0", atoms, _writer(tmp_path / "s0.h5md", atoms, settings))
    with pytest.raises(ScalmsError, match="nvt-langevin only"):
        ase_md.run_one(run, lj_ase, settings, tmp_path / "s0.npz")
    run.writer.close()
