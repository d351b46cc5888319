"""``scalms hpc rattle``: seeded slot geometry, shards, alloying, pre-convergence, molecules, the
appended reference file (kill, resume, refusals) and bad input."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule as ase_molecule
from ase.calculators.lj import LennardJones
from typer.testing import CliRunner

from scalms.cli import app
from scalms.hpc.labelling import label_slots
from scalms.hpc.labels import CalculatorLabeller, SCFNotConverged
from scalms.hpc.rattle import (
    InputFrames,
    RattleSpec,
    make_candidate,
    parse_shard,
    pre_converge,
)
from scalms.hpc.reference_file import ReferenceFile, complete_prefix, read_reference
from tests.conftest import EXAMPLES, PATIENCE_S, require_programs, wait_for
from tests.test_bad_input import refused
from tests.test_files import hold_lock

SCALMS = [os.path.join(os.path.dirname(sys.executable), "scalms")]
GA54PT = EXAMPLES / "Ga54Pt_icosahedron.xyz"
GA144PT3 = EXAMPLES / "Ga144Pt3_icosahedron.xyz"
runner = CliRunner()


def lj_labeller() -> CalculatorLabeller:
    """The builtin ``lj`` model's ASE calculator (its defaults), in this process."""
    calculator = LennardJones(sigma=2.40, epsilon=0.10, rc=6.0, smooth=False)
    return CalculatorLabeller("lj", calculator, {"family": "builtin"})


class Quiet:
    def __init__(self):
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, done: int, total: int) -> None:
        pass


def max_force(atoms, calculator) -> float:
    work = atoms.copy()
    work.calc = calculator
    return float(np.linalg.norm(work.get_forces(), axis=1).max())


def by_slot(frames) -> dict:
    return {int(a.info["rattle_index"]): a for a in frames}


# Slot geometry -------------------------------------------------------------------------------


def test_a_slot_draws_the_same_geometry_from_the_same_seed_whatever_the_count_or_shard():
    frames = InputFrames(GA54PT)
    spec = RattleSpec(input=GA54PT, stddev_A=0.1, count=5, seed=7)
    first = make_candidate(spec, frames, 3, 0).atoms
    again = make_candidate(replace(spec, count=40, shard=(1, 2)), frames, 3, 0).atoms
    np.testing.assert_array_equal(first.positions, again.positions)
    other_slot = make_candidate(spec, frames, 4, 0).atoms
    other_try = make_candidate(spec, frames, 3, 1).atoms
    other_seed = make_candidate(replace(spec, seed=8), frames, 3, 0).atoms
    for other in (other_slot, other_try, other_seed):
        assert np.abs(other.positions - first.positions).max() > 1e-3
    # The rattle is a normal draw of the asked width about the input.
    displacement = first.positions - frames[0].positions
    assert displacement.std() == pytest.approx(0.1, rel=0.15)


def test_a_trajectory_gives_a_seeded_random_frame_per_slot(tmp_path):
    import ase.io

    base = InputFrames(GA54PT)[0]
    trajectory = [base.copy() for _ in range(6)]
    for i, atoms in enumerate(trajectory):
        atoms.positions += 10.0 * i  # tell the frames apart by where they sit
    path = tmp_path / "traj.extxyz"
    ase.io.write(path, trajectory)
    spec = RattleSpec(input=path, stddev_A=0.0, count=20, seed=1)
    frames = InputFrames(path)
    picks = [make_candidate(spec, frames, j, 0).source_frame for j in range(20)]
    assert len(set(picks)) > 2
    assert picks == [make_candidate(spec, frames, j, 0).source_frame for j in range(20)]
    for j in (0, 5):
        candidate = make_candidate(spec, frames, j, 0)
        np.testing.assert_allclose(
            candidate.atoms.positions, trajectory[candidate.source_frame].positions
        )


