"""Bad input to `scalms io` and `scalms analyze`: each case runs the real command and gets one
clear line, exit status 2, no traceback, and nothing written."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.io.results import consolidate
from scalms.testing import ga_cluster, write_jiggling_run, write_model_config

runner = CliRunner()


def write_run(path: Path, *, model: str = "lj", structure: str = "Ga55Pt1", n_frames=6) -> Path:
    """A small complete cluster run: 6 frames, 2 fs steps saved every 5."""
    return write_jiggling_run(path, model=model, structure=structure, n_frames=n_frames)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content: what a refused command must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(args: list[str], folder: Path, *, says: str) -> str:
    """Run ``scalms ARGS``; assert exit 2, one error line containing ``says``, no traceback, and
    no file under ``folder`` written, changed or removed. Returns the error line."""
    before = tree(folder)
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not raised
    errors = [line for line in result.output.splitlines() if "rror" in line]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    assert says in result.output, result.output
    assert tree(folder) == before
    return errors[0]


def corrupt_object_header(path: Path, name: str = "particles/all/position/value") -> Path:
    """Overwrite the HDF5 object header of dataset ``name`` inside ``path`` (not a truncation):
    the file still opens, and reading that dataset fails."""
    with h5py.File(path, "r") as handle:
        address = h5py.h5o.get_info(handle[name].id).addr
    with open(path, "r+b") as handle:
        handle.seek(address)
        handle.write(b"\xff" * 64)
    return path


@pytest.fixture
def damaged(tmp_path) -> Path:
    return corrupt_object_header(write_run(tmp_path / "run.h5md"))


@pytest.mark.parametrize(
    "args",
    [
        ["io", "info", "{file}"],
        ["io", "to-xyz", "{file}", "{tmp}/out.xyz"],
        ["io", "concat", "{tmp}/all.h5", "{file}"],
        ["analyze", "pdf", "{file}", "-o", "{tmp}/analysis"],
        ["analyze", "diffusion", "{file}", "-e", "Ga", "-o", "{tmp}/analysis"],
    ],
    ids=["info", "to-xyz", "concat", "analyze-pdf", "analyze-diffusion"],
)
def test_a_damaged_hdf5_file_is_named_as_damaged(tmp_path, damaged, args):
    args = [a.format(file=damaged, tmp=tmp_path) for a in args]
    line = refused(args, tmp_path, says=str(damaged))
    assert "damaged" in line and "restore it" in line


def test_a_damaged_run_inside_a_results_file_is_named_as_damaged(tmp_path):
    run = write_run(tmp_path / "t" / "run.h5md")
    results = consolidate({("lj", "Ga55Pt1"): run}, tmp_path / "results.h5", method="repack")
    corrupt_object_header(results, "lj/Ga55Pt1/particles/all/position/value")
    for args in (
        ["io", "split", results, tmp_path / "split"],
        ["analyze", "pdf", results, "-o", tmp_path / "analysis"],
    ):
        assert "damaged" in refused(args, tmp_path, says=str(results))


def test_to_xyz_refuses_to_overwrite_without_overwrite(tmp_path):
    run = write_run(tmp_path / "run.h5md")
    out = tmp_path / "out.xyz"
    out.write_text("keep me")
    refused(["io", "to-xyz", run, out], tmp_path, says="--overwrite")
    result = runner.invoke(app, ["io", "to-xyz", str(run), str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(str(len(ga_cluster())))


def test_to_xyz_of_several_runs_writes_none_when_one_exists(tmp_path):
    runs = {
        ("lj", s): write_run(tmp_path / "t" / f"{s}.h5md", structure=s) for s in ("a", "b", "c")
    }
    results = consolidate(runs, tmp_path / "results.h5")
    (tmp_path / "xyz").mkdir()
    (tmp_path / "xyz" / "lj__b.xyz").write_text("keep me")
    refused(["io", "to-xyz", results, tmp_path / "xyz"], tmp_path, says="lj__b.xyz")


def test_to_xyz_refuses_its_own_input_as_output(tmp_path):
    xyz = tmp_path / "run.extxyz"
    runner.invoke(app, ["io", "to-xyz", str(write_run(tmp_path / "run.h5md")), str(xyz)])
    refused(["io", "to-xyz", xyz, xyz, "--overwrite"], tmp_path, says="both the input and")


def test_split_onto_an_existing_file_or_existing_runs_is_refused(tmp_path):
    run = write_run(tmp_path / "t" / "run.h5md")
    results = consolidate({("lj", "Ga55Pt1"): run}, tmp_path / "results.h5")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    refused(["io", "split", results, a_file], tmp_path, says="is a file, not a folder")
    assert runner.invoke(app, ["io", "split", str(results), str(tmp_path / "s")]).exit_code == 0
    refused(["io", "split", results, tmp_path / "s"], tmp_path, says="--overwrite")


@pytest.mark.parametrize(
    ("model", "structure"), [("../../evil", "s"), ("lj", ".."), ("lj", "a/../../b")]
)
def test_run_names_from_a_file_cannot_lead_outputs_out_of_their_folder(tmp_path, model, structure):
    run = write_run(tmp_path / "run.h5md")
    with h5py.File(run, "r+") as handle:  # what a foreign or hand-edited file may hold
        handle["parameters"].attrs.update(model=model, structure=structure)
    out = tmp_path / "deep" / "er"
    out.mkdir(parents=True)
    for args in (
        ["io", "to-xyz", run, out],
        ["io", "split", run, out],
        ["analyze", "pdf", run, "-o", out],
        ["io", "info", run],
    ):
        refused(args, tmp_path, says="cannot name a file or folder")


def test_foreign_file_problems_each_get_one_line(tmp_path):
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("this is\nnot a trajectory\n")
    refused(["analyze", "pdf", garbage, "-o", tmp_path / "a"], tmp_path, says="cannot read")
    refused(["io", "info", garbage], tmp_path, says="cannot read")
    run = write_run(tmp_path / "run.h5md")
    # A scalms file states its own time step; an option saying otherwise is a mistake.
    refused(
        ["analyze", "diffusion", run, "-e", "Ga", "--time-step-fs", "1", "-o", tmp_path / "a"],
        tmp_path,
        says="--time-step-fs 1 contradicts",
    )
    refused(
        ["io", "import", garbage, "--out", tmp_path / "x.h5md", "--time-step-fs", "-1"],
        tmp_path,
        says="--time-step-fs",
    )
    refused(["io", "concat", tmp_path / "c.h5", garbage], tmp_path, says="scalms io import")


def test_a_model_filter_that_matches_no_run_is_refused(tmp_path):
    run = write_run(tmp_path / "run.h5md")
    refused(["analyze", "pdf", run, "-m", "nosuch", "-o", tmp_path / "a"], tmp_path, says="nosuch")


def test_an_analysis_device_that_is_unknown_or_absent_is_refused(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run.h5md")
    out = tmp_path / "a"
    refused(["analyze", "pdf", run, "--device", "gpu", "-o", out], tmp_path, says="unknown device")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, whatever the machine
    refused(["analyze", "pdf", run, "--device", "cuda", "-o", out], tmp_path, says="no GPU")


def test_data_file_name_cannot_leave_the_working_dir(tmp_path):
    config = write_model_config(tmp_path, "builtin:\n  models:\n    lj: {}\n")
    structure = tmp_path / "c.xyz"
    ga_cluster().write(structure)
    args = ["dynamics", "run", structure, "-m", "lj", "-c", config, "--n-steps", "2"]
    args += ["--working-dir", tmp_path / "wd", "--data-file-name", "../../x.h5"]
    refused(args, tmp_path, says="--data-file-name must be a file name")
    assert not (tmp_path / "wd").exists()
