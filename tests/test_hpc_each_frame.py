"""``scalms hpc rattle --each-frame``: given frames labelled as they are, in order, with their own
info kept; resumed and sharded like rattled frames; the labeller's element check covering every
frame; a --count beyond the frames refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from scalms.errors import ScalmsError
from scalms.hpc.labelling import label_slots, run_rattle
from scalms.hpc.rattle import (
    InputFrames,
    RattleSpec,
    composition,
    make_candidate,
    resolve_count,
)
from scalms.hpc.reference_file import read_reference
from tests.conftest import EXAMPLES
from tests.test_bad_input import refused
from tests.test_hpc_rattle import Quiet, lj_labeller

SIZES = (5, 8, 13, 20, 30)
"""Atoms of the five given frames: different sizes, as the structures of a learning round."""


def _given_frames(tmp_path: Path, symbols_of=None) -> Path:
    """Five frames cut from the Ga54Pt icosahedron, each with the info an active-learning round
    writes; ``symbols_of(i, atoms)`` may change frame i's elements."""
    base = ase.io.read(EXAMPLES / "Ga54Pt_icosahedron.xyz")
    frames = []
    for i, n in enumerate(SIZES):
        atoms = base[:n].copy()
        atoms.info = {
            "learn_round": 2,
            "structure": f"cluster{i}",
            "md_frame": 10 * i + 3,
            "max_spread_eV_per_A": 0.25 + i,
        }
        if symbols_of is not None:
            symbols_of(i, atoms)
        frames.append(atoms)
    path = tmp_path / "selected.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def _run(spec: RattleSpec, calculator: str, out: Path, config: Path):
    log = Quiet()
    outcome = run_rattle(spec, calculator, out=out, model_config=config, device="cpu", log=log)
    computed = [line for line in log.lines if line.startswith("slot ") and "mean |F|" in line]
    return outcome, computed


def test_each_frame_labels_every_given_frame_in_order_unmoved_with_its_own_info(
    tmp_path, builtin_config
):
    path = _given_frames(tmp_path)
    given = InputFrames(path)
    spec = RattleSpec(input=path, stddev_A=0.0, count=5, each_frame=True, seed=3)
    outcome, computed = _run(spec, "lj", tmp_path / "labelled.xyz", builtin_config)
    assert outcome.complete and outcome.computed == 5 and len(computed) == 5
    labelled = read_reference(tmp_path / "labelled.xyz")
    assert [len(a) for a in labelled] == list(SIZES)
    reference = lj_labeller()
    for slot, (atoms, original) in enumerate(zip(labelled, given, strict=True)):
        np.testing.assert_array_equal(atoms.positions, original.positions)
        assert atoms.get_chemical_symbols() == original.get_chemical_symbols()
        for key in ("learn_round", "structure", "md_frame", "max_spread_eV_per_A"):
            assert atoms.info[key] == original.info[key]
        assert atoms.info["rattle_index"] == slot and atoms.info["source_frame"] == slot
        label = reference.label(original)  # the labeller's energy of the frame as given
        assert atoms.info["REF_energy"] == pytest.approx(label.energy_eV, rel=1e-9)
        np.testing.assert_allclose(atoms.arrays["REF_forces"], label.forces_eV_per_A, atol=1e-6)


def test_a_rattle_of_zero_leaves_every_position_bit_identical(tmp_path):
    path = _given_frames(tmp_path)
    given = InputFrames(path)
    spec = RattleSpec(input=path, stddev_A=0.0, count=5, each_frame=True, seed=11)
    for slot in range(5):
        candidate = make_candidate(spec, given, slot, attempt=1)
        assert candidate.source_frame == slot
        np.testing.assert_array_equal(candidate.atoms.positions, given[slot].positions)
    # A rattle that is not zero moves frame j itself, not a random frame.
    moved = make_candidate(replace(spec, stddev_A=0.05), given, 4, 0).atoms
    shift = moved.positions - given[4].positions
    assert 0 < np.abs(shift).max() < 0.5