def test_alloying_replaces_exactly_the_asked_number_of_host_atoms():
    frames = InputFrames(GA54PT)  # Ga54Pt1
    calculator = lj_labeller().calculator()
    for spec, n_pt in (
        (RattleSpec(input=GA54PT, alloy="Pt", alloy_count=3), 4),
        (RattleSpec(input=GA54PT, alloy="Pt", alloy_fraction=0.1), 1 + 5),  # 0.1 x 54 -> 5
        (RattleSpec(input=GA54PT, alloy="Ag", alloy_count=1, alloy_host="Pt"), 0),
    ):
        sites = []
        for slot in range(3):
            atoms = make_candidate(spec, frames, slot, 0, calculator).atoms
            symbols = atoms.get_chemical_symbols()
            assert symbols.count("Pt") == n_pt and len(atoms) == 55
            assert symbols.count("Ga") + symbols.count("Pt") + symbols.count("Ag") == 55
            sites.append(tuple(np.flatnonzero(atoms.numbers != frames[0].numbers)))
        if spec.alloy_host is None:
            assert len(set(sites)) > 1  # each slot alloys its own sites


def test_pre_convergence_lowers_the_largest_force_and_alloying_always_pre_converges():
    calculator = lj_labeller().calculator()
    start = InputFrames(GA54PT)[0].copy()
    start.rattle(0.15, rng=np.random.default_rng(0))
    relaxed = pre_converge(start, calculator)
    assert max_force(relaxed, calculator) < 0.5 * max_force(start, calculator)
    frames = [start]
    plain = RattleSpec(input=GA54PT, stddev_A=0.0)
    asked = replace(plain, pre_converge=True)
    alloyed = replace(plain, alloy="Pt", alloy_count=2)
    assert not plain.relaxes and asked.relaxes and alloyed.relaxes
    unrelaxed = make_candidate(plain, frames, 0, 0, calculator).atoms
    assert max_force(unrelaxed, calculator) == pytest.approx(max_force(start, calculator))
    np.testing.assert_allclose(
        make_candidate(asked, frames, 0, 0, calculator).atoms.positions, relaxed.positions
    )
    with pytest.raises(ValueError, match="calculator"):
        make_candidate(alloyed, frames, 0, 0, None)


def pair_distances(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[:, None] - positions[None], axis=-1)


def test_with_molecules_only_the_particle_is_relaxed_and_rattled():
    frames = InputFrames(GA54PT)
    calculator = lj_labeller().calculator()
    bare = RattleSpec(input=GA54PT, stddev_A=0.1, pre_converge=True, seed=3)
    spec = replace(bare, molecules=("propane",), n_molecules=3)
    assert spec.config_type == "rattle_molecules"
    particle = make_candidate(bare, frames, 2, 0, calculator).atoms
    system = make_candidate(spec, frames, 2, 0, calculator).atoms
    tags = system.get_tags()
    assert (tags == 0).sum() == 55 and set(tags) == {0, 1, 2, 3}
    # The particle: relaxed alone and rattled exactly as without molecules (placement moved the
    # whole system into its box, so compare the shapes).
    np.testing.assert_allclose(
        pair_distances(system.positions[tags == 0]), pair_distances(particle.positions), atol=1e-9
    )
    shift = system.positions[tags == 0] - particle.positions
    np.testing.assert_allclose(shift, shift[0] + 0 * shift, atol=1e-9)
    # Each propane keeps ASE's geometry: not rattled, not relaxed.
    reference = pair_distances(ase_molecule("C3H8").positions)
    for tag in (1, 2, 3):
        np.testing.assert_allclose(
            pair_distances(system.positions[tags == tag]), reference, atol=1e-9
        )
    gaps = np.linalg.norm(
        system.positions[tags == 0][:, None] - system.positions[tags > 0][None], axis=-1
    )
    assert gaps.min() >= 2.0  # the placement's minimum distance, to the rattled particle


def test_a_shard_string_is_k_over_n_counting_from_zero():
    assert parse_shard("0/2") == (0, 2) and parse_shard("3/4") == (3, 4)
    spec = RattleSpec(input=GA54PT, count=7, shard=(1, 3))
    assert spec.slots() == [1, 4]


