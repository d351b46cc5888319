"""The labels file of a structural analysis (``clusters.h5``): a label per atom and frame for
each reducer, beside the embeddings, the 3D map and the per-atom profiles the labels are read with.

Layout::

    /                      attrs: format, version, model, source, width, settings (JSON)
    /runs/<name>/          attrs: path (the input file); datasets:
        frames (F,)          indices of the described frames among the run's saved frames
        numbers (N,)
        positions (F, N, 3)  Å, as read
        coordination (F, N), depth_A (F, N), distance_A (F, N)
        labels/<reducer> (F, N)
    /embedding/<reducer>   (M, dim): the pooled atom-frames, runs in file order, frame-major
    /map/indices (K,), /map/coords (K, 3): the 3D UMAP projection drawn in the figures
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from scalms.errors import ScalmsError
from scalms.files import atomic_path

FORMAT = "scalms-clusters"
VERSION = 1


@dataclass
class RunLabels:
    """One run's part of the labels file."""

    name: str
    path: str
    frames: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    coordination: np.ndarray
    depth_A: np.ndarray
    distance_A: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ClusterFile:
    """Everything ``clusters.h5`` holds."""

    model: str
    source: str
    width: int
    settings: dict
    runs: list[RunLabels]
    embeddings: dict[str, np.ndarray]
    map_indices: np.ndarray
    map_coords: np.ndarray


def write_cluster_file(path: Path | str, data: ClusterFile) -> Path:
    """Write ``data`` to ``path`` atomically: the file is whole or absent."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(
            format=FORMAT,
            version=VERSION,
            model=data.model,
            source=data.source,
            width=data.width,
            settings=json.dumps(data.settings),
        )
        runs = handle.create_group("runs")
        for run in data.runs:
            group = runs.create_group(run.name)
            group.attrs["path"] = run.path
            group["frames"] = run.frames
            group["numbers"] = run.numbers
            group.create_dataset("positions", data=run.positions, compression="gzip")
            group.create_dataset("coordination", data=run.coordination.astype(np.int16))
            group.create_dataset("depth_A", data=run.depth_A.astype(np.float32))
            group.create_dataset("distance_A", data=run.distance_A.astype(np.float32))
            for reducer, labels in run.labels.items():
                group.create_dataset(f"labels/{reducer}", data=labels.astype(np.int16))
        for reducer, embedding in data.embeddings.items():
            handle.create_dataset(f"embedding/{reducer}", data=embedding.astype(np.float32))
        handle["map/indices"] = data.map_indices
        handle["map/coords"] = data.map_coords.astype(np.float32)
    return path


def read_cluster_file(path: Path | str) -> ClusterFile:
    """Read a labels file written by `write_cluster_file`."""
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ScalmsError(f"cannot read labels file {path}: {err}") from None
    with handle:
        if handle.attrs.get("format") != FORMAT:
            raise ScalmsError(f"{path} is not a scalms labels file (clusters.h5)")
        runs = []
        for name, group in handle["runs"].items():
            runs.append(
                RunLabels(
                    name=name,
                    path=str(group.attrs["path"]),
                    frames=group["frames"][()],
                    numbers=group["numbers"][()],
                    positions=group["positions"][()],
                    coordination=group["coordination"][()],
                    depth_A=group["depth_A"][()],
                    distance_A=group["distance_A"][()],
                    labels={k: v[()] for k, v in group["labels"].items()},
                )
            )
        order = json.loads(handle.attrs["settings"]).get("runs", [r.name for r in runs])
        runs.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
        return ClusterFile(
            model=str(handle.attrs["model"]),
            source=str(handle.attrs["source"]),
            width=int(handle.attrs["width"]),
            settings=json.loads(handle.attrs["settings"]),
            runs=runs,
            embeddings={k: v[()] for k, v in handle["embedding"].items()},
            map_indices=handle["map/indices"][()],
            map_coords=handle["map/coords"][()],
        )
