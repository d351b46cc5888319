"""A trained model becomes one more model_config.yaml entry: lines are added, nothing else of
the file changes, and a refused registration leaves the file as it was."""

import difflib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalms.config import load_config
from scalms.files import WorkDirLock
from scalms.training.register import check_name_free, config_model_path, register_model
from scalms.training.trained import TrainingError

from .conftest import REPO

TINY_MACE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"


SHIPPED_WITHOUT_MACE = """\
# Models scalms can run: architecture -> models -> model name -> settings.
# Relative paths are relative to this file.

SevenNet:
  models:
    7net-0: {}            # SevenNet-0, bundled in the sevenn wheel: works offline (the default)

builtin:
  models:
    lj: {}                # Lennard-Jones, any element, TorchSim and ASE: quick checks
    emt: {}               # ASE's EMT (no Ga); TorchSim lacks it, so it runs through ASE

# MACE:
#   models:
#     mace-omat-0-medium:
#       model_path: /path/to/mace-omat-0-medium.model
#       options: {default_dtype: float64}
# ORB:
#   models:
#     orb-v3-conservative-inf-omat:
#       model_path: /path/to/orb-v3-conservative-inf-omat-20250404.ckpt
"""
"""The shape of the repository's model_config.yaml before any MACE model was registered: real
blocks with comments, then commented-out examples."""


@pytest.fixture
def project(tmp_path):
    """A model_config.yaml shaped like the shipped one, and a model file in the same folder."""
    config = tmp_path / "model_config.yaml"
    config.write_text(SHIPPED_WITHOUT_MACE)
    model = tmp_path / "ML_training" / "runs" / "ft" / "ft.model"
    model.parent.mkdir(parents=True)
    model.write_bytes(TINY_MACE.read_bytes())
    return config, model