# Labelling and the reference file ------------------------------------------------------------


def test_shards_together_are_exactly_the_unsharded_frames(tmp_path):
    spec = RattleSpec(input=GA54PT, stddev_A=0.1, count=5, seed=11)
    label_slots(spec, lj_labeller(), tmp_path / "all.xyz", Quiet())
    for k in (0, 1):
        label_slots(replace(spec, shard=(k, 2)), lj_labeller(), tmp_path / f"s{k}.xyz", Quiet())
    whole = by_slot(read_reference(tmp_path / "all.xyz"))
    first, second = (by_slot(read_reference(tmp_path / f"s{k}.xyz")) for k in (0, 1))
    assert sorted(first) == [0, 2, 4] and sorted(second) == [1, 3]
    merged = {**first, **second}
    assert sorted(merged) == sorted(whole) == list(range(5))
    for slot, atoms in whole.items():
        np.testing.assert_allclose(merged[slot].positions, atoms.positions, atol=1e-8)
        assert merged[slot].info["REF_energy"] == pytest.approx(atoms.info["REF_energy"])
        np.testing.assert_allclose(merged[slot].arrays["REF_forces"], atoms.arrays["REF_forces"])


def test_stored_frames_carry_the_reference_and_how_they_were_made(tmp_path):
    spec = RattleSpec(input=GA54PT, stddev_A=0.05, count=2, seed=4)
    log = Quiet()
    outcome = label_slots(spec, lj_labeller(), tmp_path / "r.xyz", log)
    assert outcome.complete and outcome.computed == 2
    frames = read_reference(tmp_path / "r.xyz")
    calculator = lj_labeller().calculator()
    for slot, atoms in enumerate(frames):
        info = atoms.info
        assert info["rattle_index"] == slot and info["rattle_attempt"] == 0
        assert info["config_type"] == "rattle" and info["calc_name"] == "lj"
        assert info["rattle_stddev_A"] == 0.05 and info["seed"] == 4
        assert info["source_frame"] == 0 and info["source_file"].endswith(GA54PT.name)
        assert info["wall_time_s"] >= 0
        work = atoms.copy()
        work.calc = calculator
        assert info["REF_energy"] == pytest.approx(work.get_potential_energy())
        np.testing.assert_allclose(atoms.arrays["REF_forces"], work.get_forces(), atol=1e-8)
    assert [line.split(":")[0] for line in log.lines] == ["slot 0", "slot 1"]
    assert all("mean |F|" in line and "net |ΣF|" in line for line in log.lines)


def test_a_truncated_last_frame_is_dropped_on_read_and_cut_before_the_next_append(tmp_path):
    spec = RattleSpec(input=GA54PT, count=3, seed=2)
    out = tmp_path / "r.xyz"
    label_slots(replace(spec, count=2), lj_labeller(), out, Quiet())
    data = out.read_bytes()
    whole, n = complete_prefix(data)
    assert (whole, n) == (len(data), 2)
    second = len(b"".join(data.splitlines(keepends=True)[:57]))  # 55 atoms + 2 lines
    for cut in (second + 1, second + 200, len(data) - 1):  # a kill mid-frame: a prefix stays
        out.write_bytes(data[:cut])
        assert len(read_reference(out)) == 1
        assert complete_prefix(data[:cut]) == (second, 1)
    log = Quiet()
    outcome = label_slots(spec, lj_labeller(), out, log)
    assert "unfinished last frame" in log.lines[0]
    assert outcome.computed == 2 and outcome.done == 3
    frames = read_reference(out)
    assert [f.info["rattle_index"] for f in frames] == [0, 1, 2]
    assert complete_prefix(out.read_bytes())[0] == out.stat().st_size


