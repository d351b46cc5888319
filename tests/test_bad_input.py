"""Bad input and contested working directories: each is refused by the real CLI with one clear
line and exit 2, no traceback, and nothing written (no output file, no folder)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scalms.cli import app
from tests.test_files import hold_lock

runner = CliRunner()


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(folder, *args, message: str):
    """Run ``scalms ARGS`` in ``folder``; assert exit 2, one error line naming ``message``, no
    traceback, and ``folder`` left exactly as it was."""
    before = _listing(folder)
    result = runner.invoke(app, [str(a) for a in args])
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    errors = [line for line in output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, output
    assert message in " ".join(output.split()), output
    assert _listing(folder) == before, "something was written"
    return result


@pytest.fixture
def inputs(tmp_path, builtin_config):
    """A folder with a good structure, a config of the builtin models, and nothing else."""
    (tmp_path / "ga2.xyz").write_text("2\n\nGa 0 0 0\nGa 0 0 2.7\n")
    return tmp_path, builtin_config.rename(tmp_path / "model_config.yaml")


@pytest.mark.parametrize(
    ("value", "kind"), [("123", "int"), ("[a.model, b.model]", "list"), ("{x: 1}", "dict")]
)
def test_a_model_path_that_is_no_path_is_refused_by_name(tmp_path, value, kind):
    config = tmp_path / "model_config.yaml"
    config.write_text(f"MACE:\n  models:\n    small:\n      model_path: {value}\n")
    (tmp_path / "ga.xyz").write_text("1\n\nGa 0 0 0\n")
    refused(
        tmp_path,
        "static", tmp_path / "ga.xyz", "-c", config, "-o", tmp_path / "out.h5",
        message=f"MACE.models.small.model_path: expected a path, got {kind}",
    )  # fmt: skip


def test_a_bulk_cell_repeated_zero_times_is_refused(inputs):
    folder, _ = inputs
    refused(
        folder, "geometry", "bulk", "--repeat", 0, 1, 1, "--no-melt", "-o", folder / "bulk",
        message="--repeat needs three whole numbers of at least 1",
    )  # fmt: skip


def test_a_particle_too_large_for_the_memory_is_refused_with_the_numbers(inputs):
    folder, _ = inputs
    result = refused(
        folder, "geometry", "nanoparticle", "--size", 10**11, "--no-melt", "-o", folder / "np",
        message="a Wulff particle of 100,000,000,000 atoms needs about 150000.0 GB",
    )  # fmt: skip
    assert "GB is free here: ask for at most about" in result.output


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        ("Ga 0 0 0\nGa 0 0 0", "atoms 0 and 1 are 0.000 Å apart"),
        ("Ga 0 0 0\nGa 0 0 0.2", "atoms 0 and 1 are 0.200 Å apart"),
        ("Ga 0 0 0\nGa nan 0 2.7", "atom 1 has a non-finite position"),
    ],
)
def test_a_structure_no_model_can_evaluate_stops_static_before_any_child(inputs, atoms, message):
    folder, config = inputs
    (folder / "bad.xyz").write_text(f"2\n\n{atoms}\n")
    refused(
        folder, "static", folder / "bad.xyz", "-c", config, "-o", folder / "out.h5",
        message=message,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value"),
    [("--timeout", "-1"), ("--timeout", "0"), ("--max-batch-atoms", "0")],
)
def test_static_refuses_limits_that_cannot_hold(inputs, option, value):
    folder, config = inputs
    refused(
        folder, "static", folder / "ga2.xyz", "-c", config, "-o", folder / "out.h5", option, value,
        message=f"Invalid value for '{option}'",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["pdf", "--bins", "0"], "--bins"),
        (["pdf", "--r-max-A", "-1"], "--r-max-A"),
        (["diffusion", "-e", "Ga", "--msd-max-lag-fs", "-5"], "--msd-max-lag-fs"),
    ],
)
def test_analyses_refuse_empty_ranges(inputs, args, option):
    folder, _ = inputs
    refused(
        folder, "analyze", args[0], folder / "MD_dynamics_results.h5", *args[1:],
        "-o", folder / "analysis", message=f"Invalid value for '{option}'",
    )  # fmt: skip


def test_a_committee_of_one_is_refused_before_any_model_runs(inputs):
    folder, config = inputs
    refused(
        folder, "benchmark", "accuracy", folder / "ga2.xyz", "-c", config, "-w", folder / "bench",
        "--committee", "lj", "--committee", "lj",
        message="a committee needs at least two different models",
    )  # fmt: skip


def test_a_negative_sampling_interval_is_refused(inputs):
    folder, config = inputs
    refused(
        folder, "benchmark", "cost", folder / "ga2.xyz", "-c", config, "-w", folder / "cost",
        "--sample-interval-s", "-1", message="Invalid value for '--sample-interval-s'",
    )  # fmt: skip


def test_builtin_models_need_no_environment_and_env_create_says_so(inputs):
    folder, _ = inputs
    refused(folder, "env", "create", "builtin", message="run in scalms's own interpreter")


def test_a_damaged_geometry_manifest_is_named_on_resume(tmp_path):
    out = tmp_path / "np"
    built = runner.invoke(app, ["geometry", "nanoparticle", "-n", "13", "--no-melt", "-o", out])
    assert built.exit_code == 0, built.output
    (out / "geometry.json").write_text('{"request": {"kind": ')
    refused(tmp_path, "geometry", "resume", out, message="geometry manifest")


# One writer per working directory: a second command on a directory another process holds is
# refused at once, before it reads or writes anything there.


@pytest.mark.parametrize(
    "command",
    [
        ["geometry", "nanoparticle", "-n", "13", "--no-melt", "-o", "{dir}"],
        ["geometry", "bulk", "--repeat", "1", "1", "1", "--no-melt", "-o", "{dir}"],
        ["geometry", "resume", "{dir}"],
        ["benchmark", "accuracy", "{ref}", "-c", "{config}", "-w", "{dir}"],
        ["benchmark", "analyze", "{dir}"],
        ["benchmark", "cost", "{ref}", "-c", "{config}", "-w", "{dir}", "--steps", "3"],
    ],
    ids=["nanoparticle", "bulk", "resume", "accuracy", "analyze", "cost"],
)
def test_a_second_command_on_a_held_working_dir_is_refused(inputs, command):
    folder, config = inputs
    workdir = folder / "work"
    holder = hold_lock(workdir)  # another real process, e.g. a requeued job still running
    try:
        args = [a.format(dir=workdir, ref=folder / "ga2.xyz", config=config) for a in command]
        refused(folder, *args, message=f"is in use by pid {holder.pid} (the holder)")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
