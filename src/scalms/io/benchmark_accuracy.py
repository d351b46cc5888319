"""Files of the accuracy benchmark: the hierarchical HDF5 store and the flat table made from it.

The store, ``benchmark.h5`` (units: Å, eV, eV/Å)::

    /                              attrs: format, format_version, scalms_version
    /reference/<structure>/        attrs: source, n_frames, energy_key, forces_key
        n_atoms (F,) numbers (N,) positions (N, 3) cell (F, 3, 3) pbc (F, 3)
        energy (F,) forces (N, 3)  the reference's values
    /models/<model>/               attrs: family, backend, fallback, device, versions (JSON),
                                   load_time_s, compute_time_s, added (UTC time), run_id
    /models/<model>/<structure>/
        energy (F,) forces (N, 3)  the model's predictions of the same frames

Model / structure / frame: frames of a structure are concatenated (atoms of frame i are rows
``sum(n_atoms[:i])`` to ``sum(n_atoms[:i+1])``), and the geometry is stored once, under the
reference, however many models predict it. :func:`read_frames` rebuilds ASE Atoms holding both.

The flat table, ``benchmark_flat.h5``, has one row per (model, atom) in ``/atoms`` and per
(model, frame) in ``/frames``, each column a dataset, for plotting and metrics; it records the
``run_id`` of every model it was made from and is made again when they change
(:func:`flat_is_current`).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from scalms import __version__
from scalms.errors import ScalmsError
from scalms.io.static_results import bare_frames

FORMAT = "scalms-benchmark-accuracy"
FLAT_FORMAT = "scalms-benchmark-flat"
FORMAT_VERSION = 1
POSITION_TOL_A = 1e-6
"""Positions a model's file must match the reference to: the same frames, in the same order."""


class BenchmarkFileError(ScalmsError):
    """A benchmark file that does not hold what a command needs."""


def open_store(path: Path, mode: str = "a") -> h5py.File:
    """Open (``a``: create if missing) the benchmark store; refuse files of other kinds."""
    path = Path(path)
    if mode == "r" and not path.is_file():
        raise BenchmarkFileError(f"no benchmark file at {path}")
    try:
        handle = h5py.File(path, mode, track_order=True)
    except OSError as err:
        raise BenchmarkFileError(f"cannot open {path} as a benchmark file: {err}") from None
    if "format" not in handle.attrs and mode != "r":
        handle.attrs.update(
            format=FORMAT, format_version=FORMAT_VERSION, scalms_version=__version__
        )
    if handle.attrs.get("format") != FORMAT:
        handle.close()
        raise BenchmarkFileError(f"{path} is not an accuracy benchmark file of scalms")
    return handle


def _group(handle: h5py.File, name: str) -> h5py.Group:
    """A top-level group keeping its members in the order they were added."""
    if name in handle:
        return handle[name]
    return handle.create_group(name, track_order=True)


def _concatenated(frames: list[Atoms]) -> dict[str, np.ndarray]:
    return {
        "n_atoms": np.array([len(a) for a in frames], dtype=np.int64),
        "numbers": np.concatenate([a.numbers for a in frames]).astype(np.int16),
        "positions": np.concatenate([a.positions for a in frames]),
        "cell": np.stack([a.cell.array for a in frames]),
        "pbc": np.stack([a.pbc for a in frames]),
    }


def write_reference(handle: h5py.File, structures: Iterable) -> None:
    """Store each :class:`scalms.benchmark.reference.ReferenceStructure` under /reference."""
    root = _group(handle, "reference")
    for structure in structures:
        group = root.create_group(structure.label, track_order=True)
        group.attrs.update(
            source=str(structure.source),
            n_frames=len(structure.frames),
            energy_key=structure.energy_key,
            forces_key=structure.forces_key,
        )
        for name, values in _concatenated(structure.frames).items():
            group[name] = values
        group["energy"] = np.asarray(structure.energy, dtype=float)
        group["forces"] = np.concatenate(structure.forces).astype(float)
    handle.flush()


def same_reference(handle: h5py.File, structures: list) -> str:
    """Why ``structures`` are not the reference stored in ``handle`` ("" when they are)."""
    stored = list(handle.get("reference", {}))
    given = [s.label for s in structures]
    if sorted(stored) != sorted(given):
        return f"it holds {', '.join(stored) or 'nothing'}, given {', '.join(given)}"
    for structure in structures:
        group = handle["reference"][structure.label]
        arrays = _concatenated(structure.frames)
        if not np.array_equal(group["n_atoms"][()], arrays["n_atoms"]) or not np.array_equal(
            group["numbers"][()], arrays["numbers"]
        ):
            return f"{structure.label} has other frames"
        if not np.allclose(group["positions"][()], arrays["positions"], atol=POSITION_TOL_A):
            return f"{structure.label} has other positions"
        if not np.allclose(group["energy"][()], structure.energy, rtol=0, atol=1e-8):
            return f"{structure.label} has other reference energies"
        if not np.allclose(
            group["forces"][()], np.concatenate(structure.forces), rtol=0, atol=1e-8
        ):
            return f"{structure.label} has other reference forces"
    return ""


