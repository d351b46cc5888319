"""Analysis records on disk: one JSON file per record, readable by people and by `load_record`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from scalms.analysis import results

RECORD_TYPES = {
    cls.__name__: cls
    for cls in (
        results.PairDistribution,
        results.SoluteTrace,
        results.DiffusionFit,
        results.MeanSquaredDisplacement,
        results.NetForce,
    )
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__record__": type(value).__name__,
            **{f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"])
    if isinstance(value, dict) and "__record__" in value:
        cls = RECORD_TYPES[value["__record__"]]
        kwargs = {f.name: _decode(value[f.name]) for f in dataclasses.fields(cls)}
        return cls(**kwargs)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def save_record(record, path: Path) -> Path:
    """Write an analysis record (``scalms.analysis.results``) as JSON; arrays keep their dtype."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_encode(record)))
    return path


def load_record(path: Path):
    """The record saved at ``path``."""
    return _decode(json.loads(Path(path).read_text()))
