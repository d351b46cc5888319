"""The parent <-> child protocol, run for real with the builtin classical models."""

import json
import stat

import h5py
import numpy as np
import pytest
from ase.io import read, write
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import ModelEntry, load_config
from scalms.evaluate import run_static
from scalms.io.static_results import is_complete, read_results, read_run_attrs
from scalms.testing import ga_bulk, ga_cluster, write_model_config
from scalms.workers.events import emit, parse
from scalms.workers.fanout import SilentReporter
from scalms.workers.task import Task

runner = CliRunner()


@pytest.fixture
def structures(tmp_path):
    """A two-frame cluster file with a cell, a cluster without any cell, a periodic cell."""
    clusters = tmp_path / "GaPt_cluster.extxyz"
    write(clusters, [ga_cluster(rattle_A=0.05, seed=s) for s in (1, 2)])
    no_cell = tmp_path / "no_cell.xyz"
    plain = ga_cluster(shells=2, seed=3)
    plain.set_cell(None)
    plain.write(no_cell, format="xyz")
    periodic = tmp_path / "bulk.extxyz"
    write(periodic, ga_bulk())
    return [clusters, no_cell, periodic]


def test_lj_torchsim_and_ase_agree_and_the_file_rebuilds_every_frame(tmp_path, structures):
    # Periodic first: TorchSim batches by periodicity, so results must be put back in order.
    structures = [structures[2], structures[0], structures[1]]
    entry = ModelEntry(name="lj", family="builtin")
    run = run_static(structures, [entry], tmp_path / "out.h5", backend="both", device="cpu")
    assert [o.ok for o in run.outcomes] == [True]
    assert is_complete(run.out)
    results = read_results(run.out)
    assert set(results) == {"lj@torchsim", "lj@ase"}
    ts, ase = results["lj@torchsim"], results["lj@ase"]
    assert list(ts) == ["bulk", "GaPt_cluster", "no_cell"]
    assert [len(ts[k]) for k in ts] == [1, 2, 1]
    # Each stored frame holds its own energy: recompute every one in this process.
    from scalms.models.builtin import ase_calculator

    for path, label in zip(structures, ts, strict=True):
        for stored, frame in zip(ts[label], read(path, index=":"), strict=True):
            frame.calc = ase_calculator(entry, "cpu")
            assert stored.get_potential_energy() == pytest.approx(frame.get_potential_energy())
    for label, frames in ts.items():
        for a, b in zip(frames, ase[label], strict=True):
            assert abs(a.get_potential_energy() - b.get_potential_energy()) < 1e-9
            np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-9)
    # Stress only where the frame is periodic, and the same from both backends.
    np.testing.assert_allclose(ts["bulk"][0].get_stress(), ase["bulk"][0].get_stress(), atol=1e-9)
    assert "stress" not in ts["GaPt_cluster"][0].calc.results
    # Frames come back as they were read.
    original = read(structures[1], index=1)
    np.testing.assert_array_equal(ts["GaPt_cluster"][1].positions, original.positions)
    np.testing.assert_array_equal(ts["GaPt_cluster"][1].numbers, original.numbers)
    attrs = read_run_attrs(run.out)
    assert attrs["lj@torchsim"]["backend"] == "torchsim"
    assert attrs["lj@ase"]["backend"] == "ase"
    assert "torch" in attrs["lj@torchsim"]["versions"]


def test_lj_dimer_matches_the_analytic_shifted_potential():
    """In-process adapter check: E = 4ε[(σ/r)¹² - (σ/r)⁶] - V(r_c), F = -dE/dr."""
    from ase import Atoms

    from scalms.models.builtin import LJ_DEFAULTS, ase_calculator, torchsim_model
    from scalms.static import evaluate_ase, evaluate_torchsim

    sigma, epsilon, cutoff = (LJ_DEFAULTS[k] for k in ("sigma", "epsilon", "cutoff"))
    r = 2.9
    dimer = Atoms("Ga2", positions=[[0, 0, 0], [r, 0, 0]])

    def lj(x):
        return 4 * epsilon * ((sigma / x) ** 12 - (sigma / x) ** 6)

    expected_energy = lj(r) - lj(cutoff)
    expected_force = 24 * epsilon / r * (2 * (sigma / r) ** 12 - (sigma / r) ** 6)
    entry = ModelEntry(name="lj", family="builtin")
    for result in (
        evaluate_torchsim([dimer], torchsim_model(entry, "cpu"), "cpu"),
        evaluate_ase([dimer], ase_calculator(entry, "cpu")),
    ):
        assert result.energy[0] == pytest.approx(expected_energy, rel=1e-10)
        assert result.forces[0][1, 0] == pytest.approx(expected_force, rel=1e-10)
        np.testing.assert_allclose(result.forces[0].sum(axis=0), 0.0, atol=1e-12)


