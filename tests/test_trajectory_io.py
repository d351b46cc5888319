"""MD trajectory files, consolidated results files, exports and `scalms io`: the data contracts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.errors import ScalmsError
from scalms.io.export import to_mdanalysis, write_extxyz
from scalms.io.results import (
    concat,
    consolidate,
    iter_runs,
    list_runs,
    open_runs,
    read_run,
    split,
)
from scalms.io.trajectory import (
    TrajectoryError,
    TrajectoryWriter,
    read_trajectory,
    trajectory_info,
)
from scalms.testing import ga_bulk, ga_cluster

runner = CliRunner()
TIME_STEP_FS = 2.0
SAVE_INTERVAL = 5


def frame_data(atoms, step: int, seed: int = 0) -> dict:
    """Deterministic per-frame arrays for a run: what a writer appends at ``step``."""
    rng = np.random.default_rng([seed, step])
    n = len(atoms)
    return dict(
        step=step,
        positions=atoms.positions + rng.normal(scale=0.1, size=(n, 3)),
        cell=atoms.cell.array * (1 + 1e-3 * rng.random()),
        velocities=rng.normal(scale=0.01, size=(n, 3)),
        forces=rng.normal(size=(n, 3)),
        potential_energy=-2.5 * n + rng.random(),
        kinetic_energy=rng.random(),
        temperature_K=900 + rng.random(),
    )


def write_run(
    path: Path,
    steps,
    *,
    atoms=None,
    model: str = "lj",
    structure: str = "Ga55Pt1",
    complete: bool = True,
    seed: int = 0,
    target_step: int | None = None,
) -> list[dict]:
    """Write a trajectory with frames at ``steps``; return what was appended.

    The run is meant to reach ``target_step``: by default its last step when complete, step 1000
    when not.
    """
    atoms = ga_cluster() if atoms is None else atoms
    frames = [frame_data(atoms, step, seed) for step in steps]
    with TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=TIME_STEP_FS,
        save_interval=SAVE_INTERVAL,
        model=model,
        structure=structure,
        parameters={"temperature_K": 900.0, "ensemble": "nvt", "ramp": [300, 900], "seed": 3},
        target_step=target_step or (frames[-1]["step"] if complete and frames else 1000),
    ) as writer:
        for frame in frames:
            writer.append(**frame)
        if complete:
            writer.mark_complete()
    return frames


def assert_frames_equal(traj, frames, tol=1e-12):
    assert traj.n_frames == len(frames)
    np.testing.assert_array_equal(traj.step, [f["step"] for f in frames])
    np.testing.assert_allclose(traj.time_fs, traj.step * TIME_STEP_FS, rtol=0, atol=tol)
    for ours, theirs in (
        ("positions", "positions"),
        ("cell", "cell"),
        ("velocities", "velocities"),
        ("forces", "forces"),
        ("potential_energy", "potential_energy"),
        ("kinetic_energy", "kinetic_energy"),
        ("temperature_K", "temperature_K"),
    ):
        np.testing.assert_allclose(
            getattr(traj, ours), np.array([f[theirs] for f in frames]), rtol=0, atol=tol
        )


def test_frames_read_back_equal_with_names_parameters_and_units(tmp_path):
    path = tmp_path / "run.h5md"
    atoms = ga_cluster()
    frames = write_run(path, range(0, 50, SAVE_INTERVAL), atoms=atoms)
    traj = read_trajectory(path)
    assert_frames_equal(traj, frames)
    np.testing.assert_array_equal(traj.numbers, atoms.numbers)
    np.testing.assert_allclose(traj.masses, atoms.get_masses())
    assert not traj.pbc.any()
    assert (traj.model, traj.structure, traj.complete) == ("lj", "Ga55Pt1", True)
    assert (traj.time_step_fs, traj.save_interval) == (TIME_STEP_FS, SAVE_INTERVAL)
    assert traj.attrs["ramp"] == [300, 900] and traj.attrs["ensemble"] == "nvt"
    assert traj.attrs["target_step"] == 45
    last = traj.atoms(-1)
    assert last.get_potential_energy() == pytest.approx(frames[-1]["potential_energy"], abs=1e-12)
    np.testing.assert_allclose(last.get_forces(), frames[-1]["forces"], atol=1e-12)
    with h5py.File(path, "r") as handle:  # the H5MD metadata other readers rely on
        assert list(handle["h5md"].attrs["version"]) == [1, 1]
        assert handle["particles/all/position/value"].attrs["unit"] == "Angstrom"
        assert handle["particles/all/position/value"].dtype == np.float64
        assert handle["particles/all/position/value"].maxshape[0] is None
        assert list(handle["particles/all/box"].attrs["boundary"]) == [b"none"] * 3
        assert handle["observables/temperature/value"].attrs["unit"] == "K"


def test_frame_slices_read_like_numpy_slices(tmp_path):
    path = tmp_path / "run.h5md"
    write_run(path, range(0, 100, SAVE_INTERVAL))
    full = read_trajectory(path)
    for frames in (slice(5, None), slice(None, None, 3), slice(-4, None), slice(None, None, -2)):
        part = read_trajectory(path, frames)
        np.testing.assert_array_equal(part.step, full.step[frames])
        np.testing.assert_array_equal(part.positions, full.positions[frames])


def test_trajectory_info_gives_counts_names_and_state(tmp_path):
    path = tmp_path / "run.h5md"
    write_run(path, range(0, 30, SAVE_INTERVAL), complete=False)
    info = trajectory_info(path)
    assert (info.n_frames, info.last_step, info.complete, info.target_step) == (6, 25, False, 1000)
    assert (info.model, info.structure, info.n_atoms) == ("lj", "Ga55Pt1", 55)


def test_steps_must_increase(tmp_path):
    atoms = ga_cluster()
    write_run(tmp_path / "run.h5md", [0, 10], complete=False)
    with TrajectoryWriter.resume(tmp_path / "run.h5md", after_step=10) as writer:
        for step in (10, 3):
            with pytest.raises(ValueError, match="does not follow the last saved step 10"):
                writer.append(**frame_data(atoms, step))
    assert trajectory_info(tmp_path / "run.h5md").n_frames == 2


def test_append_refuses_frames_that_do_not_match_the_file(tmp_path):
    atoms = ga_cluster()
    path = tmp_path / "run.h5md"
    write_run(path, [0], complete=False)
    frame = frame_data(atoms, 5)
    with TrajectoryWriter.resume(path, after_step=0) as writer:
        with pytest.raises(ValueError, match="saves velocity"):
            writer.append(**{**frame, "velocities": None})
        with pytest.raises(ValueError, match="observables given"):
            writer.append(**{**frame, "temperature_K": None})
        with pytest.raises(ValueError, match=r"positions? must be \(55, 3\)"):
            writer.append(**{**frame, "positions": frame["positions"][:10]})
        writer.append(**frame)
    assert_frames_equal(read_trajectory(path), [frame_data(atoms, 0), frame])


def test_create_refuses_an_existing_file(tmp_path):
    path = tmp_path / "run.h5md"
    write_run(path, [0])
    with pytest.raises(TrajectoryError, match="already exists"):
        write_run(path, [0])
    assert trajectory_info(path).n_frames == 1


def test_resume_drops_later_frames_and_continues_without_gaps_or_duplicates(tmp_path):
    atoms = ga_cluster()
    path = tmp_path / "run.h5md"
    # A run of 0 .. 55 interrupted after 45.
    first = write_run(path, range(0, 50, SAVE_INTERVAL), complete=False, target_step=55)
    # A restart from the checkpoint at step 20: frames after it will be computed again.
    with TrajectoryWriter.resume(path, after_step=22) as writer:
        assert (writer.last_step, writer.n_frames) == (20, 5)
        assert not trajectory_info(path).complete
        later = [frame_data(atoms, step, seed=1) for step in range(25, 60, SAVE_INTERVAL)]
        for frame in later:
            writer.append(**frame)
        writer.mark_complete()
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.step, np.arange(0, 60, SAVE_INTERVAL))
    assert_frames_equal(traj, first[:5] + later)
    assert traj.complete


def test_resume_before_the_first_frame_starts_the_file_afresh(tmp_path):
    atoms = ga_cluster()
    path = tmp_path / "run.h5md"
    write_run(path, [10, 15], complete=False)
    with TrajectoryWriter.resume(path, after_step=0) as writer:
        assert writer.last_step is None
        frame = {**frame_data(atoms, 0), "kinetic_energy": None}
        writer.append(**frame)
    traj = read_trajectory(path)
    assert traj.n_frames == 1 and traj.kinetic_energy is None


WRITER_SCRIPT = """
import sys
import numpy as np
from scalms.io.trajectory import TrajectoryWriter
from scalms.testing import ga_cluster

