"""A trained model becomes one more model_config.yaml entry.

The entry is added as text: new lines are inserted after the architecture's last model (or, when
the file has no such architecture, a new block after the last one), and no byte of the rest of
the file changes, comments included. The new text is checked before it is written: it must
parse as a valid config holding every earlier entry unchanged plus the new one, pointing at the
model file. It is written atomically under the lock of the config's folder, so the file is never
half-written and two registrations at once do not lose each other's entry.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from scalms.config import MODEL_NAME, ModelConfig, load_config, parse_config
from scalms.errors import ConfigError
from scalms.files import WorkDirBusy, WorkDirLock, atomic_path
from scalms.models import family_for
from scalms.training.trained import TrainingError

DEFAULT_STEP = 2
"""Indentation per level when the file shows none to copy."""
LOCK_WAIT_S = 60.0
"""How long a registration waits for another command to release the config's folder."""


def _check_name_syntax(name: str) -> None:
    if not MODEL_NAME.match(name):
        raise TrainingError(
            f"model name '{name}' may hold letters, digits and . _ + - only (it names result "
            "groups and folders); choose another --name"
        )


def _taken(config: ModelConfig, name: str) -> TrainingError:
    family = config.entries[name].family_info.display
    return TrainingError(
        f"model name '{name}' is already in {config.path} (under {family}); choose another "
        f"--name, or remove that entry first"
    )


def check_name_free(config_path: Path, name: str) -> None:
    """Raise TrainingError when ``name`` is already an entry of ``config_path`` (or could not
    be one); the config itself must load."""
    _check_name_syntax(name)
    config = load_config(config_path)
    if name in config.entries:
        raise _taken(config, name)


def config_model_path(config_path: Path, model_path: Path) -> str:
    """``model_path`` as the entry writes it: relative to the config's folder when the file
    is inside it, else absolute (POSIX separators either way)."""
    base = os.path.abspath(Path(config_path).parent)
    target = os.path.abspath(model_path)
    if Path(target).is_relative_to(base):
        return Path(os.path.relpath(target, base)).as_posix()
    return Path(target).as_posix()


def _last_line(node: yaml.Node) -> int:
    """The 0-based line on which ``node``'s content ends (its last key, value or item)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1])
    end = node.end_mark
    # A mark at column 0 of a later line means the node ended with the line before.
    if end.column == 0 and end.line > node.start_mark.line:
        return end.line - 1
    return end.line


def _mapping_get(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _entry_text(name: str, body: dict[str, Any], indent: int, step: int) -> list[str]:
    """The entry's lines, in block style, its name at column ``indent``."""
    try:
        dumped = yaml.safe_dump(
            {name: body}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
        )
    except yaml.YAMLError as err:
        raise TrainingError(
            f"options of model '{name}' cannot be written to YAML ({err}); use text, numbers, "
            "booleans, lists and mappings"
        ) from None
    lines = []
    for line in dumped.splitlines():
        stripped = line.lstrip(" ")
        level = (len(line) - len(stripped)) // 2  # safe_dump indents by 2
        lines.append(" " * (indent + level * step) + stripped)
    return lines


