"""Task files: what a child computes, as JSON the parent writes and the child reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalms.config import ModelEntry


@dataclass
class Task:
    """One child's work: a job ``kind`` with one model.

    ``params`` are the job's own settings (for ``static``: structures, backends, batch size);
    ``output`` is the HDF5 file the child writes; ``device`` is ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    kind: str
    model: ModelEntry
    output: Path
    device: str = "auto"
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "model": self.model.to_dict(),
                "output": str(self.output),
                "device": self.device,
                "seed": self.seed,
                "params": self.params,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Task:
        data = json.loads(text)
        return cls(
            kind=data["kind"],
            model=ModelEntry.from_dict(data["model"]),
            output=Path(data["output"]),
            device=data.get("device", "auto"),
            seed=int(data.get("seed", 0)),
            params=dict(data.get("params") or {}),
        )

    def write(self, path: Path) -> Path:
        from scalms.files import atomic_write_text

        return atomic_write_text(path, self.to_json())