atoms = ga_cluster()
writer = TrajectoryWriter.create(
    sys.argv[1], numbers=atoms.numbers, masses=atoms.get_masses(), pbc=atoms.pbc,
    time_step_fs=1.0, save_interval=1, model="m", structure="s", parameters={},
)
for step in range(10**6):
    writer.append(
        step=step, positions=atoms.positions + step, cell=atoms.cell.array,
        velocities=np.full((len(atoms), 3), float(step)), forces=np.zeros((len(atoms), 3)),
        potential_energy=float(step),
    )
    print(step, flush=True)
"""


def test_sigkill_mid_run_leaves_every_flushed_frame_readable_and_incomplete(tmp_path):
    path = tmp_path / "killed.h5md"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER_SCRIPT), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        flushed = 0
        for line in process.stdout:
            flushed = int(line) + 1
            if flushed == 5:
                # Readers work while the writer holds the file (no file locking on read).
                assert read_trajectory(path).n_frames >= 5
            if flushed >= 20:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    traj = read_trajectory(path)
    assert traj.n_frames >= flushed
    assert not traj.complete
    np.testing.assert_array_equal(traj.step, np.arange(traj.n_frames))
    np.testing.assert_array_equal(traj.potential_energy, traj.step)  # each frame whole
    np.testing.assert_array_equal(traj.velocities[:, 0, 0], traj.step)
    with TrajectoryWriter.resume(path, after_step=traj.step[-1]) as writer:
        assert writer.last_step == traj.step[-1]


def test_missing_or_foreign_files_give_one_clear_error(tmp_path):
    with pytest.raises(TrajectoryError, match="file not found"):
        read_trajectory(tmp_path / "nope.h5md")
    (tmp_path / "text.h5md").write_text("not HDF5")
    with pytest.raises(TrajectoryError, match=r"cannot open .* as an HDF5 file"):
        read_trajectory(tmp_path / "text.h5md")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(TrajectoryError, match="not a scalms trajectory"):
        trajectory_info(tmp_path / "other.h5")
    with pytest.raises(TrajectoryError, match="neither a scalms results file"):
        open_runs(tmp_path / "other.h5")


@pytest.fixture
def two_models(tmp_path):
    """Trajectory files of two models on two structures, one run left incomplete."""
    runs, frames = {}, {}
    for model in ("lj", "emt"):
        for structure, atoms in (("Ga55Pt1", ga_cluster()), ("bulk", ga_bulk())):
            path = tmp_path / "trajectories" / model / f"{structure}.h5md"
            complete = (model, structure) != ("emt", "bulk")
            frames[model, structure] = write_run(
                path,
                range(0, 40, SAVE_INTERVAL),
                atoms=atoms,
                model=model,
                structure=structure,
                complete=complete,
                seed=len(runs),
                target_step=35 if complete else 40,
            )
            runs[model, structure] = path
    return runs, frames


def test_consolidated_links_and_repack_read_identically(tmp_path, two_models):
    runs, frames = two_models
    linked = consolidate(runs, tmp_path / "results.h5", method="links")
    packed = consolidate(runs, tmp_path / "packed.h5", method="repack")
    assert linked.stat().st_size < 20_000 < packed.stat().st_size
    for path, method in ((linked, "links"), (packed, "repack")):
        refs = list_runs(path)
        assert [(r.model, r.structure) for r in refs] == list(runs)
        assert [r.complete for r in refs] == [True, True, True, False]
        assert all(r.n_frames == 8 for r in refs)
        with h5py.File(path, "r") as handle:
            assert handle.attrs["method"] == method
            assert not handle.attrs["complete"]  # one run is unfinished
        for (model, structure), written in frames.items():
            traj = read_run(path, model, structure)
            assert (traj.model, traj.structure) == (model, structure)
            assert_frames_equal(traj, written)
            assert traj.pbc.all() == (structure == "bulk")
    assert [t.structure for t in iter_runs(linked, slice(-1, None))] == ["Ga55Pt1", "bulk"] * 2


def test_links_are_relative_so_the_run_folder_can_move(tmp_path, two_models):
    runs, frames = two_models
    consolidate(runs, tmp_path / "results.h5")
    moved = tmp_path.with_name(tmp_path.name + "_moved")
    tmp_path.rename(moved)
    try:
        traj = read_run(moved / "results.h5", "lj", "bulk")
        assert_frames_equal(traj, frames["lj", "bulk"])
    finally:
        moved.rename(tmp_path)


def test_dangling_link_error_names_the_missing_trajectory(tmp_path, two_models):
    runs, _ = two_models
    results = consolidate(runs, tmp_path / "results.h5")
    runs["emt", "bulk"].unlink()
    with pytest.raises(TrajectoryError, match=r"emt/bulk .* links to .*emt/bulk\.h5md.*not exist"):
        read_run(results, "emt", "bulk")
    with pytest.raises(TrajectoryError, match=r"bulk\.h5md, which does not exist"):
        list_runs(results)
    assert read_run(results, "lj", "bulk").n_frames == 8  # the other runs still read


def test_rewriting_a_results_file_replaces_it_whole(tmp_path, two_models):
    runs, _ = two_models
    out = tmp_path / "results.h5"
    consolidate(dict(list(runs.items())[:1]), out)
    consolidate(runs, out, method="repack")
    assert len(list_runs(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.h5", "trajectories"]
    with pytest.raises(TrajectoryError, match="file not found"):
        consolidate({("lj", "x"): tmp_path / "missing.h5md"}, out)
    assert len(list_runs(out)) == 4  # a failed rewrite leaves the old file


def test_a_trajectory_file_is_accepted_wherever_a_results_file_is(tmp_path, two_models):
    runs, frames = two_models
    single = open_runs(runs["emt", "bulk"])
    assert single.kind == "trajectory"
    assert [(r.model, r.structure, r.complete) for r in single] == [("emt", "bulk", False)]
    assert_frames_equal(single.read(single.runs[0]), frames["emt", "bulk"])
    with pytest.raises(TrajectoryError, match="holds run emt/bulk, not lj/bulk"):
        read_run(runs["emt", "bulk"], "lj", "bulk")
    with pytest.raises(TrajectoryError, match=r"no run of .* matches"):
        single.select(["mace"])


def test_concat_then_split_round_trips_and_split_files_resume(tmp_path, two_models):
    runs, frames = two_models
    gathered = concat(list(runs.values()), tmp_path / "concat.h5")
    assert [(r.model, r.structure) for r in list_runs(gathered)] == list(runs)
    written = split(gathered, tmp_path / "split", model="emt")
    assert written == [tmp_path / "split" / "emt" / f"{s}.h5md" for s in ("Ga55Pt1", "bulk")]
    for path, key in zip(written, [("emt", "Ga55Pt1"), ("emt", "bulk")], strict=True):
        assert_frames_equal(read_trajectory(path), frames[key])
    # A split file is a trajectory like any other: an unfinished run continues in it.
    atoms = ga_bulk()
    with TrajectoryWriter.resume(written[1], after_step=35) as writer:
        writer.append(**frame_data(atoms, 40, seed=9))
        writer.mark_complete()
    traj = read_trajectory(written[1])
    np.testing.assert_array_equal(traj.step, np.arange(0, 45, SAVE_INTERVAL))
    assert traj.complete and traj.potential_energy.shape == (9,)
    with pytest.raises(ScalmsError, match=r"exist.*pass --overwrite"):
        split(gathered, tmp_path / "split", model="emt")


def test_concat_renames_runs_and_refuses_duplicate_names(tmp_path, two_models):
    runs, _ = two_models
    inputs = [runs["lj", "bulk"], runs["emt", "bulk"]]
    with pytest.raises(TrajectoryError, match="are both run mace/bulk"):
        concat(inputs, tmp_path / "c.h5", model="mace")
    out = concat(inputs, tmp_path / "c.h5", model="mace", structure_names=["a", "b"])
    assert [(r.model, r.structure) for r in list_runs(out)] == [("mace", "a"), ("mace", "b")]
    assert read_run(out, "mace", "b").attrs["structure"] == "b"
    with pytest.raises(TrajectoryError, match="1 structure names given for 2 input files"):
        concat(inputs, tmp_path / "d.h5", structure_names=["a"])


@pytest.mark.parametrize("make_atoms", [ga_cluster, ga_bulk], ids=["cluster", "bulk"])
def test_extxyz_round_trips_positions_forces_energies_cell_pbc(tmp_path, make_atoms):
    import ase.io
    from ase.units import fs

    atoms = make_atoms()
    path = tmp_path / "run.h5md"
    write_run(path, range(0, 50, SAVE_INTERVAL), atoms=atoms)
    traj = read_trajectory(path)
    out = write_extxyz(traj, tmp_path / "run.xyz", stride=2, frames=slice(1, None))
    back = ase.io.read(out, ":")
    expected = traj.select(slice(1, None, 2))
    assert len(back) == expected.n_frames == 5
    for i, frame in enumerate(back):
        np.testing.assert_allclose(frame.positions, expected.positions[i], atol=1e-7)
        np.testing.assert_allclose(frame.cell.array, expected.cell[i], atol=1e-7)
        np.testing.assert_array_equal(frame.pbc, traj.pbc)
        np.testing.assert_allclose(frame.get_forces(), expected.forces[i], atol=1e-7)
        assert frame.get_potential_energy() == pytest.approx(expected.potential_energy[i])
        np.testing.assert_allclose(frame.get_velocities() * fs, expected.velocities[i], atol=1e-7)
        assert frame.info["step"] == expected.step[i]


def mdanalysis():
    """MDAnalysis, the independent reader these cross-checks compare against. `make test`
    installs it (the bench extra); in CI its absence fails the test, elsewhere it skips."""
    if os.environ.get("CI"):
        import MDAnalysis

        return MDAnalysis
    return pytest.importorskip("MDAnalysis")


def test_mdanalysis_h5md_reader_reads_positions_box_and_time(tmp_path):
    mda = mdanalysis()
    atoms = ga_bulk()
    path = tmp_path / "run.h5md"
    with TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=TIME_STEP_FS,
        save_interval=SAVE_INTERVAL,
        model="lj",
        structure="bulk",
        parameters={},
        forces=False,  # MDAnalysis knows no eV-based force unit
    ) as writer:
        for step in range(0, 20, SAVE_INTERVAL):
            frame = frame_data(atoms, step)
            del frame["forces"]
            writer.append(**frame)
    traj = read_trajectory(path)
    # MDAnalysis builds a topology from the file only for /particles/trajectory: give one.
    universe = mda.Universe.empty(traj.n_atoms, trajectory=False)
    universe.load_new(str(path), format="H5MD")
    assert universe.trajectory.n_frames == traj.n_frames
    for ts in universe.trajectory:
        np.testing.assert_allclose(ts.positions, traj.positions[ts.frame], atol=1e-4)
        np.testing.assert_allclose(ts.velocities, traj.velocities[ts.frame] * 1000, atol=1e-3)
        np.testing.assert_allclose(ts.dimensions[:3], np.diag(traj.cell[ts.frame]), atol=1e-4)
        assert ts.time == pytest.approx(traj.time_fs[ts.frame] / 1000)  # ps
        assert ts.data["potential_energy"] == pytest.approx(traj.potential_energy[ts.frame])


def test_to_mdanalysis_holds_every_run_in_mdanalysis_units(tmp_path):
    mdanalysis()
    from MDAnalysis.units import convert

    path = tmp_path / "run.h5md"
    write_run(path, range(0, 20, SAVE_INTERVAL), atoms=ga_bulk())
    traj = read_trajectory(path)
    universe = to_mdanalysis(traj)
    assert list(universe.atoms.elements) == traj.symbols
    universe.trajectory[2]
    ts = universe.trajectory.ts
    np.testing.assert_allclose(ts.positions, traj.positions[2], atol=1e-4)
    np.testing.assert_allclose(
        ts.forces, traj.forces[2] * convert(1.0, "eV", "kJ/mol"), rtol=1e-5, atol=1e-4
    )
    assert universe.trajectory.dt == pytest.approx(TIME_STEP_FS * SAVE_INTERVAL / 1000)
    assert to_mdanalysis(read_trajectory(path)).dimensions is not None
    cluster = tmp_path / "cluster.h5md"
    write_run(cluster, [0, 5])
    assert to_mdanalysis(read_trajectory(cluster)).dimensions is None  # no wrapping in vacuum


def test_cli_to_xyz_writes_one_file_per_run_or_the_one_named(tmp_path, two_models):
    import ase.io

    runs, _ = two_models
    results = consolidate(runs, tmp_path / "results.h5")
    result = runner.invoke(app, ["io", "to-xyz", str(results), str(tmp_path / "xyz")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "xyz").iterdir())
    assert names == ["emt__Ga55Pt1.xyz", "emt__bulk.xyz", "lj__Ga55Pt1.xyz", "lj__bulk.xyz"]
    assert "lj/bulk: 8 frames" in result.output

    one = tmp_path / "one.xyz"
    args = ["io", "to-xyz", str(results), str(one), "-m", "lj", "-s", "bulk", "--stride", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(ase.io.read(one, ":")) == 3

    result = runner.invoke(app, ["io", "to-xyz", str(runs["lj", "bulk"]), str(tmp_path / "t.xyz")])
    assert result.exit_code == 0, result.output
    assert len(ase.io.read(tmp_path / "t.xyz", ":")) == 8

    result = runner.invoke(app, ["io", "to-xyz", str(results), str(tmp_path / "all.xyz")])
    assert result.exit_code == 2
    assert "4 runs selected but" in result.output


def test_cli_concat_split_and_info(tmp_path, two_models):
    runs, _ = two_models
    out = tmp_path / "concat.h5"
    result = runner.invoke(app, ["io", "concat", str(out), *map(str, runs.values())])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "emt/bulk: 8 frames, incomplete" in result.output
    result = runner.invoke(app, ["io", "concat", str(out), str(runs["lj", "bulk"])])
    assert result.exit_code == 2 and "--overwrite" in result.output

    result = runner.invoke(app, ["io", "split", str(out), str(tmp_path / "split"), "-m", "lj"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "split" / "lj").iterdir()) == [
        "Ga55Pt1.h5md",
        "bulk.h5md",
    ]

    result = runner.invoke(app, ["io", "info", str(out)])
    assert result.exit_code == 0, result.output
    assert "emt" in result.output and "bulk" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["io", "to-xyz", "{missing}", "{tmp}/out.xyz"],
        ["io", "concat", "{tmp}/out.h5", "{missing}"],
        ["io", "split", "{missing}", "{tmp}/split"],
        ["io", "info", "{missing}"],
    ],
    ids=["to-xyz", "concat", "split", "info"],
)
def test_cli_missing_input_exits_2_with_one_clear_message(tmp_path, args):
    missing = tmp_path / "missing.h5md"
    args = [a.format(missing=missing, tmp=tmp_path) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a traceback
    assert f"error: file not found: {missing}" in result.output
    assert "Traceback" not in result.output


# Trajectories of other codes, read through ASE ---------------------------------------------


def walk_run(path: Path, *, time_step_fs=5.0, save_interval=2, n_frames=60, seed=0) -> Path:
    """A cluster whose atoms random-walk: an H5MD run with a diffusion coefficient to measure."""
    atoms = ga_cluster()
    rng = np.random.default_rng(seed)
    positions = atoms.positions + np.cumsum(
        rng.normal(scale=0.2, size=(n_frames, len(atoms), 3)), 0
    )
    with TrajectoryWriter.create(
        path,
        numbers=atoms.numbers,
        masses=atoms.get_masses(),
        pbc=atoms.pbc,
        time_step_fs=time_step_fs,
        save_interval=save_interval,
        model="lj",
        structure="walk",
        parameters={},
        target_step=(n_frames - 1) * save_interval,
        velocities=False,
    ) as writer:
        for i, frame in enumerate(positions):
            writer.append(
                step=i * save_interval, positions=frame, cell=atoms.cell.array, forces=0 * frame
            )
        writer.mark_complete()
    return path


def diffusion_D(args: list[str], out: Path) -> float:
    """D (cm²/s) of `scalms analyze diffusion ARGS`, from the diffusion.csv it writes."""
    import csv

    result = runner.invoke(app, ["analyze", "diffusion", *args, "-o", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    with open(out / "diffusion.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    return float(row["D_cm2_per_s"])


def test_diffusion_from_an_extxyz_export_equals_the_diffusion_from_its_h5md(tmp_path):
    import ase.io

    h5md = walk_run(tmp_path / "run.h5md")
    xyz = tmp_path / "run.extxyz"
    result = runner.invoke(app, ["io", "to-xyz", str(h5md), str(xyz)])
    assert result.exit_code == 0, result.output
    args = ["-e", "Ga", "--msd-max-lag-fs", "200"]
    reference = diffusion_D([str(h5md), *args], tmp_path / "a")
    assert reference > 0
    # The export carries step and time_fs per frame; the time step must agree with them.
    assert diffusion_D([str(xyz), "--time-step-fs", "5", *args], tmp_path / "b") == pytest.approx(
        reference, rel=1e-9
    )
    # A file of another code that says nothing of time: the options give it, either way.
    bare = tmp_path / "bare.extxyz"
    frames = ase.io.read(xyz, ":")
    for atoms in frames:
        atoms.info.clear()
    ase.io.write(bare, frames)
    for timing in (["--time-step-fs", "5", "--save-interval", "2"], ["--frame-interval-fs", "10"]):
        D = diffusion_D([str(bare), *timing, *args], tmp_path / f"c{len(timing)}")
        assert pytest.approx(reference, rel=1e-9) == D
    # Without them the MSD cannot be timed: one line saying what to give, nothing written.
    result = runner.invoke(
        app, ["analyze", "diffusion", str(bare), *args, "-o", str(tmp_path / "d")]
    )
    assert result.exit_code == 2
    assert "--time-step-fs" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    # ... while the PDF needs no time.
    result = runner.invoke(
        app, ["analyze", "pdf", str(bare), "-o", str(tmp_path / "e"), "--no-plot"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e" / "unknown" / "bare" / "pdf_all.json").exists()


LAMMPS_FRAME = """ITEM: TIMESTEP
{step}
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS pp pp pp
0.0 20.0
0.0 20.0
0.0 20.0
ITEM: ATOMS id element x y z
1 Ga {x:.4f} 1.0 1.0
2 Pt 5.0 5.0 5.0
"""


def test_lammps_dump_gives_the_steps_and_the_option_the_time_step(tmp_path):
    from scalms.io.foreign import ForeignTrajectoryError, FrameTiming, read_foreign

    dump = tmp_path / "dump.lammpstrj"
    dump.write_text("".join(LAMMPS_FRAME.format(step=s, x=1 + s / 1000) for s in (0, 100, 200)))
    traj = read_foreign(dump, FrameTiming(time_step_fs=2.0))
    assert traj.symbols == ["Ga", "Pt"] and traj.pbc.all()
    assert (traj.save_interval, traj.frame_interval_fs) == (100, 200.0)
    np.testing.assert_array_equal(traj.time_fs, [0.0, 200.0, 400.0])
    np.testing.assert_allclose(traj.positions[:, 0, 0], [1.0, 1.1, 1.2])
    assert not read_foreign(dump).has_time  # steps alone do not say how long a step is
    with pytest.raises(ForeignTrajectoryError, match="--save-interval 50 contradicts"):
        read_foreign(dump, FrameTiming(time_step_fs=2.0, save_interval=50))


def test_io_import_writes_an_h5md_holding_the_frames_of_an_ase_traj(tmp_path):
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    rng = np.random.default_rng(1)
    for i in range(4):
        atoms = ga_bulk(rattle_A=0.05, seed=i)
        atoms.set_momenta(rng.normal(size=(len(atoms), 3)))
        atoms.calc = SinglePointCalculator(
            atoms, energy=-i, forces=rng.normal(size=(len(atoms), 3))
        )
        frames.append(atoms)
    source = tmp_path / "md.traj"
    ase.io.write(source, frames)
    out = tmp_path / "md.h5md"
    args = ["io", "import", str(source), "--out", str(out), "--time-step-fs", "1"]
    result = runner.invoke(app, [*args, "--save-interval", "10", "-m", "my-model"])
    assert result.exit_code == 0, result.output
    traj = read_trajectory(out)
    assert (traj.model, traj.structure, traj.complete) == ("my-model", "md", True)
    assert (traj.time_step_fs, traj.save_interval) == (1.0, 10)
    np.testing.assert_array_equal(traj.step, [0, 10, 20, 30])
    np.testing.assert_allclose(traj.positions, [a.positions for a in frames], atol=1e-12)
    np.testing.assert_allclose(traj.forces, [a.get_forces() for a in frames], atol=1e-12)
    np.testing.assert_allclose(traj.potential_energy, [0, -1, -2, -3], atol=1e-12)
    from ase.units import fs

    np.testing.assert_allclose(traj.velocities, [a.get_velocities() * fs for a in frames])
    assert traj.pbc.all()
    # Written once: a second import onto it is refused unless asked to replace it.
    result = runner.invoke(app, [*args, "--save-interval", "10"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    # No time, no H5MD: the file would state a time it does not know.
    result = runner.invoke(app, ["io", "import", str(source), "--out", str(tmp_path / "x.h5md")])
    assert result.exit_code == 2 and "--time-step-fs" in result.output
    assert not (tmp_path / "x.h5md").exists()


def test_xdatcar_frames_read_with_the_time_the_options_give(tmp_path):
    import ase.io

    from scalms.io.foreign import FrameTiming
    from scalms.io.results import open_runs

    frames = [ga_bulk(seed=i) for i in range(3)]
    path = tmp_path / "XDATCAR"
    ase.io.write(path, frames, format="vasp-xdatcar")
    runs = open_runs(path, FrameTiming(time_step_fs=3.0, save_interval=1))
    (ref,) = runs.runs
    traj = runs.read(ref)
    assert (ref.model, ref.structure, ref.n_frames) == ("unknown", "XDATCAR", 3)
    np.testing.assert_allclose(traj.positions, [a.positions for a in frames], atol=1e-6)
    np.testing.assert_array_equal(traj.time_fs, [0.0, 3.0, 6.0])


def test_an_outcar_states_its_time_step_and_holds_every_ionic_step(tmp_path):
    from scalms.io.foreign import FrameTiming, _file_time_step, _resolve_time

    outcar = tmp_path / "OUTCAR"
    outcar.write_text(" POTIM  =    1.5000    time-step for ionic-motion\n")
    assert _file_time_step(outcar) == 1.5
    assert _file_time_step(tmp_path / "run.extxyz") is None  # only OUTCARs are searched
    dt, interval, steps = _resolve_time(outcar, 3, None, None, 1.5, FrameTiming())
    assert (dt, interval, steps.tolist()) == (1.5, 1, [0, 1, 2])
