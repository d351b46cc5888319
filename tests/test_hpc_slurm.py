"""`scalms hpc submit | status | collect`: the sbatch scripts, and job arrays on a real SLURM.

The first tests render scripts only (no scheduler). The rest start a single-node SLURM
(slurmctld, slurmd, munged from Debian) in a temporary folder for the module, run real scalms
commands as array tasks on it, and wait for the tasks' states by polling `scalms hpc status`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.hpc.slurm.jobs import job_status
from scalms.hpc.slurm.script import SbatchOptions, sbatch_lines, set_sbatch_lines
from tests.conftest import EXAMPLES, require_programs, wait_for
from tests.slurm_cluster import PROGRAMS, single_node_cluster

runner = CliRunner()
CLUSTER = EXAMPLES / "Ga54Pt_icosahedron.xyz"
BULK = EXAMPLES / "Ga32_periodic.extxyz"
# The test node has 2 cores and its memory halved: ask for what it has.
SMALL = ["--partition", "debug", "--cpus-per-task", "1", "--mem", "500M", "--time", "30"]


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _dry_run(job_dir: Path, *args, command: list) -> tuple[str, dict]:
    result = _invoke("hpc", "submit", "--dir", job_dir, "--dry-run", *args, "--", *command)
    assert result.exit_code == 0, result.output
    record = json.loads((job_dir / "job.json").read_text())
    return (job_dir / "job.sbatch").read_text(), record


def _branch(script: str, task: int) -> list[str]:
    """The lines of a task's `case` branch."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{task})"))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == ";;")
    return [line.strip() for line in lines[start + 1 : end]]


# ---- scripts, no scheduler -------------------------------------------------------------------


def test_static_split_gives_each_task_its_structures_and_own_output(tmp_path, builtin_config):
    job = tmp_path / "job"
    structures = [CLUSTER, BULK, EXAMPLES / "Ga144Pt3_icosahedron.xyz"]
    script, record = _dry_run(
        job, "--array-tasks", 2, "--partition", "short", "--time", "1:00:00", "--mem", "4G",
        command=["static", *structures, "--model", "lj", "-c", builtin_config, "-o", "res.h5"],
    )  # fmt: skip
    # Contiguous shares, sizes differing by one at most; each task its own --out in its folder.
    assert _branch(script, 0) == [
        f'"$SCALMS" static {CLUSTER} --model lj -c {builtin_config} '
        f"--out {job}/tasks/0/res.h5 --overwrite"
    ]
    assert _branch(script, 1)[0].startswith(f'"$SCALMS" static {BULK} {structures[2]} --model lj')
    assert [t["items"] for t in record["plan"]["tasks"]] == [
        [str(CLUSTER)],
        [str(BULK), str(structures[2])],
    ]
    options = sbatch_lines(script)
    assert options["array"] == "0-1" and options["output"] == f"{job}/logs/%A_%a.out"
    assert options["partition"] == "short" and options["time"] == "1:00:00"
    # --mem replaces the template's --mem-per-cpu (SLURM refuses both).
    assert options["mem"] == "4G" and "mem-per-cpu" not in options
    assert options["cpus-per-task"] == "8"  # the template's default, kept
    assert record["submissions"] == [] and (job / "tasks" / "1").is_dir()
    assert subprocess.run(["bash", "-n", str(job / "job.sbatch")]).returncode == 0


def test_rattle_split_gives_each_task_a_shard_and_its_own_file(tmp_path, builtin_config):
    job = tmp_path / "job"
    script, record = _dry_run(
        job, "--array-tasks", 3,
        command=["scalms", "hpc", "rattle", CLUSTER, "--calculator", "lj", "--count", 7,
                 "--out", tmp_path / "ref.xyz", "-c", builtin_config],
    )  # fmt: skip
    for k in range(3):
        (line,) = _branch(script, k)
        assert line.endswith(f"--shard {k}/3 --out {job}/tasks/{k}/ref.xyz")
        assert f"hpc rattle {CLUSTER} --calculator lj --count 7 -c {builtin_config}" in line
    assert record["plan"]["count"] == 7 and record["plan"]["out"] == str(tmp_path / "ref.xyz")


def test_dynamics_task_resumes_when_its_folder_holds_a_started_run(tmp_path, builtin_config):
    job = tmp_path / "job"
    script, _ = _dry_run(
        job, "--array-tasks", 2, "--template", "gpu", "--requeue",
        command=["dynamics", "run", CLUSTER, BULK, "-w", tmp_path / "md", "--n-steps", 10,
                 "-c", builtin_config, "--timeout", 600],
    )  # fmt: skip
    branch = _branch(script, 1)
    assert branch[0] == 'if [ -f "$TASK_DIR/dynamics.json" ]; then  # started before: continue'
    assert branch[1] == f'"$SCALMS" dynamics resume {job}/tasks/1 --timeout 600'
    assert branch[3] == (
        f'"$SCALMS" dynamics run {BULK} --n-steps 10 -c {builtin_config} --timeout 600 '
        f"--working-dir {job}/tasks/1"
    )
    options = sbatch_lines(script)
    assert options["partition"] == "gpu-a100" and options["gpus-per-task"] == "1"
    assert options["requeue"] == ""


