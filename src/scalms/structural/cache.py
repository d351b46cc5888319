"""The descriptor cache: descriptors of (frames, model) pairs, kept between runs.

Tuning the reduction or the clustering must never recompute descriptors, whatever folder the
results go to, so the cache lives outside the output folder: ``--cache-dir``, else
``$SCALMS_CACHE_DIR``, else ``$XDG_CACHE_HOME/scalms/descriptors`` (``~/.cache/...``).

The key hashes what the descriptors depend on: the selected frames' content (atomic numbers,
positions, cell, periodicity, as read), their indices, the model (name, family, options, the
weights file's content where the entry names one, and the version of the family's package in
its environment: a bundled checkpoint such as SevenNet-0 ships inside it), and the version of
the descriptor job itself. A changed trajectory, retrained model, upgraded package or changed
descriptor definition gets a new key; a renamed or moved file keeps its entries.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from scalms.config import ModelEntry
from scalms.files import atomic_path, file_sha256
from scalms.structural.selection import SelectedRun

FORMAT = "scalms-descriptor-cache"
VERSION = 1


def default_cache_dir() -> Path:
    if os.environ.get("SCALMS_CACHE_DIR"):
        return Path(os.environ["SCALMS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scalms" / "descriptors"


def model_identity(entry: ModelEntry) -> dict:
    """What a model's descriptors depend on, as plain data."""
    from scalms.envs import installed_version
    from scalms.structural.descriptor_job import VERSION as JOB_VERSION

    identity = {
        "name": entry.name,
        "family": entry.family,
        "options": entry.options,
        "descriptor_job": JOB_VERSION,
    }
    distribution = entry.family_info.distribution
    if distribution:
        identity["package"] = f"{distribution} {installed_version(entry.python, distribution)}"
    if entry.model_path is not None and Path(entry.model_path).is_file():
        identity["weights_sha256"] = file_sha256(Path(entry.model_path))
    return identity


def cache_key(run: SelectedRun, model: dict) -> str:
    """The hex key of ``run``'s selected frames described by ``model`` (`model_identity`)."""
    traj = run.trajectory
    digest = hashlib.sha256()
    digest.update(json.dumps(model, sort_keys=True, default=str).encode())
    for array in (
        np.asarray(run.frames, dtype=np.int64),
        np.asarray(traj.numbers, dtype=np.int64),
        np.asarray(traj.positions, dtype=np.float64),
        np.asarray(traj.cell, dtype=np.float64),
        np.asarray(traj.pbc, dtype=bool),
    ):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedDescriptors:
    """Descriptors (F, N, W) of one run, with how they were made (``versions``: JSON of the
    software that computed them)."""

    values: np.ndarray
    source: str
    compute_time_s: float
    versions: str = "{}"


class DescriptorCache:
    """One HDF5 file per key under ``root/<key[:2]>/``, written whole or not at all."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.h5"

    def load(self, key: str) -> CachedDescriptors | None:
        """The entry of ``key``, or None when absent or unreadable (then it is recomputed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with h5py.File(path, "r") as handle:
                if handle.attrs.get("format") != FORMAT or handle.attrs.get("key") != key:
                    return None
                return CachedDescriptors(
                    values=handle["descriptors"][()],
                    source=str(handle.attrs["source"]),
                    compute_time_s=float(handle.attrs["compute_time_s"]),
                    versions=str(handle.attrs.get("versions", "{}")),
                )
        except (OSError, KeyError):
            return None

    def store(self, key: str, entry: CachedDescriptors, run: SelectedRun, model: str) -> Path:
        path = self.path(key)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            handle.attrs.update(
                format=FORMAT,
                version=VERSION,
                key=key,
                model=model,
                source=entry.source,
                compute_time_s=entry.compute_time_s,
                versions=entry.versions,
                trajectory=str(run.path),
                run=run.name,
            )
            handle.create_dataset("descriptors", data=entry.values.astype(np.float32))
            handle.create_dataset("frames", data=np.asarray(run.frames))
        return path
