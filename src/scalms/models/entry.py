"""One model of model_config.yaml, resolved: the type every adapter takes.

It lives beside the family registry, not in :mod:`scalms.config`, so that the adapters need only
this package and the config module (which reads the YAML into these entries) depends on the models
package and never the other way round.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalms.models import FAMILIES, Family


def venvs_root() -> Path:
    """Folder holding the managed environments: $SCALMS_VENVS, else .venvs in the scalms
    checkout (where `make` builds them), else ./.venvs."""
    if "SCALMS_VENVS" in os.environ:
        return Path(os.environ["SCALMS_VENVS"]).absolute()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".venvs"
    return Path(".venvs").absolute()


def managed_python(family: Family) -> Path:
    """The interpreter of the environment ``scalms env create <family>`` makes."""
    return venvs_root() / family.key / "bin" / "python"


@dataclass(frozen=True)
class ModelEntry:
    """One model of model_config.yaml, resolved to absolute paths."""

    name: str
    family: str
    """Key of :data:`scalms.models.FAMILIES`."""
    model_path: Path | None = None
    venv_python: Path | None = None
    """Interpreter to run the model in; None means the family's managed environment."""
    options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the adapter (e.g. ``modal``, ``default_dtype``)."""

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]

    @property
    def python(self) -> Path:
        """The interpreter that runs this model's child process."""
        if self.venv_python is not None:
            return self.venv_python
        if not self.family_info.own_environment:
            return Path(sys.executable)
        return managed_python(self.family_info)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "model_path": str(self.model_path) if self.model_path else None,
            "venv_python": str(self.venv_python) if self.venv_python else None,
            "options": self.options,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        return cls(
            name=data["name"],
            family=data["family"],
            model_path=Path(data["model_path"]) if data.get("model_path") else None,
            venv_python=Path(data["venv_python"]) if data.get("venv_python") else None,
            options=dict(data.get("options") or {}),
        )