def added_lines(before: str, after: str) -> list[str]:
    """The lines ``after`` adds to ``before``; fails if any line of ``before`` changed."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    assert all(op[0] == "insert" for op in ops), ops
    return [line for _, _, _, j1, j2 in ops for line in new[j1:j2]]


def test_registration_adds_a_mace_block_and_keeps_every_other_byte(project):
    config, model = project
    before = config.read_text()
    written = register_model(config, "ft", "MACE", model, {"default_dtype": "float64"})
    after = config.read_text()
    assert written == "ML_training/runs/ft/ft.model"
    added = added_lines(before, after)
    assert [line.strip() for line in added if line.strip()] == [
        "MACE:",
        "models:",
        "ft:",
        "model_path: ML_training/runs/ft/ft.model",
        "options:",
        "default_dtype: float64",
    ]
    # The commented example block stays as it was, after the new real block.
    assert "# MACE:\n#   models:\n#     mace-omat-0-medium:\n" in after
    assert after.index("\nMACE:\n") < after.index("# MACE:")
    entry = load_config(config).entries["ft"]
    assert entry.family == "mace" and entry.model_path.samefile(model)
    assert entry.options == {"default_dtype": "float64"}


def test_a_second_registration_extends_the_architectures_block(project):
    config, model = project
    register_model(config, "ft", "MACE", model, {})
    register_model(config, "ft2", "mace", model, {"head": "Default"})
    register_model(config, "7net-ft", "SevenNet", model, {})
    text = config.read_text()
    assert text.count("\nMACE:\n") == 1 and text.count("\nSevenNet:\n") == 1
    entries = load_config(config).entries
    assert entries["ft2"].family == "mace" and entries["ft2"].options == {"head": "Default"}
    assert entries["7net-ft"].family == "sevennet"
    # The SevenNet entry sits in the SevenNet block, after the bundled model and its comment.
    assert "7net-0: {}            # SevenNet-0, bundled" in text
    assert text.index("7net-ft:") < text.index("builtin:")


def test_a_taken_name_is_refused_and_the_file_is_unchanged(project):
    config, model = project
    before = config.read_bytes()
    with pytest.raises(TrainingError, match=r"'7net-0' is already in .*choose another --name"):
        check_name_free(config, "7net-0")
    with pytest.raises(TrainingError, match="already in"):
        register_model(config, "7net-0", "SevenNet", model, {})
    assert config.read_bytes() == before
    check_name_free(config, "fresh-name")  # free: no error
    with pytest.raises(TrainingError, match="letters, digits"):
        check_name_free(config, "a/b")


def test_model_path_is_relative_inside_the_configs_folder_else_absolute(project, tmp_path_factory):
    config, model = project
    assert config_model_path(config, model) == "ML_training/runs/ft/ft.model"
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "x.model"
    elsewhere.write_bytes(b"weights")
    assert config_model_path(config, elsewhere) == elsewhere.resolve().as_posix()
    register_model(config, "far", "MACE", elsewhere, {})
    assert load_config(config).entries["far"].model_path == elsewhere.resolve()
    # A relative path given from another working directory still lands on the file.
    cwd = os.getcwd()
    try:
        os.chdir(model.parent)
        register_model(Path("../../../model_config.yaml"), "near", "MACE", Path("ft.model"), {})
    finally:
        os.chdir(cwd)
    assert "model_path: ML_training/runs/ft/ft.model" in config.read_text().split("near:")[1]


def test_a_file_the_insertion_would_break_is_left_unchanged(tmp_path):
    # PyYAML counts U+2028 in a comment as a line break, so its line numbers and the file's
    # lines disagree: the new text is wrong, found so before writing, and nothing is written.
    config = tmp_path / "model_config.yaml"
    config.write_text(
        "# note\u2028# more\nSevenNet:\n  models:\n    7net-0: {}\n"
        "builtin:\n  models:\n    lj: {}\n"
    )
    model = tmp_path / "m.model"
    model.write_bytes(b"weights")
    before = config.read_bytes()
    with pytest.raises(TrainingError, match="left as it was"):
        register_model(config, "new", "SevenNet", model, {})
    assert config.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".scalms.lock", "m.model", config.name]


def test_inline_models_are_refused_with_the_fix(tmp_path):
    config = tmp_path / "model_config.yaml"
    config.write_text("SevenNet: {models: {7net-0: {}}}\n")
    model = tmp_path / "m.model"
    model.write_bytes(b"weights")
    with pytest.raises(TrainingError, match="inline"):
        register_model(config, "new", "SevenNet", model, {})
    assert config.read_text() == "SevenNet: {models: {7net-0: {}}}\n"


def test_odd_but_valid_layouts_take_the_entry(tmp_path):
    model = tmp_path / "m.model"
    model.write_bytes(b"weights")
    config = tmp_path / "model_config.yaml"
    # Windows line ends, four-space indentation, an empty models list, no final newline.
    text = "builtin:\r\n    models:\r\n        lj: {}\r\nMACE:\r\n    models:"
    config.write_bytes(text.encode())
    register_model(config, "new", "MACE", model, {"default_dtype": "float64"})
    after = config.read_bytes().decode()
    assert after.startswith(text)
    assert after[len(text) :] == (
        "\r\n        new:\r\n            model_path: m.model\r\n            options:\r\n"
        "                default_dtype: float64\r\n"
    )
    assert load_config(config).entries["new"].model_path == model


def test_a_symlinked_config_is_written_through_the_link(tmp_path, project):
    config, model = project
    link_dir = tmp_path / "work"
    link_dir.mkdir()
    link = link_dir / "model_config.yaml"
    link.symlink_to(config)
    register_model(link, "ft", "MACE", model, {})
    assert link.is_symlink() and "ft:" in config.read_text()


def test_bad_architecture_or_missing_model_file_is_refused(project):
    config, model = project
    with pytest.raises(TrainingError, match="unknown architecture 'Allegro'"):
        register_model(config, "x", "Allegro", model, {})
    with pytest.raises(TrainingError, match="model file not found"):
        register_model(config, "x", "MACE", model.with_name("none.model"), {})


def test_registrations_wait_for_the_lock_and_all_land(project):
    config, model = project
    before = config.read_bytes()
    code = (
        "import sys; from pathlib import Path; from scalms.training.register import "
        "register_model as r; r(Path(sys.argv[1]), sys.argv[2], 'MACE', Path(sys.argv[3]), {})"
    )
    with WorkDirLock(config.parent, "another registration"):
        children = [
            subprocess.Popen([sys.executable, "-c", code, str(config), name, str(model)])
            for name in ("one", "two", "three")
        ]
        time.sleep(5)  # long enough for them to start and reach the lock
        assert config.read_bytes() == before
        assert all(child.poll() is None for child in children)  # waiting, not refused
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
    entries = load_config(config).entries
    assert {"one", "two", "three"} <= set(entries)
    assert config.read_text().count("\nMACE:\n") == 1