def _insertion(text: str, config_path: Path, name: str, architecture: str, body: dict) -> str:
    """``text`` with the entry inserted as new lines, nothing else changed."""
    family = family_for(architecture)
    if family is None:
        raise TrainingError(f"unknown architecture '{architecture}' for model '{name}'")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        raise TrainingError(
            f"{config_path}: the top level is not a block mapping of architectures; "
            f"add {name} by hand"
        )
    first_key, first_body = root.value[0]
    step = DEFAULT_STEP
    if isinstance(first_body, yaml.MappingNode) and (found := _mapping_get(first_body, "models")):
        step = max(found[0].start_mark.column - first_key.start_mark.column, 1)
    top = root.value[0][0].start_mark.column
    block = next(
        (
            (key, value)
            for key, value in root.value
            if isinstance(key, yaml.ScalarNode) and family_for(str(key.value)) is family
        ),
        None,
    )
    if block is None:
        after = _last_line(root)
        new = [
            "",
            " " * top + f"{family.display}:",
            " " * (top + step) + "models:",
            *_entry_text(name, body, top + 2 * step, step),
        ]
    else:
        arch_key, arch_body = block
        models = (
            _mapping_get(arch_body, "models") if isinstance(arch_body, yaml.MappingNode) else None
        )
        where = f"{config_path}: {arch_key.value}.models (line {arch_key.start_mark.line + 1})"
        if models is None:
            raise TrainingError(f"{where} is missing; fix the file, then register {name} again")
        models_key, models_body = models
        if isinstance(models_body, yaml.ScalarNode) and models_body.value in ("", "~", "null"):
            after = models_key.start_mark.line
            indent = models_key.start_mark.column + step
        elif isinstance(models_body, yaml.MappingNode) and not models_body.flow_style:
            after = _last_line(models_body)
            indent = models_body.value[0][0].start_mark.column
        else:
            raise TrainingError(
                f"{where} is written inline; put its models one per line (block style) so "
                f"that {name} can be added"
            )
        new = _entry_text(name, body, indent, step)
    cr = "\r" if "\r\n" in text else ""  # new lines end as the file's do
    if not text.endswith("\n"):
        text += cr + "\n"  # the last line gets its line end: bytes added, none changed
    lines = text.split("\n")
    lines[after + 1 : after + 1] = [line + cr for line in new]
    return "\n".join(lines)


def _check_result(old: ModelConfig, new: ModelConfig, name: str, family: str, body: dict) -> None:
    """The new config holds every old entry unchanged and the new one as asked."""
    expected = [*old.entries, name]
    entry = new.entries.get(name)
    wanted_path = os.path.abspath(
        Path(body["model_path"])
        if os.path.isabs(body["model_path"])
        else old.path.absolute().parent / body["model_path"]
    )
    if (
        sorted(new.entries) != sorted(expected)
        or any(new.entries[n] != e for n, e in old.entries.items())
        or entry is None
        or entry.family != family
        or os.path.abspath(entry.model_path or "") != wanted_path
        or entry.options != body.get("options", {})
    ):
        raise TrainingError(
            f"adding {name} to {old.path} would change other entries (an unusual layout of "
            "the file); the file is left as it was: add the entry by hand"
        )


def _locked(folder: Path, command: str) -> WorkDirLock:
    """The folder's lock, waited for: a registration must not fail because another one is
    writing the same file."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return WorkDirLock(folder, command).acquire()
        except WorkDirBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def register_model(
    config_path: Path, name: str, architecture: str, model_path: Path, options: dict[str, Any]
) -> str:
    """Add ``architecture -> models -> name -> {model_path, options}`` to ``config_path``,
    keeping the rest of the file byte for byte. Returns the model_path as written."""
    config_path = Path(config_path)
    _check_name_syntax(name)
    family = family_for(architecture)
    if family is None:
        raise TrainingError(f"unknown architecture '{architecture}' for model '{name}'")
    if not Path(model_path).is_file():
        raise TrainingError(f"model file not found: {model_path}; nothing was registered")
    written_path = config_model_path(config_path, Path(model_path))
    body: dict[str, Any] = {"model_path": written_path}
    if options:
        body["options"] = dict(options)
    # A symlinked config is written through the link, paths staying relative to the link.
    target = Path(os.path.realpath(config_path))
    lock = _locked(target.parent, f"scalms train (registering {name})")
    try:
        old = load_config(config_path)
        if name in old.entries:
            raise _taken(old, name)
        text = target.read_bytes().decode("utf-8")
        updated = _insertion(text, config_path, name, family.display, body)
        try:
            new = parse_config(yaml.safe_load(updated), config_path)
        except (yaml.YAMLError, ConfigError) as err:
            raise TrainingError(
                f"adding {name} to {config_path} would make it invalid ({err}); the file is "
                "left as it was: add the entry by hand"
            ) from None
        _check_result(old, new, name, family.key, body)
        with atomic_path(target) as tmp:
            tmp.write_bytes(updated.encode("utf-8"))
            shutil.copymode(target, tmp)
    finally:
        lock.release()
    return written_path