def test_gpu_template_drops_its_gpu_request_with_gpus_0_and_any_command_runs_as_one_task(
    tmp_path,
):
    script, record = _dry_run(
        tmp_path / "job", "--template", "gpu", "--gpus", 0, "--job-name", "melt",
        command=["io", "to-xyz", tmp_path / "md.h5", tmp_path / "x.xyz"],
    )  # fmt: skip
    options = sbatch_lines(script)
    assert "gpus-per-task" not in options and options["job-name"] == "melt"
    assert options["array"] == "0-0" and record["plan"]["kind"] == "command"
    assert _branch(script, 0) == [f'"$SCALMS" io to-xyz {tmp_path}/md.h5 {tmp_path}/x.xyz']


def test_sbatch_lines_are_replaced_in_place_short_forms_too():
    text = "#!/bin/bash\n#SBATCH -p compute\n#SBATCH --mem-per-cpu=1G\n#SBATCH -t 10\necho hi\n"
    lines = SbatchOptions(partition="gpu", mem="8G", account="me").lines()
    out = set_sbatch_lines(text, lines)
    assert out.splitlines() == [
        "#!/bin/bash",
        "#SBATCH --partition=gpu",
        "#SBATCH -t 10",
        "#SBATCH --mem=8G",
        "#SBATCH --account=me",
        "echo hi",
    ]


@pytest.mark.parametrize(
    ("options", "command", "message"),
    [
        ([], ["python", "x.py"], "not a scalms command: scalms 'python'"),
        (["--array-tasks", 3], ["static", CLUSTER, BULK], "more than the 2 structure files"),
        (["--array-tasks", 0], ["static", CLUSTER], "--array-tasks must be 1 or more"),
        (["--template", "tpu"], ["static", CLUSTER], "unknown template 'tpu'"),
        (["--array-tasks", 2], ["io", "info", CLUSTER], "submit it with --array-tasks 1"),
        (["--time", "soon"], ["static", CLUSTER], "--time 'soon' is not a SLURM time"),
        ([], ["static", CLUSTER, "--bogus"], "No such option"),
        ([], [], "no command to submit"),
        ([], ["hpc", "rattle", CLUSTER, "--calculator", "lj", "--count", 2, "--out", "r.xyz",
              "--shard", "0/2"], "already has --shard"),
    ],
)  # fmt: skip
def test_bad_submissions_are_refused_in_one_line_and_write_nothing(
    tmp_path, options, command, message
):
    job = tmp_path / "job"
    result = _invoke("hpc", "submit", "--dir", job, "--dry-run", *options, "--", *command)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not job.exists()


def test_an_existing_static_output_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "res.h5"
    out.write_text("earlier results")
    result = _invoke(
        "hpc", "submit", "--dir", tmp_path / "job", "--dry-run", "--", "static", CLUSTER, "-o", out
    )
    assert result.exit_code == 2 and "pass --overwrite" in result.output
    assert out.read_text() == "earlier results"


def test_without_sbatch_the_job_folder_is_written_and_can_be_submitted_later(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no SLURM commands here
    job = tmp_path / "job"
    command = ["--", "static", CLUSTER, "-o", tmp_path / "res.h5"]
    result = _invoke("hpc", "submit", "--dir", job, *command)
    assert result.exit_code == 2 and "sbatch not found" in result.output
    record = json.loads((job / "job.json").read_text())
    assert record["submissions"] == [] and (job / "job.sbatch").is_file()
    status = _invoke("hpc", "status", job)
    assert status.exit_code == 0 and "not submitted" in status.output
    # Nothing was submitted, so the folder may be written again.
    assert _invoke("hpc", "submit", "--dir", job, "--dry-run", *command).exit_code == 0


# ---- a real single-node SLURM ----------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node SLURM for the module; the scalms commands reach it through SLURM_CONF."""
    require_programs(*PROGRAMS)
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root), as in CI")
    root = tmp_path_factory.mktemp("slurm")
    before = os.environ.get("SLURM_CONF")
    with single_node_cluster(root) as cluster:
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before


def _wait_until_finished(job: Path) -> list:
    statuses = []

    def finished() -> bool:
        statuses[:] = job_status(job)
        return all(s.finished for s in statuses)

    wait_for(finished, f"every task of {job} finished")
    return statuses


def _states(statuses) -> dict[int, str]:
    return {s.task: s.state for s in statuses}


