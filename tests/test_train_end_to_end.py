"""The training half of the workflow end to end, with real trainers, offline, on a CPU: label
small rattled clusters with SevenNet-0, package them, train a tiny MACE from scratch, fine-tune
it with multi-head replay (its own training set as the replay file), fine-tune SevenNet-0 for a
few steps; each model is registered, benchmarked on the held-out frames, and runs MD from the
config through ``scalms dynamics run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ase.cluster import Icosahedron
from ase.io import read, write

from scalms.config import load_config

pytestmark = [pytest.mark.mace, pytest.mark.sevennet, pytest.mark.slow]

SCALMS = [str(Path(sys.executable).parent / "scalms")]
"""The command as a user runs it (a subprocess, so exit codes and messages are the real ones)."""


def scalms(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*SCALMS, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=900
    )
    assert done.returncode == 0, f"scalms {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """Run the whole chain once; the tests below check what it left."""
    work = tmp_path_factory.mktemp("train_e2e")
    config = work / "model_config.yaml"
    config.write_text(
        "# models of this test: the embedded default, then what the trainings register\n"
        "SevenNet:\n  models:\n    7net-0: {}   # bundled\n"
    )
    cluster = Icosahedron("Ga", 2, latticeconstant=4.1)  # 13 atoms
    cluster.symbols[1] = "Pt"  # a surface site: Ga12Pt
    cluster.center(vacuum=8.0)
    cluster.pbc = False
    write(work / "Ga12Pt.extxyz", cluster)
    labelled = work / "labelled"
    # three source files (shards of one seeded job): the packager splits whole files
    for shard in range(3):
        scalms(
            "hpc", "rattle", "Ga12Pt.extxyz", "--calculator", "7net-0", "-c", str(config),
            "--stddev-A", "0.1", "--count", "30", "--shard", f"{shard}/3",
            "--out", str(labelled / f"shard{shard}.xyz"), "--device", "cpu", cwd=work,
        )  # fmt: skip
    scalms("hpc", "e0", "-e", "Ga", "-e", "Pt", "--calculator", "7net-0", "-c", str(config),
           "--out", "E0.json", "--device", "cpu", cwd=work)  # fmt: skip
    scalms("hpc", "package", str(labelled), "--out", "dataset", "--split", "50-25-25",
           "--extra", "E0.xyz", cwd=work)  # fmt: skip
    data = work / "dataset" / "dataset_0"
    sets = ["--train", str(data / "train.xyz"), "--valid", str(data / "valid.xyz"),
            "--test", str(data / "test.xyz")]  # fmt: skip
    common = ["-c", str(config), "--runs-dir", "runs", "--device", "cpu"]
    outputs = {}
    outputs["scratch"] = scalms(
        "train", "mace", *sets, "--e0", "E0.json", "--name", "mace-e2e", "--epochs", "3",
        *common, cwd=work,
    )  # fmt: skip
    scratch_model = load_config(config).entries["mace-e2e"].model_path
    outputs["replay"] = scalms(
        "train", "mace", *sets, "--e0", "E0.json", "--name", "mace-e2e-replay", "--epochs", "2",
        "--foundation-model", str(scratch_model), "--replay-file", str(data / "train.xyz"),
        *common, cwd=work,
    )  # fmt: skip
    outputs["sevennet"] = scalms(
        "train", "sevennet", *sets, "--name", "7net-0-e2e", "--epochs", "2", *common, cwd=work
    )
    names = ["mace-e2e", "mace-e2e-replay", "7net-0-e2e"]
    md = scalms(
        "dynamics", "run", "Ga12Pt.extxyz", *[a for n in names for a in ("--model", n)],
        "-c", str(config), "--working-dir", "md", "--n-steps", "50", "--save-interval", "10",
        "--time-step-fs", "2", "--device", "cpu", "--no-plot", cwd=work,
    )  # fmt: skip
    return {"work": work, "config": config, "data": data, "names": names, "md": md, **outputs}


def test_each_trained_model_is_registered_with_its_file(workflow):
    config = load_config(workflow["config"])
    assert {"7net-0", *workflow["names"]} <= set(config.entries)
    for name in workflow["names"]:
        entry = config.entries[name]
        assert entry.model_path is not None and entry.model_path.is_file()
    assert config.entries["mace-e2e"].family == "mace"
    assert config.entries["7net-0-e2e"].family == "sevennet"
    text = workflow["config"].read_text()
    assert text.startswith("# models of this test")  # the user's comments are kept
    assert "7net-0: {}   # bundled" in text


def test_each_model_is_benchmarked_on_the_held_out_frames(workflow):
    test_frames = len(read(workflow["data"] / "test.xyz", index=":"))
    for name in workflow["names"]:
        summary = json.loads((workflow["work"] / "runs" / name / "summary.json").read_text())
        metrics = workflow["work"] / "runs" / name / "benchmark" / "metrics.csv"
        assert metrics.is_file(), summary
        [row] = [r for r in metrics.read_text().splitlines()[1:] if r.startswith(name + ",")]
        assert int(row.split(",")[1]) == test_frames  # every held-out frame, no other


def test_replay_fine_tune_trained_two_heads(workflow):
    run = workflow["work"] / "runs" / "mace-e2e-replay"
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["multiheads_finetuning"] is True and written["pt_train_file"]
    heads = {
        json.loads(line).get("head")
        for path in (run / "results").glob("*_train.txt")
        for line in path.read_text().splitlines()
        if line.strip()
    }
    assert {"Default", "pt_head"} <= heads


def test_every_trained_model_runs_md_from_the_config(workflow):
    from scalms.io.trajectory import read_trajectory

    md = workflow["work"] / "md"
    for name in workflow["names"]:
        [path] = sorted((md / "trajectories" / name).glob("*.h5md"))
        run = read_trajectory(path)
        assert run.complete and run.step[-1] == 50
        assert run.forces is not None and abs(run.forces).max() < 50.0