def _killed_python(folder):
    """An 'interpreter' that dies by SIGKILL at once, as a child killed by the OOM killer."""
    script = folder / "killed-python"
    script.write_text("#!/bin/sh\nkill -9 $$\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.slow
def test_failing_models_fail_alone_named_with_their_reason_and_log(tmp_path, structures):
    config = write_model_config(
        tmp_path,
        f"""
builtin:
  models:
    lj: {{}}
    emt: {{}}
MACE:
  models:
    mace-missing:
      model_path: {tmp_path / "missing.model"}
SevenNet:
  models:
    7net-killed:
      model_path: {structures[0]}
      venv_path: {_killed_python(tmp_path)}
""",
    )
    out = tmp_path / "out.h5"
    result = runner.invoke(
        app,
        ["static", str(structures[0]), "-c", str(config), "-o", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a handled exit, not a crash
    output = " ".join(result.output.split())
    assert "failed emt: model 'emt' does not know element(s) in GaPt_cluster: Ga" in output
    assert "failed mace-missing:" in output and "file not found" in output
    assert "failed 7net-killed: killed by signal SIGKILL" in output
    assert "child.log" in output
    # The good model's results are there, in a file marked complete that names the failures.
    assert set(read_results(out)) == {"lj"}
    with h5py.File(out) as handle:
        assert handle.attrs["complete"]
        failed = json.loads(handle.attrs["failed"])
        assert sorted(failed) == ["7net-killed", "emt", "mace-missing"]


def test_a_child_past_its_time_limit_is_stopped(tmp_path, structures):
    entry = ModelEntry(name="lj", family="builtin")
    run = run_static(structures[:1], [entry], tmp_path / "out.h5", device="cpu", timeout_s=0.5)
    (outcome,) = run.outcomes
    assert not outcome.ok
    assert "time limit" in outcome.reason


def test_an_interrupted_run_leaves_a_readable_file_marked_incomplete(tmp_path, structures):
    class InterruptAtSecondModel(SilentReporter):
        def start(self, model):
            if model == "lj-2":
                raise KeyboardInterrupt

    entries = [ModelEntry(name="lj", family="builtin"), ModelEntry(name="lj-2", family="builtin")]
    out = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        run_static(structures[:1], entries, out, device="cpu", reporter=InterruptAtSecondModel())
    assert not is_complete(out)
    assert set(read_results(out)) == {"lj"}


@pytest.mark.parametrize("content", [None, b"\x00\x01 not a structure \xff"])
def test_missing_or_unreadable_structure_exits_2_with_its_path(tmp_path, builtin_config, content):
    path = tmp_path / "broken.xyz"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["static", str(path), "-c", str(builtin_config)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "broken.xyz" in result.output


def test_task_files_round_trip(tmp_path, builtin_config):
    entry = load_config(builtin_config).entries["lj"]
    task = Task("static", entry, tmp_path / "r.h5", "cpu", 7, {"backends": ["ase"]})
    assert Task.from_json(task.to_json()) == task


def test_events_are_told_apart_from_other_output(capsys):
    emit("progress", done=1, total=2)
    line = capsys.readouterr().out
    assert parse(line) == {"event": "progress", "done": 1, "total": 2}
    assert parse("SevenNet banner\n") is None


def test_cli_help_lists_every_section():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("static", "env", "models"):
        assert command in result.output


def test_a_model_torchsim_lacks_falls_back_to_ase_and_says_so(tmp_path):
    from ase.cluster import Icosahedron

    structure = tmp_path / "Pt13.xyz"
    Icosahedron("Pt", noshells=2).write(structure)
    entry = ModelEntry(name="emt", family="builtin")
    run = run_static([structure], [entry], tmp_path / "out.h5", backend="auto", device="cpu")
    assert run.outcomes[0].ok, run.outcomes[0].reason
    attrs = read_run_attrs(run.out)["emt"]
    assert attrs["backend"] == "ase" and attrs["requested_backend"] == "auto"
    assert "TorchSim has no EMT model" in attrs["fallback"]
    (frame,) = read_results(run.out)["emt"]["Pt13"]
    np.testing.assert_allclose(frame.get_forces().sum(axis=0), 0.0, atol=1e-10)


def test_env_create_rejects_unknown_families_with_the_choices():
    result = runner.invoke(app, ["env", "create", "allegro"])
    assert result.exit_code == 2
    assert "unknown environment 'allegro'" in result.output and "sevennet" in result.output


def test_the_parent_imports_no_model_package_or_torch():
    """The parent's modules load without torch or any model family (fast start-up, no clashes)."""
    import subprocess
    import sys

    code = (
        "import sys, scalms.cli, scalms.config, scalms.envs, scalms.evaluate;"
        "import scalms.workers.parent;"
        "heavy = {'torch', 'torch_sim', 'sevenn', 'mace', 'orb_models', 'mattersim', 'nequip'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_a_noisy_child_with_stray_bytes_and_a_lingering_grandchild_is_read_and_reaped(tmp_path):
    """Model packages print anything; the parent must drain it all, keep the child's own error,
    and not wait for a process the child left behind holding the pipe."""
    import time

    from scalms.workers.parent import run_child

    script = tmp_path / "noisy-python"
    script.write_text(
        "#!/bin/sh\n"
        "printf '\\377\\376 banner\\n'\n"
        'i=0; while [ $i -lt 3000 ]; do echo "chatter $i"; i=$((i+1)); done\n'
        "sleep 60 &\n"
        'echo \'@scalms-event {"event": "error", "message": "weights are bad"}\'\n'
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    entry = ModelEntry(name="noisy", family="sevennet", venv_python=script)
    task = Task("static", entry, tmp_path / "r.h5", "cpu")
    started = time.perf_counter()
    result = run_child(task, tmp_path / "noisy", timeout_s=30)
    assert time.perf_counter() - started < 10
    assert not result.ok and result.reason() == "weights are bad"
    log = result.log.read_text()
    assert "chatter 2999" in log and "banner" in log


def test_both_backends_keep_the_finished_ase_run_when_torchsim_then_fails(tmp_path):
    from ase.cluster import Icosahedron

    structure = tmp_path / "Pt13.xyz"
    Icosahedron("Pt", noshells=2).write(structure)
    entry = ModelEntry(name="emt", family="builtin")
    run = run_static([structure], [entry], tmp_path / "out.h5", backend="both", device="cpu")
    (outcome,) = run.outcomes
    assert not outcome.ok and "TorchSim has no EMT model" in outcome.reason
    assert set(read_results(run.out)) == {"emt@ase"}
    with h5py.File(run.out) as handle:
        assert handle.attrs["complete"] and json.loads(handle.attrs["failed"]) == ["emt"]


def test_ctrl_c_while_a_child_runs_stops_its_process_and_keeps_the_file_readable(
    tmp_path, structures
):
    """A real SIGINT to the parent's main thread (what a terminal sends on Ctrl-C; the child
    leads its own session and gets none) at the child's first progress event, while it works."""
    import signal
    import threading

    import psutil

    task_file = str(tmp_path / "out_runs" / "lj" / "task.json")

    class CtrlCAtFirstProgress(SilentReporter):
        def __init__(self):
            self.events: list[dict] = []
            self.children: list[psutil.Process] = []

        def event(self, model, event):
            self.events.append(event)
            if event.get("event") == "progress" and not self.children:
                self.children = [
                    p
                    for p in psutil.process_iter(["cmdline"])
                    if task_file in (p.info["cmdline"] or [])
                ]
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    out = tmp_path / "out.h5"
    entry = ModelEntry(name="lj", family="builtin")
    reporter = CtrlCAtFirstProgress()
    # Python turns SIGINT into KeyboardInterrupt only where its parent left SIGINT alone; a
    # suite started in the background of a shell inherits it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_static(structures, [entry], out, device="cpu", reporter=reporter)
    finally:
        signal.signal(signal.SIGINT, previous)
    log = tmp_path / "out_runs" / "lj" / "child.log"
    assert len(reporter.children) == 1, f"no child running at Ctrl-C: {log.read_text()[-2000:]}"
    (child,) = reporter.children
    assert not child.is_running()  # stopped, and
    assert all(e.get("event") != "done" for e in reporter.events)  # before it finished
    assert not is_complete(out)
    assert read_results(out) == {}
    alive = [p for p in psutil.process_iter(["cmdline"]) if task_file in (p.info["cmdline"] or [])]
    assert alive == []
