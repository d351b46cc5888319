"""HDF5 file of static evaluations: run / structure / frame, from which ASE Atoms rebuild.

Layout (units: Å, eV, eV/Å, eV/Å³)::

    /                       attrs: format, format_version, scalms_version, complete, failed
    /<run>/                 attrs: model, family, backend (used), requested_backend, fallback
                            (why TorchSim was not used, or ""), device, versions (JSON),
                            load_time_s, compute_time_s, complete (all structures stored)
    /<run>/<structure>/     attrs: source, n_frames
        n_atoms   (n_frames,)           atoms per frame
        numbers   (sum n_atoms,)        frames concatenated
        positions (sum n_atoms, 3)
        cell      (n_frames, 3, 3)
        pbc       (n_frames, 3)
        energy    (n_frames,)
        forces    (sum n_atoms, 3)
        stress    (n_frames, 6)         Voigt, NaN unless the frame is fully periodic

A run is a model evaluated with one backend; its name is the model's, or ``model@backend`` when
one command compares backends. Frames of different sizes share one concatenated table, which
keeps a benchmark of thousands of frames in a handful of datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from scalms import __version__

FORMAT = "scalms-static"
FORMAT_VERSION = 1


def create_file(path: Path) -> h5py.File:
    """Open a fresh results file, marked incomplete until :func:`mark_complete`."""
    handle = h5py.File(path, "w", track_order=True)  # runs in the order they ran
    handle.attrs.update(
        format=FORMAT, format_version=FORMAT_VERSION, scalms_version=__version__, complete=False
    )
    return handle


def write_structure(
    run_group: h5py.Group, label: str, source: str, frames: list[Atoms], result
) -> None:
    """Store the ``frames`` of one structure and their :class:`scalms.static.StaticResult`."""
    n_atoms = sum(len(a) for a in frames)
    forces = np.concatenate(result.forces).astype(float)
    if forces.shape != (n_atoms, 3) or np.isnan(result.energy).any():
        # A frame a batch skipped would shift every later frame's forces: refuse to store it.
        raise ValueError(f"{label}: results missing for some frames; nothing stored")
    group = run_group.create_group(label, track_order=True)
    group.attrs.update(source=source, n_frames=len(frames))
    group["n_atoms"] = np.array([len(a) for a in frames], dtype=np.int64)
    group["numbers"] = np.concatenate([a.numbers for a in frames]).astype(np.int16)
    group["positions"] = np.concatenate([a.positions for a in frames])
    group["cell"] = np.stack([a.cell.array for a in frames])
    group["pbc"] = np.stack([a.pbc for a in frames])
    group["energy"] = np.asarray(result.energy, dtype=float)
    group["forces"] = forces
    group["stress"] = np.asarray(result.stress, dtype=float)


def add_run(handle: h5py.File, run: str, attrs: dict) -> h5py.Group:
    """A new run group; dict-valued attributes (software versions) are stored as JSON."""
    group = handle.create_group(run, track_order=True)  # structures as given
    group.attrs.update({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in attrs.items()})
    return group


def mark_complete(handle: h5py.File, failed: list[str] | None = None) -> None:
    handle.attrs["failed"] = json.dumps(failed or [])
    handle.attrs["complete"] = True
    handle.flush()


class ResultsFile:
    """The consolidated file a command writes: runs are copied in as their children finish."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = create_file(self.path)

    def add_run_file(self, run_file: Path) -> list[str]:
        """Copy the finished runs of a child's file into this one; return their names.

        A child that failed may still have finished a run (``--backend both``: ASE done,
        TorchSim failed); runs it did not finish are left out.
        """
        with h5py.File(run_file, "r") as source:
            runs = [run for run in source if source[run].attrs.get("complete", False)]
            for run in runs:
                if run in self._handle:
                    del self._handle[run]
                source.copy(source[run], self._handle, name=run)
        self._handle.flush()
        return runs

    def close(self, failed: list[str]) -> None:
        """Finish the file: complete, naming the models that failed."""
        mark_complete(self._handle, failed)
        self._handle.close()

    def abandon(self) -> None:
        """Close an interrupted file as it stands: readable, and marked incomplete."""
        self._handle.flush()
        self._handle.close()


def bare_frames(group: h5py.Group) -> list[tuple[Atoms, slice]]:
    """Each frame of a group of concatenated frames (``n_atoms``, ``numbers``, ``positions``,
    ``cell``, ``pbc``) as an Atoms without results, with its slice of the per-atom arrays."""
    n_atoms = group["n_atoms"][()]
    bounds = np.concatenate([[0], np.cumsum(n_atoms)])
    numbers, positions = group["numbers"][()], group["positions"][()]
    cells, pbcs = group["cell"][()], group["pbc"][()]
    frames = []
    for i in range(len(n_atoms)):
        atoms_slice = slice(bounds[i], bounds[i + 1])
        atoms = Atoms(
            numbers=numbers[atoms_slice],
            positions=positions[atoms_slice],
            cell=cells[i],
            pbc=pbcs[i],
        )
        frames.append((atoms, atoms_slice))
    return frames


def _frames_of(group: h5py.Group) -> list[Atoms]:
    forces, energies, stresses = group["forces"][()], group["energy"][()], group["stress"][()]
    frames = []
    for i, (atoms, atoms_slice) in enumerate(bare_frames(group)):
        results = {"energy": float(energies[i]), "forces": forces[atoms_slice].copy()}
        if not np.isnan(stresses[i]).any():
            results["stress"] = stresses[i].copy()
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def read_results(path: Path | str) -> dict[str, dict[str, list[Atoms]]]:
    """Rebuild ``{run: {structure: [Atoms with energy, forces, stress]}}`` from ``path``."""
    with h5py.File(path, "r") as handle:
        return {run: {s: _frames_of(handle[run][s]) for s in handle[run]} for run in handle}


def read_run_attrs(path: Path | str) -> dict[str, dict]:
    """The attributes of every run in ``path`` (versions decoded from JSON)."""
    with h5py.File(path, "r") as handle:
        out = {}
        for run in handle:
            attrs = dict(handle[run].attrs)
            if "versions" in attrs:
                attrs["versions"] = json.loads(attrs["versions"])
            out[run] = attrs
        return out


def is_complete(path: Path | str) -> bool:
    with h5py.File(path, "r") as handle:
        return bool(handle.attrs.get("complete", False))


def merge_files(out: Path | str, parts: list[tuple[Path, dict[str, str]]]) -> None:
    """Write ``out`` from complete results files that each hold some structures of the same
    runs (the array tasks of one split command). ``parts`` pairs each file with how its
    structure labels are named in ``out``; structures go in the order of ``parts``. A run keeps
    the first file's attributes with the load and compute times summed over the files.
    Written atomically: ``out`` is whole or left as it was."""
    from scalms.files import atomic_path

    with atomic_path(out) as tmp, create_file(tmp) as handle:
        failed: list[str] = []
        for path, labels in parts:
            with h5py.File(path, "r") as source:
                if not source.attrs.get("complete", False):
                    raise ValueError(f"{path} is not complete")
                failed += [
                    f for f in json.loads(source.attrs.get("failed", "[]")) if f not in failed
                ]
                for run in source:
                    if run not in handle:
                        handle.create_group(run, track_order=True).attrs.update(source[run].attrs)
                    else:
                        for key in ("load_time_s", "compute_time_s"):
                            handle[run].attrs[key] += source[run].attrs[key]
                    for label in source[run]:
                        source.copy(source[run][label], handle[run], name=labels[label])
        mark_complete(handle, failed)