def structures_of(handle: h5py.File) -> list[str]:
    return list(handle.get("reference", {}))


def models_of(handle: h5py.File) -> list[str]:
    return list(handle.get("models", {}))


def add_model_from_static(handle: h5py.File, static_file: Path, run: str, model: str) -> None:
    """Copy run ``run`` of a ``scalms static`` results file in as ``model``'s predictions.

    The run must hold every reference structure with the same atoms and positions (it was
    computed from the same files); an earlier entry of ``model`` is replaced.
    """
    with h5py.File(static_file, "r") as source:
        group = source[run]
        missing = [s for s in structures_of(handle) if s not in group]
        if missing:
            raise BenchmarkFileError(f"{model}: no predictions for {', '.join(missing)}")
        predictions = {}
        for label in structures_of(handle):
            reference, predicted = handle["reference"][label], group[label]
            same_atoms = np.array_equal(reference["n_atoms"][()], predicted["n_atoms"][()])
            if not same_atoms or not np.allclose(
                reference["positions"][()], predicted["positions"][()], atol=POSITION_TOL_A
            ):
                raise BenchmarkFileError(
                    f"{model}: the frames it computed for {label} are not the reference frames"
                )
            predictions[label] = (predicted["energy"][()], predicted["forces"][()])
        attrs = {
            key: group.attrs[key]
            for key in (
                "family",
                "backend",
                "fallback",
                "device",
                "versions",
                "load_time_s",
                "compute_time_s",
            )
            if key in group.attrs
        }
    write_predictions(handle, model, attrs, predictions)