def _submit(job: Path, n_tasks: int, command: list) -> str:
    result = _invoke(
        "hpc", "submit", "--dir", job, "--array-tasks", n_tasks, *SMALL, "--", *command
    )
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[0]


@pytest.mark.slow  # two array jobs through SLURM, each task a scalms child: ~30-60 s
def test_static_array_merges_to_the_unsplit_results_and_a_failed_task_is_resubmitted_alone(
    slurm, tmp_path, builtin_config
):
    from scalms.io.static_results import read_results

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cluster, bulk = inputs / CLUSTER.name, inputs / BULK.name
    shutil.copy(CLUSTER, cluster)
    bulk.write_text("this is not a structure\n")  # task 1 fails on it
    out, job = tmp_path / "static.h5", tmp_path / "job"
    command = ["static", cluster, bulk, "--model", "lj", "-c", builtin_config, "--backend", "ase"]
    job_id = _submit(job, 2, [*command, "--out", out])

    statuses = _wait_until_finished(job)
    assert _states(statuses) == {0: "done", 1: "failed"}
    assert statuses[1].detail == "exit code 2" and statuses[1].log == job / f"logs/{job_id}_1.out"
    status = _invoke("hpc", "status", job)
    assert status.exit_code == 0 and "failed" in status.output
    collected = _invoke("hpc", "collect", job)
    assert collected.exit_code == 1
    assert "failed task 1" in collected.output and "cannot read" in collected.output
    assert not out.exists()  # nothing merged while a task has failed

    finished = job / "tasks" / "0" / "static.h5"
    before = finished.stat()
    shutil.copy(BULK, bulk)  # repair the cause
    resubmitted = _invoke("hpc", "collect", job, "--resubmit-failed")
    assert resubmitted.exit_code == 1 and "resubmitted task(s) 1 as job" in resubmitted.output
    submissions = json.loads((job / "job.json").read_text())["submissions"]
    assert [s["tasks"] for s in submissions] == [[0, 1], [1]]
    new_id = submissions[-1]["job_id"]
    statuses = _wait_until_finished(job)
    assert _states(statuses) == {0: "done", 1: "done"}
    # The new array holds task 1 alone; task 0's finished output was not touched.
    shown = slurm.command("scontrol", "--oneliner", "show", "job", new_id).stdout
    assert [f for f in shown.split() if f.startswith("ArrayTaskId=")] == ["ArrayTaskId=1"]
    assert not (job / "logs" / f"{new_id}_0.out").exists()
    after = finished.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    final = _invoke("hpc", "collect", job)
    assert final.exit_code == 0, final.output
    assert "merged 2 structures from 2 tasks" in final.output
    unsplit = tmp_path / "unsplit.h5"
    alone = _invoke(*command, "--out", unsplit)
    assert alone.exit_code == 0, alone.output
    merged, reference = read_results(out), read_results(unsplit)
    assert list(merged) == list(reference) == ["lj"]
    assert list(merged["lj"]) == list(reference["lj"]) == ["Ga54Pt_icosahedron", "Ga32_periodic"]
    for label, frames in reference["lj"].items():
        for got, want in zip(merged["lj"][label], frames, strict=True):
            assert got.get_potential_energy() == pytest.approx(want.get_potential_energy())
            np.testing.assert_allclose(got.get_forces(), want.get_forces(), atol=1e-10)
            np.testing.assert_array_equal(got.positions, want.positions)


def _queue_state(slurm, task: str) -> str:
    return slurm.command("squeue", "-h", "-j", task, "-o", "%T", check=False).stdout.strip()


def _frames(path: Path) -> int:
    from scalms.hpc.reference_file import read_reference

    try:
        return len(read_reference(path))
    except Exception:  # caught between a frame's write and its newline: look again
        return 0


def _kept_and_computed(log: Path) -> tuple[int, int]:
    """From rattle's last line: frames kept from an earlier attempt, and computed by this one."""
    match = re.search(r"\((\d+) computed now, (\d+) kept from before\)", log.read_text())
    assert match, log.read_text()[-2000:]
    return int(match.group(2)), int(match.group(1))


