"""The cost benchmark: the resource sampler against real processes, and MD timed through a real
child (the builtin Lennard-Jones model, in scalms's own interpreter)."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.benchmark.cost import merge_csv, read_rows
from scalms.benchmark.sampler import GpuProbe, ResourceSampler
from scalms.cli import app
from scalms.io.trajectory import trajectory_info

from .conftest import EXAMPLES, wait_for
from .test_benchmark_accuracy import _plotly_figure, _values

runner = CliRunner()

# Spins one core until killed, while its own child holds 300 MiB; the grandchild reads its
# stdin, so it ends when its parent does.
BUSY_PARENT = """
import subprocess, sys
holder = subprocess.Popen([sys.executable, "-c",
    "import sys; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); "
    "print('holding', flush=True); sys.stdin.read()"], stdin=subprocess.PIPE)
while True:
    pass
"""


def test_sampler_sees_a_busy_childs_cpu_and_its_descendants_memory():
    """A child spins one core while its own child holds 300 MiB: both count, per process."""
    child = subprocess.Popen([sys.executable, "-c", BUSY_PARENT])
    try:
        with ResourceSampler(interval_s=0.1) as sampler:
            sampler.watch(child.pid)
            sampler.label(model="busy", phase="md")

            def seen() -> bool:
                samples = list(sampler.samples)
                return (
                    len(samples) >= 10
                    and max(s.rss_MB for s in samples) > 300.0  # the grandchild's block
                    and max(s.cpu_percent for s in samples) > 50.0  # a core spinning
                )

            wait_for(seen, "ten samples, the spinning core and the 300 MiB block")
    finally:
        child.kill()
        child.wait()
    samples = sampler.samples
    assert max(s.n_processes for s in samples) == 2
    assert all(s.label == {"model": "busy", "phase": "md"} for s in samples)
    row = samples[-1].row()
    assert row["model"] == "busy" and {"cpu_percent", "rss_MB", "gpu_memory_scope"} <= set(row)


def test_sampler_reads_only_a_watched_live_process_and_gpu_readings_say_their_scope():
    sampler = ResourceSampler(interval_s=0.05)
    assert sampler.sample() is None  # nothing watched yet
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)  # fmt: skip
    try:
        sampler.watch(process.pid)
        reading = sampler.sample()
        assert reading is not None and reading.n_processes == 1 and reading.rss_MB > 1.0
        sampler.watch(None)
        assert sampler.sample() is None  # watching stopped: no reading
        sampler.watch(process.pid)
    finally:
        process.kill()
        process.wait()
    assert sampler.sample() is None  # the process has ended: no reading
    assert len(sampler.samples) == 1  # only the reading of the live process was kept
    probe = GpuProbe()
    util, memory, util_scope, memory_scope = probe.read({process.pid})
    if probe.available:  # a machine with an NVIDIA driver
        assert util_scope in ("process", "device") and memory_scope in ("process", "device")
        assert np.isfinite(memory)
    else:
        assert probe.reason and (util_scope, memory_scope) == ("none", "none")
        assert np.isnan(util) and np.isnan(memory)
    probe.close()


def test_rows_of_models_run_again_replace_theirs_and_keep_the_others(tmp_path):
    path = tmp_path / "summary.csv"
    merge_csv(path, [{"model": "a", "s_per_step": 1.0}, {"model": "b", "s_per_step": 2.0}], {"a"})
    merge_csv(path, [{"model": "a", "s_per_step": 3.0, "note": "again"}], {"a"})
    rows = read_rows(path)
    assert [(r["model"], r["s_per_step"]) for r in rows] == [("b", 2.0), ("a", 3.0)]
    assert rows[1]["note"] == "again" and rows[0]["note"] == ""


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cost_times_md_per_structure_and_writes_raw_and_averaged_csv(tmp_path, builtin_config):
    workdir = tmp_path / "cost"
    structures = [
        str(EXAMPLES / "Ga144Pt3_icosahedron.xyz"),
        str(EXAMPLES / "Ga54Pt_icosahedron.xyz"),
    ]
    result = runner.invoke(
        app,
        ["benchmark", "cost", *structures, "-m", "lj", "-c", str(builtin_config),
         "-w", str(workdir), "--steps", "12", "--time-step-fs", "2", "--save-interval", "4",
         "--warmup-steps", "2", "--device", "cpu", "--sample-interval-s", "0.1",
         "--cpu-threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_rows(workdir / "cost_summary.csv")
    # Smallest first, as the thesis recommends an even spread of sizes.
    assert [(r["structure"], r["n_atoms"]) for r in rows] == [
        ("Ga54Pt_icosahedron", 55), ("Ga144Pt3_icosahedron", 147)
    ]  # fmt: skip
    for row in rows:
        assert row["model"] == "lj" and row["backend"] == "torchsim" and row["status"] == "ok"
        assert row["steps"] == 12 and row["warmup_steps"] == 2 and row["n_systems"] == 1
        assert row["torch_threads"] == 1
        assert 0 < row["s_per_step"] < row["wall_s"]
        assert row["compute_s_per_ps"] == pytest.approx(row["s_per_step"] * 1000 / 2)
        assert row["atom_steps_per_s"] == pytest.approx(row["n_atoms"] / row["s_per_step"])
        assert row["n_samples"] >= 1
        assert row["cpu_percent_mean"] > 0 and row["rss_MB_max"] > 100  # torch alone is more
        if row["gpu_memory_scope"] == "none":
            assert np.isnan(row["gpu_memory_MB_max"])
        trajectory = workdir / "trajectories" / "lj" / f"{row['structure']}.h5md"
        info = trajectory_info(trajectory)
        assert info.complete and info.n_frames == 12 // 4 + 1
    samples = _csv(workdir / "cost_samples.csv")
    during = {s["structure"] for s in samples if s["phase"] == "md"}
    assert during == {"Ga54Pt_icosahedron", "Ga144Pt3_icosahedron"}
    assert "no GPU readings" in result.output or rows[0]["gpu_memory_scope"] != "none"

    data, _ = _plotly_figure(workdir / "plots" / "cost_time_per_ps.html")
    assert [t["name"] for t in data] == ["lj (torchsim)"]
    assert _values(data[0]["x"]).tolist() == [55, 147]
    assert _values(data[0]["y"]) == pytest.approx([r["compute_s_per_ps"] for r in rows])
    data, layout = _plotly_figure(workdir / "plots" / "cost_resources.html")
    texts = [a["text"] for a in layout["annotations"]]
    assert texts[:2] == ["CPU", "RAM"]
    if rows[0]["gpu_memory_scope"] == "none":  # no GPU here: the panels say why
        assert sum(t.startswith("no GPU readings") for t in texts) == 2
    plotted = {t.get("xaxis", "x") for t in data}
    assert {"x", "x2"} <= plotted  # CPU and RAM panels hold the model's line
    assert (workdir / "plots" / "cost_resources.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_batched_cost_measures_throughput_against_systems_per_batch(tmp_path, builtin_config):
    workdir = tmp_path / "batched"
    result = runner.invoke(
        app,
        ["benchmark", "cost", str(EXAMPLES / "Ga54Pt_icosahedron.xyz"), "-m", "lj",
         "-c", str(builtin_config), "-w", str(workdir), "--batched", "--batch-size", "1",
         "--batch-size", "4", "--batch-size", "2", "--steps", "6", "--device", "cpu",
         "--sample-interval-s", "0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_rows(workdir / "cost_batched.csv")
    assert [r["n_systems"] for r in rows] == [1, 2, 4]
    for row in rows:
        assert row["total_atoms"] == 55 * row["n_systems"] and row["status"] == "ok"
        assert row["atom_steps_per_s"] == pytest.approx(row["total_atoms"] / row["s_per_step"])
    assert not (workdir / "trajectories" / "lj").exists() or not list(
        (workdir / "trajectories" / "lj").glob("*/*.h5md")
    )  # batched runs leave no trajectories behind
    data, _ = _plotly_figure(workdir / "plots" / "cost_batched.html")
    (line,) = [t for t in data if t["mode"] == "lines+markers"]
    assert _values(line["x"]).tolist() == [1, 2, 4]
    assert any(t["name"] == "largest that ran: 4" for t in data)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "no structures: give structure files or --input-dir"),
        (["--input-dir", "{tmp}"], "no *.xyz or *.extxyz files in"),
        (["{example}", "--batched", "--backend", "ase"], "the batched mode runs TorchSim batches"),
        (["{example}", "--steps", "3", "--warmup-steps", "3"], "warm-up steps (3) must be fewer"),
        (["{example}", "--device", "gpu"], "unknown device 'gpu'"),
        (["{tmp}/missing.xyz"], "structure file not found"),
        (["{example}", "--cpu-threads", "0"], "--cpu-threads must be at least 1"),
    ],
)
def test_cost_cli_refuses_bad_input_with_one_message(tmp_path, builtin_config, arguments, message):
    filled = [
        a.replace("{tmp}", str(tmp_path)).replace(
            "{example}", str(EXAMPLES / "Ga54Pt_icosahedron.xyz")
        )
        for a in arguments
    ]
    result = runner.invoke(
        app, ["benchmark", "cost", *filled, "-m", "lj", "-c", str(builtin_config),
              "-w", str(tmp_path / "w")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