def write_predictions(
    handle: h5py.File,
    model: str,
    attrs: dict,
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Store ``model``'s ``{structure: (energy (F,), forces (N, 3))}``, replacing an earlier
    entry; a new ``run_id`` tells the flat table it must be made again."""
    models = _group(handle, "models")
    if model in models:
        del models[model]
    group = models.create_group(model, track_order=True)
    group.attrs.update(attrs)
    group.attrs.update(
        added=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        run_id=uuid.uuid4().hex,
    )
    for label in structures_of(handle):
        energy, forces = predictions[label]
        reference = handle["reference"][label]
        if (
            np.shape(energy) != reference["energy"].shape
            or np.shape(forces) != reference["forces"].shape
        ):
            raise BenchmarkFileError(f"{model}: predictions for {label} do not match its frames")
        sub = group.create_group(label)
        sub["energy"] = np.asarray(energy, dtype=float)
        sub["forces"] = np.asarray(forces, dtype=float)
    handle.flush()


def model_attrs(path: Path) -> dict[str, dict]:
    """Attributes of every model in the store (versions decoded)."""
    with open_store(path, "r") as handle:
        found = {}
        for model in models_of(handle):
            attrs = dict(handle["models"][model].attrs)
            if isinstance(attrs.get("versions"), str):
                attrs["versions"] = json.loads(attrs["versions"])
            found[model] = attrs
        return found


def _frames_from(group: h5py.Group, energy: np.ndarray, forces: np.ndarray) -> list[Atoms]:
    ref_energy, ref_forces = group["energy"][()], group["forces"][()]
    frames = []
    for i, (atoms, atoms_slice) in enumerate(bare_frames(group)):
        atoms.info["REF_energy"] = float(ref_energy[i])
        atoms.arrays["REF_forces"] = ref_forces[atoms_slice].copy()
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(energy[i]), forces=forces[atoms_slice].copy()
        )
        frames.append(atoms)
    return frames


def read_frames(path: Path | str, model: str | None, structure: str) -> list[Atoms]:
    """Rebuild the frames of ``structure``: reference energy and forces in ``info["REF_energy"]``
    and ``arrays["REF_forces"]``, ``model``'s predictions as the calculator's results (the
    reference's own values there when ``model`` is None)."""
    with open_store(Path(path), "r") as handle:
        if structure not in handle.get("reference", {}):
            raise BenchmarkFileError(f"{path} holds no structure '{structure}'")
        group = handle["reference"][structure]
        if model is None:
            return _frames_from(group, group["energy"][()], group["forces"][()])
        if model not in handle.get("models", {}):
            raise BenchmarkFileError(f"{path} holds no model '{model}'")
        predicted = handle["models"][model][structure]
        return _frames_from(group, predicted["energy"][()], predicted["forces"][()])


@dataclass
class FlatTable:
    """The flat benchmark table: one row per (model, atom) and per (model, frame).

    ``atoms`` columns: model, structure (indices into ``models``/``structures``), frame, atom,
    number, ref_fx, ref_fy, ref_fz, pred_fx, pred_fy, pred_fz (eV/Å). ``frames`` columns: model,
    structure, frame, n_atoms, ref_energy_eV, pred_energy_eV. Rows of one model follow the
    reference's order, structure by structure and frame by frame.
    """

    models: list[str]
    structures: list[str]
    atoms: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]

    def model_rows(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks of ``model``'s rows in ``atoms`` and ``frames``."""
        index = self.models.index(model)
        return self.atoms["model"] == index, self.frames["model"] == index

    def reference_forces(self, model: str) -> np.ndarray:
        mask, _ = self.model_rows(model)
        return np.column_stack([self.atoms[f"ref_f{c}"][mask] for c in "xyz"])

    def predicted_forces(self, model: str) -> np.ndarray:
        mask, _ = self.model_rows(model)
        return np.column_stack([self.atoms[f"pred_f{c}"][mask] for c in "xyz"])


def _signature(handle: h5py.File) -> str:
    runs = {m: str(handle["models"][m].attrs.get("run_id", "")) for m in models_of(handle)}
    return json.dumps(runs, sort_keys=True)


def flat_is_current(store: Path, flat: Path) -> bool:
    """Whether ``flat`` was made from the models now in ``store`` (same models, same runs)."""
    if not Path(flat).is_file():
        return False
    with open_store(store, "r") as handle:
        wanted = _signature(handle)
    try:
        with h5py.File(flat, "r") as handle:
            return (
                handle.attrs.get("format") == FLAT_FORMAT and handle.attrs.get("source") == wanted
            )
    except OSError:
        return False


def write_flat(store: Path, flat: Path) -> FlatTable:
    """Make the flat table of every model in ``store`` and write it to ``flat`` (atomically)."""
    with open_store(store, "r") as handle:
        models, structures = models_of(handle), structures_of(handle)
        if not models:
            raise BenchmarkFileError(f"{store} holds no model results yet")
        atom_columns: dict[str, list[np.ndarray]] = {}
        frame_columns: dict[str, list[np.ndarray]] = {}

        def add(columns: dict, **values: np.ndarray) -> None:
            for name, value in values.items():
                columns.setdefault(name, []).append(value)

        for m, model in enumerate(models):
            for s, label in enumerate(structures):
                reference = handle["reference"][label]
                predicted = handle["models"][model][label]
                n_atoms = reference["n_atoms"][()]
                n_frames, total = len(n_atoms), int(n_atoms.sum())
                ref_f, pred_f = reference["forces"][()], predicted["forces"][()]
                add(
                    atom_columns,
                    model=np.full(total, m, dtype=np.int32),
                    structure=np.full(total, s, dtype=np.int32),
                    frame=np.repeat(np.arange(n_frames, dtype=np.int64), n_atoms),
                    atom=np.concatenate([np.arange(n, dtype=np.int64) for n in n_atoms]),
                    number=reference["numbers"][()],
                    **{f"ref_f{c}": ref_f[:, i] for i, c in enumerate("xyz")},
                    **{f"pred_f{c}": pred_f[:, i] for i, c in enumerate("xyz")},
                )
                add(
                    frame_columns,
                    model=np.full(n_frames, m, dtype=np.int32),
                    structure=np.full(n_frames, s, dtype=np.int32),
                    frame=np.arange(n_frames, dtype=np.int64),
                    n_atoms=n_atoms,
                    ref_energy_eV=reference["energy"][()],
                    pred_energy_eV=predicted["energy"][()],
                )
        signature = _signature(handle)
    table = FlatTable(
        models=models,
        structures=structures,
        atoms={k: np.concatenate(v) for k, v in atom_columns.items()},
        frames={k: np.concatenate(v) for k, v in frame_columns.items()},
    )
    partial = Path(flat).with_name(Path(flat).name + ".part")
    with h5py.File(partial, "w") as handle:
        handle.attrs.update(
            format=FLAT_FORMAT,
            format_version=FORMAT_VERSION,
            source=signature,
            models=json.dumps(models),
            structures=json.dumps(structures),
        )
        for name, columns in (("atoms", table.atoms), ("frames", table.frames)):
            group = handle.create_group(name)
            for column, values in columns.items():
                group.create_dataset(column, data=values, compression="gzip", shuffle=True)
    partial.replace(flat)
    return table


def read_flat(flat: Path) -> FlatTable:
    """The flat table written by :func:`write_flat`."""
    with h5py.File(flat, "r") as handle:
        if handle.attrs.get("format") != FLAT_FORMAT:
            raise BenchmarkFileError(f"{flat} is not a flat benchmark table of scalms")
        return FlatTable(
            models=json.loads(handle.attrs["models"]),
            structures=json.loads(handle.attrs["structures"]),
            atoms={k: v[()] for k, v in handle["atoms"].items()},
            frames={k: v[()] for k, v in handle["frames"].items()},
        )
