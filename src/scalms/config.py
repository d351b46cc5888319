"""model_config.yaml: load, validate, explain.

The file keeps the thesis's shape, architecture -> ``models`` -> model name -> entry::

    SevenNet:
      models:
        7net-0: {}                       # bundled with the sevenn package
    MACE:
      models:
        mace-small:
          model_path: ML_training/models/mace-tiny-GaPt.model
          venv_path: .venvs/mace/bin/python3   # optional

Relative paths are relative to the config file's folder. Structural problems (bad YAML, unknown
architecture or key, duplicate names) are found on load, all at once. Problems that depend on the
machine (a weights file or an environment that is missing) are checked for the models a command
uses, by :func:`entry_problems`, so one stale entry fails alone and does not block the others.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scalms.errors import ConfigError
from scalms.models import FAMILIES, family_for
from scalms.models.entry import ModelEntry, managed_python, venvs_root

__all__ = [
    "DEFAULT_CONFIG",
    "ModelConfig",
    "ModelEntry",
    "entry_problems",
    "environment_fix",
    "load_config",
    "managed_python",
    "parse_config",
    "venvs_root",
]

DEFAULT_CONFIG = Path("model_config.yaml")
ENTRY_KEYS = {"model_path", "venv_path", "options"}
MODEL_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._+-]+$")
"""Model names become HDF5 group and folder names: no '/', no '@' (it marks model@backend)."""


@dataclass(frozen=True)
class ModelConfig:
    path: Path
    entries: dict[str, ModelEntry]

    def select(self, names: list[str] | None) -> list[ModelEntry]:
        """The named entries in the order given (all entries when ``names`` is empty)."""
        if not names:
            return list(self.entries.values())
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            known = ", ".join(self.entries) or "none"
            raise ConfigError(
                [
                    f"model '{n}' is not in {self.path} (models there: {known}); "
                    f"add it under its architecture's 'models:'"
                    for n in unknown
                ]
            )
        return [self.entries[n] for n in dict.fromkeys(names)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep=False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"duplicate key '{key}' at line {key_node.start_mark.line + 1} "
                f"(first at line {seen[key] + 1}); each name may appear once"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base / path)


def _venv_python(path: Path) -> Path:
    """Accept a venv folder or its interpreter, as the thesis's files point at bin/python3."""
    return path / "bin" / "python" if path.is_dir() else path


def load_config(path: Path | str = DEFAULT_CONFIG) -> ModelConfig:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem found."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"model config not found: {path}. Pass --model-config PATH, or copy the "
            "model_config.yaml of the scalms repository (it lists the bundled 7net-0)."
        )
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> ModelConfig:
    """Validate the parsed YAML ``raw`` of the file at ``path``."""
    base = path.absolute().parent
    if raw is None:
        raise ConfigError(f"{path} is empty; list at least one architecture with its models")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must map architecture names to their models, "
            f"got {type(raw).__name__}"
        )
    problems: list[str] = []
    entries: dict[str, ModelEntry] = {}
    where_defined: dict[str, str] = {}
    known_families = ", ".join(f.display for f in FAMILIES.values())
    for arch_name, arch_body in raw.items():
        family = family_for(str(arch_name))
        if family is None:
            problems.append(f"unknown architecture '{arch_name}'; known: {known_families}")
            continue
        if not isinstance(arch_body, dict) or "models" not in arch_body:
            problems.append(f"{arch_name}: expected a 'models:' mapping under it")
            continue
        extra = set(arch_body) - {"models"}
        if extra:
            problems.append(f"{arch_name}: unknown key(s) {sorted(extra)}; only 'models' is read")
        models = arch_body["models"] or {}
        if not isinstance(models, dict):
            problems.append(f"{arch_name}.models: expected model names mapping to their settings")
            continue
        for model_name, body in models.items():
            key = f"{arch_name}.models.{model_name}"
            model_name = str(model_name)
            if not MODEL_NAME.match(model_name):
                problems.append(
                    f"{key}: model names may hold letters, digits and . _ + - only "
                    "(they name result groups and folders)"
                )
                continue
            if not family.own_environment and model_name.lower() not in family.bundled:
                choices = ", ".join(sorted(family.bundled))
                problems.append(f"{key}: no builtin model '{model_name}'; choose {choices}")
                continue
            body = {} if body is None else body
            if not isinstance(body, dict):
                problems.append(f"{key}: expected a mapping (model_path, venv_path, options)")
                continue
            unknown = set(body) - ENTRY_KEYS
            if unknown:
                problems.append(
                    f"{key}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}"
                )
                continue
            if model_name in entries:
                problems.append(
                    f"{key}: duplicate model name '{model_name}' (also under "
                    f"{where_defined[model_name]}); model names must be unique"
                )
                continue
            options = body.get("options") or {}
            if not isinstance(options, dict):
                problems.append(f"{key}.options: expected a mapping of keyword arguments")
                continue
            bad_paths = [
                name
                for name in ("model_path", "venv_path")
                if body.get(name) is not None and not isinstance(body[name], str)
            ]
            if bad_paths:
                # YAML reads `model_path: 123` as a number and `[a, b]` as a list: neither names
                # a file, and turning them into one would point at the wrong place silently.
                problems += [
                    f"{key}.{name}: expected a path, got {type(body[name]).__name__} "
                    f"{body[name]!r}; write the file's path (quote it if it looks like a number)"
                    for name in bad_paths
                ]
                continue
            model_path = body.get("model_path")
            venv_path = body.get("venv_path")
            entries[model_name] = ModelEntry(
                name=model_name,
                family=family.key,
                model_path=_resolve(base, model_path) if model_path else None,
                venv_python=_venv_python(_resolve(base, venv_path)) if venv_path else None,
                options=options,
            )
            where_defined[model_name] = str(arch_name)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    if not entries:
        raise ConfigError(f"{path} lists no models; add one under an architecture's 'models:'")
    return ModelConfig(path=path, entries=entries)


def entry_problems(entry: ModelEntry) -> list[str]:
    """What stops ``entry`` from running on this machine (empty when nothing does)."""
    family = entry.family_info
    label = f"{family.display}.models.{entry.name}"
    problems = []
    if entry.model_path is not None:
        if not entry.model_path.exists():
            problems.append(
                f"{label}.model_path: file not found: {entry.model_path}; "
                "point model_path at the weights file"
            )
    elif entry.name.lower() not in family.bundled:
        problems.append(
            f"{label}: no model_path, and {family.display} would have to download "
            f"'{entry.name}', which cannot happen offline; {family.weights_hint}"
        )
    python = entry.python
    if not python.exists():
        problems.append(f"{label}: environment not found ({python}); {environment_fix(entry)}")
    return problems


def environment_fix(entry: ModelEntry) -> str:
    """What to do when ``entry``'s interpreter is missing: build the managed environment, or
    mend venv_path (the builtin family has no managed environment: it runs in scalms's own)."""
    family = entry.family_info
    if entry.venv_python is None and family.own_environment:
        return f"run `scalms env create {family.key}`"
    default = "the managed environment" if family.own_environment else "scalms's own interpreter"
    return f"fix venv_path, or remove it to use {default}"