def test_a_partial_reference_file_is_continued_labelling_only_the_missing_frames(
    tmp_path, builtin_config
):
    path = _given_frames(tmp_path)
    out = tmp_path / "labelled.xyz"
    spec = RattleSpec(input=path, stddev_A=0.0, count=2, each_frame=True)
    first, computed = _run(spec, "lj", out, builtin_config)
    assert first.computed == 2 and len(computed) == 2
    before = read_reference(out)
    again, computed = _run(replace(spec, count=5), "lj", out, builtin_config)
    assert again.complete and again.computed == 3 and again.done == 5
    assert [line.split(":")[0] for line in computed] == ["slot 2", "slot 3", "slot 4"]
    after = read_reference(out)
    assert [a.info["md_frame"] for a in after] == [3, 13, 23, 33, 43]
    for old, new in zip(before, after[:2], strict=True):  # kept, not recomputed
        assert new.info["wall_time_s"] == old.info["wall_time_s"]
    # The other mode on the same file is another job.
    with pytest.raises(ScalmsError, match="each_frame: True there, None now"):
        run_rattle(
            replace(spec, count=5, each_frame=False), "lj", out=out,
            model_config=builtin_config, device="cpu",
        )  # fmt: skip


def test_a_count_beyond_the_given_frames_is_refused_before_anything_is_written(
    tmp_path, builtin_config
):
    path = _given_frames(tmp_path)
    spec = RattleSpec(input=path, count=6, each_frame=True, stddev_A=0.0)
    with pytest.raises(ScalmsError, match=r"--count 6 with --each-frame: .* holds only 5 frame"):
        run_rattle(spec, "lj", out=tmp_path / "r.xyz", model_config=builtin_config, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_config.yaml", "selected.extxyz"]
    with pytest.raises(ScalmsError, match="holds only 5 frame"):
        make_candidate(spec, InputFrames(path), 5, 0)
    # Without --each-frame any count draws frames at random, as before.
    assert replace(spec, each_frame=False).slots() == list(range(6))


def _ga_in_frame_3(i: int, atoms) -> None:
    """Frames of Pt and Cu (EMT knows both); frame 3 also holds Ga (EMT does not)."""
    atoms.symbols = ["Pt" if k % 2 else "Cu" for k in range(len(atoms))]
    if i == 3:
        atoms.symbols[0] = "Ga"


def test_the_element_check_covers_an_element_only_a_later_frame_holds(tmp_path, builtin_config):
    path = _given_frames(tmp_path, _ga_in_frame_3)
    frames = InputFrames(path)
    spec = RattleSpec(input=path, stddev_A=0.0, count=5, each_frame=True)
    probe = composition(spec, frames)
    # Slot 0's structure, then two Ga atoms (two: the electron count keeps slot 0's parity).
    assert probe.get_chemical_symbols() == [*frames[0].get_chemical_symbols(), "Ga", "Ga"]
    assert not set(frames[0].get_chemical_symbols()) & {"Ga"}
    assert np.linalg.norm(probe.positions[-1] - probe.positions[-2]) == pytest.approx(5.0)
    # Slots 0-2 only: Ga is no part of the job, nothing is added.
    assert len(composition(replace(spec, count=3), frames)) == len(frames[0])
    out = tmp_path / "emt.xyz"
    with pytest.raises(ScalmsError, match=r"model 'emt' does not know element\(s\) in .*Ga"):
        run_rattle(spec, "emt", out=out, model_config=builtin_config, device="cpu")
    assert not out.exists() and not out.with_name("emt.xyz.job.json").exists()
    # Without frame 3's Ga the same job runs: Pt and Cu frames of every size, labelled by EMT.
    (tmp_path / "clean").mkdir()
    clean = _given_frames(tmp_path / "clean", lambda i, atoms: _ga_in_frame_3(-1, atoms))
    outcome, _ = _run(replace(spec, input=clean), "emt", out, builtin_config)
    assert outcome.complete and outcome.computed == 5


def test_shard_1_of_2_labels_frames_1_and_3(tmp_path, builtin_config):
    path = _given_frames(tmp_path)
    spec = RattleSpec(input=path, stddev_A=0.0, count=5, each_frame=True, shard=(1, 2))
    outcome, _ = _run(spec, "lj", tmp_path / "s1.xyz", builtin_config)
    assert outcome.complete and outcome.total == 2
    labelled = read_reference(tmp_path / "s1.xyz")
    assert [a.info["rattle_index"] for a in labelled] == [1, 3]
    assert [a.info["structure"] for a in labelled] == ["cluster1", "cluster3"]
    assert [len(a) for a in labelled] == [SIZES[1], SIZES[3]]


def test_each_frame_labels_a_scalms_trajectory_frame_by_frame(tmp_path):
    """An H5MD trajectory (one set of atoms throughout): frames labelled in order, checked once."""
    from scalms.io.trajectory import TrajectoryWriter

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    path = tmp_path / "md.h5"
    writer = TrajectoryWriter.create(
        path, numbers=atoms.numbers, masses=atoms.get_masses(), pbc=atoms.pbc, time_step_fs=1.0,
        save_interval=1, model="lj", structure="cu", parameters={}, velocities=False,
        forces=False,
    )  # fmt: skip
    for step in range(3):
        writer.append(step=step, positions=atoms.positions + 0.01 * step, cell=atoms.cell.array)
    writer.close()
    frames = InputFrames(path)
    assert frames.same_atoms and resolve_count(path, None, True) == 3
    spec = RattleSpec(input=path, stddev_A=0.0, count=3, each_frame=True)
    assert len(composition(spec, frames)) == len(atoms)
    label_slots(spec, lj_labeller(), tmp_path / "md.xyz", Quiet())
    labelled = read_reference(tmp_path / "md.xyz")
    for step, frame in enumerate(labelled):
        np.testing.assert_allclose(frame.positions, atoms.positions + 0.01 * step, atol=1e-8)


# The command -----------------------------------------------------------------------------------


def test_the_command_without_count_labels_every_frame_and_refuses_too_many(
    tmp_path, builtin_config
):
    path = _given_frames(tmp_path)
    assert resolve_count(path, None, False) == 10 and resolve_count(path, 3, True) == 3
    from typer.testing import CliRunner

    from scalms.cli import app

    args = ["hpc", "rattle", str(path), "--calculator", "lj", "--each-frame", "--stddev-A", "0",
            "-c", str(builtin_config), "--device", "cpu", "--out"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, str(tmp_path / "all.xyz")])
    assert result.exit_code == 0, result.output
    assert "5/5 frames (5 computed now" in result.output
    assert [a.info["md_frame"] for a in read_reference(tmp_path / "all.xyz")] == [3, 13, 23, 33, 43]
    refused(tmp_path, *args, "more.xyz", "--count", "7", message="holds only 5 frame(s)")


def test_an_array_job_without_count_shares_out_every_given_frame(tmp_path, builtin_config):
    from typer.testing import CliRunner

    from scalms.cli import app

    path = _given_frames(tmp_path)
    job = tmp_path / "job"
    command = ["hpc", "rattle", str(path), "--calculator", "lj", "--each-frame", "--stddev-A",
               "0", "--out", str(tmp_path / "ref.xyz"), "-c", str(builtin_config)]  # fmt: skip
    result = CliRunner().invoke(
        app, ["hpc", "submit", "--dir", str(job), "--array-tasks", "2", "--dry-run", "--", *command]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads((job / "job.json").read_text())["plan"]
    assert plan["count"] == 5 and [t["items"] for t in plan["tasks"]] == [["0/2"], ["1/2"]]
    assert all("--each-frame" in t["argv"] and "--count" not in t["argv"] for t in plan["tasks"])
    too_many = CliRunner().invoke(
        app, ["hpc", "submit", "--dir", str(tmp_path / "j6"), "--array-tasks", "6", "--dry-run",
              "--", *command],
    )  # fmt: skip
    assert too_many.exit_code == 2 and "more than the 5 frames" in too_many.output
