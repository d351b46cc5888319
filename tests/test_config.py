"""model_config.yaml: the thesis's shape is accepted; every bad case gets one clear message."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import entry_problems, load_config
from scalms.errors import ConfigError
from scalms.testing import write_model_config

runner = CliRunner()


def test_thesis_format_is_accepted_with_relative_paths_and_venv_python(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "m.model").write_bytes(b"x")
    venv_python = tmp_path / "venv" / "bin" / "python3"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    path = write_model_config(
        tmp_path,
        f"""
MACE:
  models:
    mace-omat-0-medium:
      model_path: weights/m.model
      venv_path: '{venv_python}'
ORB:
  models:
    orb-v3-conservative-inf-omat:
SevenNet:
  models:
    7net-0: {{}}
""",
    )
    config = load_config(path)
    mace = config.entries["mace-omat-0-medium"]
    assert mace.family == "mace"
    assert mace.model_path == tmp_path / "weights" / "m.model"
    assert mace.python == venv_python
    assert entry_problems(mace) == []
    assert config.entries["orb-v3-conservative-inf-omat"].model_path is None
    assert [e.name for e in config.select(["7net-0", "mace-omat-0-medium"])] == [
        "7net-0",
        "mace-omat-0-medium",
    ]


def test_venv_path_may_name_the_environment_folder(tmp_path):
    (tmp_path / "env" / "bin").mkdir(parents=True)
    path = write_model_config(tmp_path, "SevenNet:\n  models:\n    7net-0:\n      venv_path: env\n")
    assert load_config(path).entries["7net-0"].python == tmp_path / "env" / "bin" / "python"


BAD_CONFIGS = {
    "bad_yaml": ("SevenNet:\n  models:\n    7net-0: {\n", ["not valid YAML", "line"]),
    "unknown_architecture": (
        "Allegro:\n  models:\n    a: {}\n",
        ["unknown architecture 'Allegro'"],
    ),
    "unknown_key": (
        "SevenNet:\n  models:\n    7net-0:\n      modelpath: x\n",
        ["SevenNet.models.7net-0", "unknown key", "modelpath"],
    ),
    "duplicate_name": (
        "SevenNet:\n  models:\n    m: {}\nMACE:\n  models:\n    m: {model_path: x}\n",
        ["duplicate model name 'm'"],
    ),
    "duplicate_yaml_key": (
        "SevenNet:\n  models:\n    7net-0: {}\n    7net-0: {}\n",
        ["duplicate key '7net-0'", "line 4"],
    ),
    "no_models_key": ("SevenNet:\n  7net-0: {}\n", ["expected a 'models:' mapping"]),
    "empty": ("", ["is empty"]),
    "not_a_mapping": ("- SevenNet\n", ["top level must map"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_raises_one_message_naming_the_problem(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    path = write_model_config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    for fragment in expected:
        assert fragment in str(error.value)


@pytest.mark.parametrize("case", ["bad_yaml", "unknown_architecture", "duplicate_name"])
def test_bad_config_exits_2_without_traceback(tmp_path, case):
    path = write_model_config(tmp_path, BAD_CONFIGS[case][0])
    structure = tmp_path / "x.xyz"
    structure.write_text("1\n\nGa 0 0 0\n")
    for args in (["models", "list", "-c", str(path)], ["static", str(structure), "-c", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
        assert isinstance(result.exception, SystemExit)  # handled, not a traceback


def test_missing_config_file_names_the_fix(tmp_path):
    result = runner.invoke(app, ["models", "list", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "model config not found" in result.output
    assert "--model-config" in result.output


def test_unknown_model_name_lists_the_known_ones(tmp_path, builtin_config):
    with pytest.raises(ConfigError, match=r"model 'mace-x' is not in .*lj, emt"):
        load_config(builtin_config).select(["mace-x"])


def test_entry_problems_name_missing_weights_downloads_and_environments(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALMS_VENVS", str(tmp_path / "no-venvs"))
    path = write_model_config(
        tmp_path,
        """
MACE:
  models:
    missing-file:
      model_path: nowhere.model
ORB:
  models:
    orb-v3-conservative-inf-omat: {}
SevenNet:
  models:
    7net-0: {}
""",
    )
    config = load_config(path)
    (missing_file, missing_env) = entry_problems(config.entries["missing-file"])
    assert "file not found" in missing_file and "nowhere.model" in missing_file
    assert "scalms env create mace" in missing_env
    download = entry_problems(config.entries["orb-v3-conservative-inf-omat"])[0]
    assert "download" in download and "model_path" in download
    # A bundled SevenNet model needs no weights file, only its environment.
    assert len(entry_problems(config.entries["7net-0"])) == 1
    assert "scalms env create sevennet" in entry_problems(config.entries["7net-0"])[0]


def test_shipped_model_config_is_valid():
    config = load_config(Path(__file__).resolve().parents[1] / "model_config.yaml")
    assert "7net-0" in config.entries
    assert config.entries["7net-0"].family == "sevennet"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/b", "letters, digits"), ("m@ase", "letters, digits"), ("..", "letters, digits")],
)
def test_model_names_that_cannot_name_a_result_group_are_refused(tmp_path, name, expected):
    path = write_model_config(tmp_path, f"SevenNet:\n  models:\n    '{name}': {{}}\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_unknown_builtin_model_is_refused_with_the_choices(tmp_path):
    path = write_model_config(tmp_path, "builtin:\n  models:\n    morse: {}\n")
    with pytest.raises(ConfigError, match="no builtin model 'morse'; choose emt, lj"):
        load_config(path)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--out", "{existing}"], "exists; pass --overwrite"),
        (["--out", "{folder}", "--overwrite"], "cannot write the results file"),
    ],
)
def test_bad_static_options_exit_2_before_any_child_starts(
    tmp_path, builtin_config, args, expected
):
    structure = tmp_path / "x.xyz"
    structure.write_text("1\n\nGa 0 0 0\n")
    (tmp_path / "existing.h5").write_bytes(b"earlier results")
    (tmp_path / "folder").mkdir()
    args = [a.format(existing=tmp_path / "existing.h5", folder=tmp_path / "folder") for a in args]
    result = runner.invoke(app, ["static", str(structure), "-c", str(builtin_config), *args])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert (tmp_path / "existing.h5").read_bytes() == b"earlier results"


@pytest.mark.parametrize("key", ["model_path", "venv_path"])
@pytest.mark.parametrize("value", ["123", "[a, b]", "true"])
def test_paths_that_yaml_reads_as_numbers_or_lists_are_refused(tmp_path, key, value):
    path = write_model_config(tmp_path, f"MACE:\n  models:\n    small:\n      {key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"MACE.models.small.{key}: expected a path, got"):
        load_config(path)


def test_a_quoted_number_is_a_path(tmp_path):
    path = write_model_config(tmp_path, "MACE:\n  models:\n    small:\n      model_path: '123'\n")
    assert load_config(path).entries["small"].model_path == tmp_path / "123"


def test_a_builtin_model_with_a_missing_interpreter_is_told_to_fix_venv_path(tmp_path):
    path = write_model_config(
        tmp_path, "builtin:\n  models:\n    lj:\n      venv_path: /nowhere/bin/python\n"
    )
    (problem,) = entry_problems(load_config(path).entries["lj"])
    assert "fix venv_path, or remove it to use scalms's own interpreter" in problem
    assert "env create" not in problem  # builtin has no environment to create