class RefusingLabeller(CalculatorLabeller):
    """Refuses the labelling calls whose numbers (0, 1, ...) are listed, as a DFT code whose
    SCF did not converge would."""

    def __init__(self, refuse: set[int]):
        base = lj_labeller()
        super().__init__(base.name, base.calculator(), base.describe())
        self.refuse, self.calls = refuse, 0

    def label(self, atoms):
        call, self.calls = self.calls, self.calls + 1
        if call in self.refuse:
            raise SCFNotConverged(f"SCF not converged in 100 steps (call {call})")
        return super().label(atoms)


def test_a_refused_try_is_recorded_and_the_slot_retried_with_a_new_rattle(tmp_path):
    out = tmp_path / "r.xyz"
    spec = RattleSpec(input=GA54PT, count=3, seed=5)
    log = Quiet()
    outcome = label_slots(spec, RefusingLabeller({1}), out, log)  # slot 1, try 0
    assert outcome.complete and outcome.refused == 1 and outcome.computed == 3
    frames = by_slot(read_reference(out))
    assert frames[1].info["rattle_attempt"] == 1 and frames[2].info["rattle_attempt"] == 0
    first_try = make_candidate(spec, InputFrames(GA54PT), 1, 0).atoms
    assert np.abs(frames[1].positions - first_try.positions).max() > 1e-3
    assert ReferenceFile(out).refused() == [
        {"slot": 1, "attempt": 0, "reason": "SCF not converged in 100 steps (call 1)"}
    ]
    assert any(line.startswith("slot 1, try 1: refused") for line in log.lines)


def test_a_slot_refused_max_attempts_times_stops_the_job_and_a_rerun_tries_no_refused_try(
    tmp_path,
):
    out = tmp_path / "r.xyz"
    spec = RattleSpec(input=GA54PT, count=3, seed=5, max_attempts=2)
    # Calls: slot 0 ok (0), slot 1 refused twice (1, 2): the job stops before slot 2.
    outcome = label_slots(spec, RefusingLabeller({1, 2}), out, Quiet())
    assert not outcome.complete and "slot 1 refused 2 time(s)" in outcome.stopped
    assert [f.info["rattle_index"] for f in read_reference(out)] == [0]
    assert len(ReferenceFile(out).refused()) == 2
    # The same limit again: nothing to try, nothing labelled.
    again = RefusingLabeller(set())
    assert label_slots(spec, again, out, Quiet()).stopped and again.calls == 0
    # A higher limit: only try 2 of slot 1 runs, then slot 2; slot 0 is not recomputed.
    more = RefusingLabeller(set())
    outcome = label_slots(replace(spec, max_attempts=3), more, out, Quiet())
    assert outcome.complete and more.calls == 2 and outcome.computed == 2
    frames = by_slot(read_reference(out))
    assert sorted(frames) == [0, 1, 2] and frames[1].info["rattle_attempt"] == 2


def test_a_reference_file_of_another_job_or_of_nobody_is_not_continued(tmp_path):
    from scalms.errors import ScalmsError

    out = tmp_path / "r.xyz"
    spec = RattleSpec(input=GA54PT, count=2, seed=1)
    label_slots(spec, lj_labeller(), out, Quiet())
    with pytest.raises(ScalmsError, match=r"stddev_A: 0\.1 there, 0\.2 now"):
        label_slots(replace(spec, stddev_A=0.2), lj_labeller(), out, Quiet())
    with pytest.raises(ScalmsError, match="seed: 1 there, 2 now"):
        label_slots(replace(spec, seed=2), lj_labeller(), out, Quiet())
    with pytest.raises(ScalmsError, match="slot 1, which shard 0/1 of --count 1"):
        label_slots(replace(spec, count=1), lj_labeller(), out, Quiet())
    # More slots are fine: the first ones do not change.
    assert label_slots(replace(spec, count=3), lj_labeller(), out, Quiet()).computed == 1
    foreign = tmp_path / "mine.xyz"
    foreign.write_text("1\n\nGa 0 0 0\n")
    with pytest.raises(ScalmsError, match="was not made by"):
        label_slots(spec, lj_labeller(), foreign, Quiet())