@pytest.mark.slow  # two array jobs through SLURM and an unsplit run: ~40-60 s
def test_rattle_array_merges_to_the_unsplit_frames_and_a_killed_task_resumes_its_shard(
    slurm, tmp_path, builtin_config
):
    from scalms.hpc.reference_file import read_reference

    count = 300  # enough frames that a task can be killed while labelling
    out, job = tmp_path / "ref.xyz", tmp_path / "job"
    command = ["hpc", "rattle", CLUSTER, "--calculator", "lj", "--count", count, "--seed", 3]
    command += ["-c", builtin_config, "--device", "cpu"]
    job_id = _submit(job, 2, [*command, "--out", out])
    shard = job / "tasks" / "1" / "ref.xyz"
    wait_for(lambda: _frames(shard) >= 5, "task 1 labelling")
    slurm.command("scancel", f"{job_id}_1")

    statuses = _wait_until_finished(job)
    assert _states(statuses) == {0: "done", 1: "failed"}
    assert "CANCELLED without an exit code" in statuses[1].detail
    killed_with = _frames(shard)
    assert 5 <= killed_with < count // 2
    assert _invoke("hpc", "collect", job).exit_code == 1 and not out.exists()

    resubmitted = _invoke("hpc", "collect", job, "--resubmit-failed")
    assert "resubmitted task(s) 1 as job" in resubmitted.output
    new_id = json.loads((job / "job.json").read_text())["submissions"][-1]["job_id"]
    assert _states(_wait_until_finished(job)) == {0: "done", 1: "done"}
    # The resubmitted task continued its own file: nothing it had was computed again.
    kept, computed = _kept_and_computed(job / "logs" / f"{new_id}_1.out")
    assert kept == killed_with and kept + computed == count // 2
    assert sorted(a.info["rattle_index"] for a in read_reference(shard)) == list(range(1, count, 2))

    collected = _invoke("hpc", "collect", job)
    assert collected.exit_code == 0, collected.output
    merged = read_reference(out)
    assert [a.info["rattle_index"] for a in merged] == list(range(count))
    unsplit = tmp_path / "unsplit.xyz"
    alone = _invoke(*command, "--out", unsplit)
    assert alone.exit_code == 0, alone.output
    for got, want in zip(merged, read_reference(unsplit), strict=True):
        np.testing.assert_array_equal(got.positions, want.positions)
        assert got.info["REF_energy"] == pytest.approx(want.info["REF_energy"], abs=1e-9)
        np.testing.assert_allclose(got.arrays["REF_forces"], want.arrays["REF_forces"], atol=1e-9)


@pytest.mark.slow  # MD through SLURM, requeued mid-way: ~30-60 s
def test_a_requeued_md_task_resumes_its_run_and_collect_links_the_results(
    slurm, tmp_path, builtin_config
):
    from scalms.io.results import list_runs
    from scalms.io.trajectory import read_trajectory
    from tests.conftest import frames_on_disk

    workdir, job = tmp_path / "md", tmp_path / "job"
    command = ["dynamics", "run", CLUSTER, "-w", workdir, "--model", "lj", "-c", builtin_config]
    command += ["--n-steps", 3000, "--save-interval", 20, "--backend", "ase", "--no-plot"]
    command += ["--device", "cpu"]
    options = ["--dir", job, *SMALL, "--requeue"]
    assert _invoke("hpc", "submit", *options, "--", *command).exit_code == 0
    trajectory = job / "tasks" / "0" / "trajectories" / "lj" / f"{CLUSTER.stem}.h5md"
    wait_for(lambda: frames_on_disk(trajectory) >= 10, "the MD task writing frames")
    job_id = json.loads((job / "job.json").read_text())["submissions"][0]["job_id"]
    slurm.command("scontrol", "requeue", f"{job_id}_0")
    # SLURM holds a requeued task back for a while: once it is back in the queue (its old
    # attempt gone), let it start now.
    task = f"{job_id}_0"
    wait_for(lambda: _queue_state(slurm, task) == "PENDING", "the requeued task pending")
    pending_at = time.time()
    assert frames_on_disk(trajectory) < 151  # stopped mid-way
    assert job_status(job)[0].state == "pending"
    # slurmd revoked the killed attempt's credential at a time kept in whole seconds, and it
    # refuses a launch whose credential is not newer ("already killed, do not launch"): the
    # new attempt's must be made in a later second.
    wait_for(lambda: time.time() >= math.floor(pending_at) + 2, "a second after the revocation")
    slurm.command("scontrol", "update", f"JobId={task}", "StartTime=now")
    statuses = _wait_until_finished(job)
    # `dynamics run` refuses a folder that holds a run: done means the task resumed it.
    assert _states(statuses) == {0: "done"}, statuses
    restarts = slurm.command("scontrol", "--oneliner", "show", "job", task).stdout
    assert "Restarts=1" in restarts
    steps = read_trajectory(trajectory).step
    np.testing.assert_array_equal(steps, np.arange(0, 3001, 20))

    collected = _invoke("hpc", "collect", job)
    assert collected.exit_code == 0, collected.output
    (run,) = list_runs(workdir / "MD_dynamics_results.h5")
    assert (run.model, run.structure, run.complete, run.n_frames) == ("lj", CLUSTER.stem, True, 151)
    index = json.loads((workdir / "slurm_tasks.json").read_text())
    assert index["tasks"][0]["structures"] == [str(CLUSTER)]