# The command ---------------------------------------------------------------------------------


def _rattle_command(out: Path, config: Path, *extra: str) -> list[str]:
    return [
        *SCALMS, "hpc", "rattle", str(GA144PT3), "--calculator", "lj", "--out", str(out),
        "-c", str(config), "--device", "cpu", "--stddev-A", "0.05", "--seed", "9", *extra,
    ]  # fmt: skip


def test_the_command_labels_with_a_model_in_its_child(tmp_path, builtin_config):
    out = tmp_path / "lj.xyz"
    first = subprocess.run(_rattle_command(out, builtin_config, "--count", "3"), **_text())
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3/3 frames (3 computed now, 0 kept from before)" in first.stdout
    assert first.stdout.count("mean |F|") == 3
    assert [a.info["rattle_index"] for a in read_reference(out)] == [0, 1, 2]
    assert (tmp_path / "lj_runs" / "lj" / "child.log").exists()


def test_a_second_command_on_the_same_out_waits_for_none_and_is_refused(tmp_path, builtin_config):
    out = tmp_path / "lj.xyz"
    holder = hold_lock(tmp_path / "lj_runs")  # the same job still running, e.g. requeued
    try:
        refused(
            tmp_path, *_rattle_command(out, builtin_config, "--count", "1")[1:],
            message=f"is in use by pid {holder.pid} (the holder)",
        )  # fmt: skip
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def _text() -> dict:
    return {"capture_output": True, "text": True}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the command's process group, as a scheduler ends a job, and wait until its model
    child (in a session of its own, so not in the group) is gone too: it dies with its parent."""
    import psutil

    children = []
    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=PATIENCE_S)
    assert not alive, f"left running: {alive}"


@pytest.mark.slow
def test_a_job_killed_with_sigkill_finishes_on_rerun_with_count_frames_and_recomputes_none(
    tmp_path, builtin_config
):
    count, wait_frames = 300, 15
    out = tmp_path / "killed.xyz"
    process = subprocess.Popen(
        _rattle_command(out, builtin_config, "--count", str(count)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(read_reference(out)) >= wait_frames, f"{wait_frames} frames on disk")
    finally:
        kill_group(process)
    before = read_reference(out)
    kept = len(before)
    assert wait_frames <= kept < count, "the job was not stopped mid-way"
    rerun = subprocess.run(_rattle_command(out, builtin_config, "--count", str(count)), **_text())
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{count}/{count} frames ({count - kept} computed now, {kept} kept" in rerun.stdout
    assert rerun.stdout.count("mean |F|") == count - kept  # one log line per computed frame
    after = read_reference(out)
    assert len(after) == count
    assert sorted(a.info["rattle_index"] for a in after) == list(range(count))
    for old, new in zip(before, after[:kept], strict=True):  # untouched: same time, same numbers
        assert new.info["wall_time_s"] == old.info["wall_time_s"]
        assert new.info["rattle_index"] == old.info["rattle_index"]
        np.testing.assert_array_equal(new.arrays["REF_forces"], old.arrays["REF_forces"])
    # A finished job run again computes nothing.
    again = subprocess.run(_rattle_command(out, builtin_config, "--count", str(count)), **_text())
    assert again.returncode == 0 and f"(0 computed now, {count} kept" in again.stdout
    assert len(read_reference(out)) == count


def test_rerunning_with_other_settings_on_the_same_out_is_refused_with_one_line(
    tmp_path, builtin_config
):
    out = tmp_path / "lj.xyz"
    done = runner.invoke(app, _rattle_command(out, builtin_config, "--count", "1")[1:])
    assert done.exit_code == 0, done.output
    refused(
        tmp_path, *_rattle_command(out, builtin_config, "--count", "1", "--stddev-A", "0.2")[1:],
        message="was made by another job (rattle.stddev_A: 0.05 there, 0.2 now)",
    )  # fmt: skip
    emt = _rattle_command(out, builtin_config, "--count", "1")[1:]
    emt[emt.index("lj")] = "emt"
    refused(tmp_path, *emt, message="calculator: 'lj' there, 'emt' now")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.xyz", "--calculator", "lj"], "input structure not found"),
        (["ga.xyz", "--calculator", "nosuch"], "unknown calculator 'nosuch'"),
        (["ga.xyz", "--calculator", "lj", "--alloy", "Xx", "--count-alloy", "1"],
         "unknown element 'Xx'"),
        (["ga.xyz", "--calculator", "lj", "--alloy", "Pt"], "either --fraction or --count-alloy"),
        (["ga.xyz", "--calculator", "lj", "--count", "0"], "0 is not in the range x>=1"),
        (["ga.xyz", "--calculator", "lj", "--shard", "2of4"], "--shard '2of4' is not K/N"),
        (["ga.xyz", "--calculator", "lj", "--shard", "4/4"], "need 0 <= K < N"),
        (["ga.xyz", "--calculator", "lj", "--molecule", "propane"], "go together"),
        (["ga.xyz", "--calculator", "emt"], "model 'emt' does not know element(s)"),
        (["ga.xyz", "--calculator", "cp2k", "--dft-command", "no-cp2k-here"],
         "the program 'no-cp2k-here' is not on PATH"),
        (["ga.xyz", "--calculator", "vasp", "--pseudopotential", "Ga"], "is not EL=FILE"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_one_line_and_nothing_written(
    tmp_path, builtin_config, args, message
):
    (tmp_path / "ga.xyz").write_text("2\n\nGa 0 0 0\nGa 0 0 2.7\n")
    config = builtin_config.rename(tmp_path / "model_config.yaml")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        refused(
            tmp_path, "hpc", "rattle", *args, "--out", "out.xyz", "-c", config,
            "--device", "cpu", message=message,
        )  # fmt: skip
    finally:
        os.chdir(cwd)


def test_the_reference_sidecar_names_the_job(tmp_path):
    out = tmp_path / "r.xyz"
    label_slots(RattleSpec(input=GA54PT, count=1), lj_labeller(), out, Quiet())
    state = json.loads((tmp_path / "r.xyz.job.json").read_text())
    assert state["job"]["calculator"] == "lj" and state["refused"] == []
    assert state["job"]["rattle"]["stddev_A"] == 0.1


@pytest.mark.slow
def test_cp2k_labels_one_rattled_ga4_frame_end_to_end(tmp_path):
    """The DFT path of the command: CP2K in this process, the frame appended with its SCF
    steps and settings (the DFT modules' own tests check the physics at the defaults)."""
    require_programs("cp2k.psmp")
    from ase import Atoms

    cluster = Atoms(
        "Ga4", positions=[[0, 0, 0], [2.7, 0, 0], [1.35, 2.34, 0], [1.35, 0.78, 2.2]], pbc=False
    )
    cluster.write(tmp_path / "ga4.xyz")
    out = tmp_path / "ga4_rattle.xyz"
    result = subprocess.run(
        [
            *SCALMS, "hpc", "rattle", str(tmp_path / "ga4.xyz"), "--calculator", "cp2k",
            "--count", "1", "--stddev-A", "0.05", "--out", str(out), "--threads", "2",
            "--cutoff", "300",  # the pipeline, not the physics: cheap
        ],
        **_text(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [frame] = read_reference(out)
    assert frame.info["calc_name"] == "cp2k" and frame.info["rattle_index"] == 0
    assert frame.info["calc_cutoff_Ry"] == 300 and frame.info["scf_steps"] >= 1
    assert frame.arrays["REF_forces"].shape == (4, 3)
    assert np.isfinite(frame.info["REF_energy"]) and "mean |F|" in result.stdout
    again = subprocess.run(result.args, **_text())  # finished: CP2K is not started again
    assert again.returncode == 0 and "1/1 frames (0 computed now, 1 kept" in again.stdout
