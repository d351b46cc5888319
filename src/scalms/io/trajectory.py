"""One (model, structure) MD run in an H5MD 1.1 file, written frame by frame.

Layout (units: Å, fs, Å/fs, eV/Å, eV, K, amu)::

    /h5md                       attrs version=[1, 1]; author (name), creator (name, version)
    /particles/all/species      (N,) atomic numbers
    /particles/all/mass         (N,) amu
    /particles/all/box          attrs dimension=3, boundary=["periodic" | "none"] * 3
    /particles/all/box/edges    {step (F,), time (F,) fs, value (F, 3, 3) Å}, cell vectors as rows
    /particles/all/position     {step, time, value (F, N, 3) Å}
    /particles/all/velocity     {step, time, value (F, N, 3) Å/fs}       when the run saves them
    /particles/all/force        {step, time, value (F, N, 3) eV/Å}       when the run saves them
    /observables/potential_energy, kinetic_energy, temperature
                                {step, time, value (F,)} eV, eV, K       when the run gives them
    /parameters                 attrs: time_step_fs, save_interval, model, structure and every
                                run parameter (non-scalars as JSON)
    /scalms                     attrs: format_version, complete, target_step (when known),
                                json_parameters (JSON list of the parameters stored as JSON)

Every frame is flushed as it is appended: a writer killed with SIGKILL leaves a file that reads
back with every frame whose ``append`` returned, marked incomplete. A frame cut off half-written
is dropped on reading, because every time-dependent group is read to the shortest one.

Files are opened with HDF5 file locking off, by readers and writers alike, so a run can be
inspected while it is written, from another process or from the writer's own (HDF5 refuses to
open one file twice in a process with different locking flags). It then shows the frames flushed
so far. Locking is no guard we need: creation is exclusive (an existing file is refused) and each
run has one writer, its MD job; and some cluster file systems cannot lock at all. SWMR would make
reading during writing race-free, but pins the newest HDF5 file format and complicates truncating
on resume; a run is read while written only to watch its progress, where a rare retry will do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from scalms.errors import ScalmsError
from scalms.trajectory import Trajectory

FORMAT_VERSION = 1
PARTICLES = "particles/all"

# Unit strings in H5MD notation; "Angstrom" is the spelling MDAnalysis's H5MD reader knows.
LENGTH_UNIT = "Angstrom"
TIME_UNIT = "fs"
VELOCITY_UNIT = "Angstrom fs-1"
FORCE_UNIT = "eV Angstrom-1"

PER_ATOM = {"position": LENGTH_UNIT, "velocity": VELOCITY_UNIT, "force": FORCE_UNIT}
OBSERVABLES = {"potential_energy": "eV", "kinetic_energy": "eV", "temperature": "K"}
HDF5_SUFFIXES = (".h5", ".h5md", ".hdf5", ".hdf")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHUNK_BYTES = 256 * 1024  # a few frames per chunk: appends stay cheap, reads stay few
_METADATA_BYTES = 256 * 1024  # what HDF5 may add to a file's metadata on a flush, with margin


class TrajectoryError(ScalmsError):
    """A trajectory or results file is missing, unreadable, or not one scalms wrote."""


@dataclass(frozen=True)
class TrajectoryInfo:
    """What a trajectory file holds, read from its attributes and dataset shapes only."""

    n_frames: int
    last_step: int | None
    complete: bool
    target_step: int | None
    model: str
    structure: str
    n_atoms: int
    failed: str = ""
    """Why the run was stopped before its end ("" unless it was), e.g. an MD blow-up."""


def is_hdf5(path: Path | str) -> bool:
    """Whether ``path`` is meant as an HDF5 file: its suffix says so, or its bytes do.

    HDF5's signature sits at byte 0 or at a user block of 512, 1024, 2048, ... bytes. A file with
    an HDF5 suffix counts as HDF5 even when its signature is damaged, so that it is reported as a
    damaged HDF5 file, not as an unknown format.
    """
    path = Path(path)
    if path.suffix.lower() in HDF5_SUFFIXES:
        return True
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            offset = 0
            while offset + len(_HDF5_SIGNATURE) <= size:
                handle.seek(offset)
                if handle.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def open_hdf5(path: Path | str) -> h5py.File:
    """Open ``path`` read-only, without file locking; a clear error when that fails."""
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"file not found: {path}")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        if not is_hdf5(path):
            raise TrajectoryError(
                f"{path} is not an HDF5 file; make a scalms H5MD file of a trajectory of "
                f"another code with `scalms io import {path} --out X.h5md`"
            ) from None
        raise TrajectoryError(
            f"cannot open {path} as an HDF5 file ({err}); if it is damaged, restore it from a "
            "copy or write it again with the command that made it"
        ) from None


@contextmanager
def reading(path: Path | str) -> Iterator[None]:
    """Turn the errors h5py raises on a damaged file (bytes overwritten inside: a bad object
    header, a B-tree, a checksum) into one :class:`TrajectoryError` naming the file."""
    try:
        yield
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrajectoryError(
            f"{path} is damaged and cannot be read ({reason}); restore it from a copy, or write "
            "it again with the command that made it"
        ) from None


# The functions taking an h5py group read a trajectory wherever it sits: the root of its own
# file, or a run of a results file (scalms.io.results), linked or copied.


def is_trajectory(root: h5py.Group) -> bool:
    """Whether ``root`` holds a scalms trajectory."""
    return "h5md" in root and "scalms" in root and PARTICLES in root


def _require_trajectory(root: h5py.Group, source: str) -> None:
    if not is_trajectory(root):
        raise TrajectoryError(
            f"{source} is not a scalms trajectory (an H5MD file with /scalms and /{PARTICLES})"
        )


def time_groups(root: h5py.Group) -> list[h5py.Group]:
    """Every time-dependent group (step, time, value) in a trajectory."""
    particles = root[PARTICLES]
    groups = [particles["box/edges"]]
    groups += [particles[name] for name in PER_ATOM if name in particles]
    if "observables" in root:
        groups += [root["observables"][name] for name in root["observables"]]
    return groups


def _consistent_frames(root: h5py.Group) -> int:
    """Frames present in every time-dependent dataset: a frame cut off mid-append is left out."""
    return min(len(group[name]) for group in time_groups(root) for name in group)


def _decode_parameters(root: h5py.Group) -> dict[str, Any]:
    json_keys = set(json.loads(root["scalms"].attrs.get("json_parameters", "[]")))
    out = {}
    for key, value in root["parameters"].attrs.items():
        if key in json_keys:
            value = json.loads(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _expected_steps(root: h5py.Group) -> np.ndarray | None:
    """The steps a finished run holds (0, save_interval, ... up to target_step), when known."""
    target = root["scalms"].attrs.get("target_step")
    interval = root["parameters"].attrs.get("save_interval")
    if target is None or interval is None or int(interval) < 1:
        return None
    return np.arange(0, int(target) + 1, int(interval), dtype=np.int64)


def _is_complete(root: h5py.Group, n_frames: int) -> bool:
    """Marked complete by its writer, and holding as many frames as a finished run holds: a
    file whose frames were lost after it was marked (a truncating restart) is not complete."""
    if not bool(root["scalms"].attrs.get("complete", False)):
        return False
    expected = _expected_steps(root)
    return expected is None or n_frames == len(expected)


def group_info(root: h5py.Group) -> TrajectoryInfo:
    """:class:`TrajectoryInfo` of the trajectory at ``root``, from attributes and shapes."""
    n_frames = _consistent_frames(root)
    steps = root[PARTICLES]["position/step"]
    scalms = root["scalms"].attrs
    parameters = root["parameters"].attrs
    target = scalms.get("target_step")
    return TrajectoryInfo(
        n_frames=n_frames,
        last_step=int(steps[n_frames - 1]) if n_frames else None,
        complete=_is_complete(root, n_frames),
        target_step=None if target is None else int(target),
        model=str(parameters.get("model", "")),
        structure=str(parameters.get("structure", "")),
        n_atoms=len(root[PARTICLES]["species"]),
        failed=str(scalms.get("failed", "")),
    )


def _read_slice(dataset: h5py.Dataset, frames: range) -> np.ndarray:
    """Frames ``frames`` of ``dataset`` (h5py slices only forwards)."""
    if frames.step > 0:
        return dataset[frames.start : frames.stop : frames.step]
    forward = frames[::-1]
    return dataset[forward.start : forward.stop : forward.step][::-1]


def read_group(root: h5py.Group, frames: slice | None) -> Trajectory:
    """The frames ``frames`` of the trajectory stored at ``root`` (a file or a linked group)."""
    picked = range(_consistent_frames(root))[frames if frames is not None else slice(None)]
    particles = root[PARTICLES]
    parameters = _decode_parameters(root)
    scalms = root["scalms"].attrs
    boundary = [
        b.decode() if isinstance(b, bytes) else str(b) for b in particles["box"].attrs["boundary"]
    ]

    def per_atom(name: str) -> np.ndarray | None:
        return _read_slice(particles[name]["value"], picked) if name in particles else None

    observables = root.get("observables", {})

    def observable(name: str) -> np.ndarray | None:
        return _read_slice(observables[name]["value"], picked) if name in observables else None

    attrs = dict(parameters)
    if "target_step" in scalms:
        attrs["target_step"] = int(scalms["target_step"])
    return Trajectory(
        positions=per_atom("position"),
        numbers=particles["species"][()].astype(int),
        masses=particles["mass"][()].astype(float),
        cell=_read_slice(particles["box/edges/value"], picked),
        pbc=np.array([b == "periodic" for b in boundary]),
        step=_read_slice(particles["position/step"], picked).astype(np.int64),
        time_fs=_read_slice(particles["position/time"], picked),
        time_step_fs=float(parameters["time_step_fs"]),
        save_interval=int(parameters["save_interval"]),
        velocities=per_atom("velocity"),
        forces=per_atom("force"),
        potential_energy=observable("potential_energy"),
        kinetic_energy=observable("kinetic_energy"),
        temperature_K=observable("temperature"),
        model=str(parameters.get("model", "")),
        structure=str(parameters.get("structure", "")),
        complete=_is_complete(root, _consistent_frames(root)),
        attrs=attrs,
    )


def read_trajectory(path: Path | str, frames: slice | None = None) -> Trajectory:
    """Read the frames ``frames`` (default: all) of the trajectory file ``path``.

    Raises :class:`TrajectoryError` when the file is missing, unreadable or not a scalms
    trajectory.
    """
    with open_hdf5(path) as handle, reading(path):
        _require_trajectory(handle, str(path))
        return read_group(handle, frames)


def trajectory_info(path: Path | str) -> TrajectoryInfo:
    """Frames, last step, completeness, names and size of ``path``, without reading frames."""
    with open_hdf5(path) as handle, reading(path):
        _require_trajectory(handle, str(path))
        return group_info(handle)


def _encode_parameters(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """HDF5 attributes for ``parameters``: scalars as they are, anything else as JSON."""
    encoded, json_keys = {}, []
    for key, value in parameters.items():
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, bool | int | float | str | np.bool_ | np.integer | np.floating):
            encoded[key] = value
        else:
            encoded[key] = json.dumps(value, default=str)
            json_keys.append(key)
    return encoded, json_keys


def _new_value(group: h5py.Group, frame_shape: tuple[int, ...], unit: str | None) -> h5py.Dataset:
    """An empty float64 value dataset, resizable along frames, a few frames per chunk."""
    frame_bytes = int(np.prod(frame_shape, dtype=np.int64)) * 8
    frames_per_chunk = int(np.clip(_CHUNK_BYTES // max(frame_bytes, 1), 1, 1024))
    value = group.create_dataset(
        "value",
        (0, *frame_shape),
        dtype=np.float64,
        maxshape=(None, *frame_shape),
        chunks=(frames_per_chunk, *frame_shape),
    )
    if unit is not None:
        value.attrs["unit"] = unit
    return value


def _add_time_group(
    parent: h5py.Group, name: str, frame_shape: tuple[int, ...], unit: str | None
) -> h5py.Group:
    """An H5MD time-dependent group whose step and time are hard links to the position's.

    H5MD allows sharing them; one step and one time dataset per file make an append a third as
    many HDF5 calls, and truncating them truncates every group at once.
    """
    group = parent.create_group(name, track_order=True)
    position = parent.file[PARTICLES]["position"]
    group["step"] = position["step"]
    group["time"] = position["time"]
    _new_value(group, frame_shape, unit)
    return group


def _resize_all(root: h5py.Group, n_frames: int) -> None:
    for group in time_groups(root):
        for name in group:
            if len(group[name]) != n_frames:
                group[name].resize(n_frames, axis=0)


class TrajectoryWriter:
    """Appends the frames of one MD run to an H5MD file, flushing after each.

    Use :meth:`create` for a new run and :meth:`resume` to continue one; as a context manager
    it closes the file on exit (complete only if :meth:`mark_complete` was called).
    """

    def __init__(self, handle: h5py.File, path: Path):
        self._handle = handle
        self.path = path
        particles = handle[PARTICLES]
        self._n_atoms = len(particles["species"])
        self._time_step_fs = float(handle["parameters"].attrs["time_step_fs"])
        # Dataset handles looked up once: h5py name look-ups cost as much as the writes.
        self._step = particles["position/step"]
        self._time = particles["position/time"]
        self._per_atom = {
            name: particles[f"{name}/value"] for name in PER_ATOM if name in particles
        }
        self._edges = particles["box/edges/value"]
        self._observables = {name: group["value"] for name, group in handle["observables"].items()}
        self._n_frames = _consistent_frames(handle)
        self._last_step = int(self._step[self._n_frames - 1]) if self._n_frames else None
        # The most one append can claim from the disk: a new chunk of every dataset, and room
        # for HDF5's metadata. HDF5 meeting a full disk leaves a file it can neither flush nor
        # close (and crashes freeing it), so a frame that may not fit is refused before it.
        datasets = [self._step, self._time, *self._per_atom.values(), self._edges]
        datasets += list(self._observables.values())
        self._room_needed = _METADATA_BYTES + sum(
            int(np.prod(d.chunks)) * d.dtype.itemsize for d in datasets if d.chunks
        )

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        numbers: np.ndarray,
        masses: np.ndarray,
        pbc: np.ndarray | list[bool],
        time_step_fs: float,
        save_interval: int,
        model: str,
        structure: str,
        parameters: dict[str, Any],
        target_step: int | None = None,
        velocities: bool = True,
        forces: bool = True,
    ) -> TrajectoryWriter:
        """Start a new trajectory file at ``path``; refuses a file that already exists.

        ``numbers`` are atomic numbers, ``masses`` in amu, ``time_step_fs`` the MD time step,
        ``save_interval`` the MD steps between saved frames and ``target_step`` the step the run
        is meant to reach. ``velocities`` and ``forces`` say whether every frame carries them.
        """
        from scalms import __version__

        path = Path(path)
        numbers = np.asarray(numbers, dtype=np.int64)
        masses = np.asarray(masses, dtype=np.float64)
        if numbers.ndim != 1 or masses.shape != numbers.shape:
            raise ValueError(f"numbers {numbers.shape} and masses {masses.shape} must be (N,)")
        n_atoms = len(numbers)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = h5py.File(path, "x", track_order=True, locking=False)
        except FileExistsError:
            raise TrajectoryError(
                f"trajectory file already exists: {path}; resume it or remove it"
            ) from None
        h5md = handle.create_group("h5md", track_order=True)
        h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
        h5md.create_group("author").attrs["name"] = "scalms"
        creator = h5md.create_group("creator")
        creator.attrs.update(name="scalms", version=__version__)

        particles = handle.create_group(PARTICLES, track_order=True)
        particles["species"] = numbers
        particles["mass"] = masses
        box = particles.create_group("box", track_order=True)
        box.attrs["dimension"] = np.int32(3)
        box.attrs["boundary"] = np.array(
            [b"periodic" if p else b"none" for p in np.asarray(pbc, dtype=bool)], dtype="S8"
        )
        position = particles.create_group("position", track_order=True)
        position.create_dataset("step", (0,), dtype=np.int64, maxshape=(None,), chunks=(1024,))
        position.create_dataset(
            "time", (0,), dtype=np.float64, maxshape=(None,), chunks=(1024,)
        ).attrs["unit"] = TIME_UNIT
        _new_value(position, (n_atoms, 3), LENGTH_UNIT)
        _add_time_group(box, "edges", (3, 3), LENGTH_UNIT)
        for name, saved in (("velocity", velocities), ("force", forces)):
            if saved:
                _add_time_group(particles, name, (n_atoms, 3), PER_ATOM[name])
        handle.create_group("observables", track_order=True)

        encoded, json_keys = _encode_parameters(parameters)
        handle.create_group("parameters", track_order=True).attrs.update(
            {
                **encoded,
                "time_step_fs": float(time_step_fs),
                "save_interval": int(save_interval),
                "model": model,
                "structure": structure,
            }
        )
        scalms = handle.create_group("scalms").attrs
        scalms.update(format_version=FORMAT_VERSION, complete=False)
        scalms["json_parameters"] = json.dumps(json_keys)
        if target_step is not None:
            scalms["target_step"] = int(target_step)
        handle.flush()
        return cls(handle, path)

    @classmethod
    def resume(cls, path: Path | str, *, after_step: int) -> TrajectoryWriter:
        """Reopen ``path`` to continue a run from MD step ``after_step``.

        Frames saved after ``after_step`` (a restart from an earlier checkpoint would repeat
        them) and any frame cut off mid-append are dropped; the file is marked incomplete.
        """
        path = Path(path)
        if not path.is_file():
            raise TrajectoryError(f"trajectory file not found: {path}")
        try:
            handle = h5py.File(path, "r+", locking=False)
        except OSError as err:
            raise TrajectoryError(f"cannot open {path} to resume it ({err})") from None
        try:
            _require_trajectory(handle, str(path))
            steps = handle[PARTICLES]["position/step"][: _consistent_frames(handle)]
            _resize_all(handle, int(np.searchsorted(steps, after_step, side="right")))
            handle["scalms"].attrs["complete"] = False
            if "failed" in handle["scalms"].attrs:  # the resumed part is watched again
                del handle["scalms"].attrs["failed"]
            handle.flush()
        except BaseException:
            handle.close()
            raise
        return cls(handle, path)

    @property
    def last_step(self) -> int | None:
        """MD step of the last frame written, None before the first."""
        return self._last_step

    @property
    def n_frames(self) -> int:
        return self._n_frames

    def append(
        self,
        *,
        step: int,
        positions: np.ndarray,
        cell: np.ndarray,
        velocities: np.ndarray | None = None,
        forces: np.ndarray | None = None,
        potential_energy: float | None = None,
        kinetic_energy: float | None = None,
        temperature_K: float | None = None,
    ) -> None:
        """Write one frame and flush it to disk.

        ``positions`` (N, 3) Å, ``cell`` (3, 3) Å, ``velocities`` (N, 3) Å/fs, ``forces``
        (N, 3) eV/Å, energies in eV. ``step`` must exceed the last frame's. The observables
        given on the first frame must be given on every frame.
        """
        step = int(step)
        self._check_room()
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"step {step} does not follow the last saved step {self._last_step}")
        per_atom = {"position": positions, "velocity": velocities, "force": forces}
        arrays = {}
        for name, value in per_atom.items():
            stored = name in self._per_atom
            if value is None and stored:
                raise ValueError(f"this trajectory saves {name} on every frame; none was given")
            if value is not None and not stored:
                raise ValueError(f"this trajectory was created without {name}; got some")
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (self._n_atoms, 3):
                    raise ValueError(f"{name} must be ({self._n_atoms}, 3), got {value.shape}")
                arrays[name] = value
        cell = np.asarray(cell, dtype=np.float64)
        if cell.shape != (3, 3):
            raise ValueError(f"cell must be (3, 3), got {cell.shape}")
        given = {
            "potential_energy": potential_energy,
            "kinetic_energy": kinetic_energy,
            "temperature": temperature_K,
        }
        given = {name: value for name, value in given.items() if value is not None}
        if not self._n_frames:
            # A file without frames (new, or resumed before its first) takes the observables
            # its first frame gives.
            for name in set(self._observables) - set(given):
                del self._handle["observables"][name]
                del self._observables[name]
            for name in set(given) - set(self._observables):
                group = _add_time_group(self._handle["observables"], name, (), OBSERVABLES[name])
                self._observables[name] = group["value"]
        elif set(given) != set(self._observables):
            raise ValueError(
                f"observables given ({sorted(given)}) differ from those saved on earlier "
                f"frames ({sorted(self._observables)})"
            )

        n = self._n_frames
        values = [(self._per_atom[name], value) for name, value in arrays.items()]
        values.append((self._edges, cell))
        values += [(self._observables[name], value) for name, value in given.items()]
        for dataset, value in values:
            dataset.resize(n + 1, axis=0)
            dataset[n] = value
        # Time and step last: a frame cut off before them is shorter there, so readers and
        # resume drop it instead of reading a frame with missing values.
        for dataset, value in ((self._time, step * self._time_step_fs), (self._step, step)):
            dataset.resize(n + 1, axis=0)
            dataset[n] = value
        self._handle.flush()
        self._n_frames = n + 1
        self._last_step = step

    def _check_room(self) -> None:
        """Raise :class:`~scalms.files.DiskFull` when the next frame may not fit on the disk."""
        import shutil

        from scalms.files import DiskFull

        free = shutil.disk_usage(self.path.parent).free
        if free < self._room_needed:
            raise DiskFull(
                f"disk full: {free / 2**20:.1f} MiB left beside {self.path}, where a frame may "
                f"need {self._room_needed / 2**20:.1f} MiB; free space and run the same command "
                "again (the frames written so far are kept)"
            )

    def mark_complete(self) -> None:
        """Record that the run reached its end, and flush: only after checking on disk that
        every expected frame is there, in order, and finite (else :class:`TrajectoryError`)."""
        self._handle.flush()
        problem = self._completeness_problem()
        if problem:
            raise TrajectoryError(f"{self.path} cannot be marked complete: {problem}")
        self._handle["scalms"].attrs["complete"] = True
        self._handle.flush()

    def _completeness_problem(self) -> str:
        n = _consistent_frames(self._handle)
        steps = self._step[:n]
        expected = _expected_steps(self._handle)
        if expected is not None and not np.array_equal(steps, expected):
            missing = np.setdiff1d(expected, steps)
            return f"it holds {n} of {len(expected)} frames" + (
                f" (steps {missing[0]} to {missing[-1]} missing)" if len(missing) else ""
            )
        datasets = [*self._per_atom.values(), self._edges, *self._observables.values()]
        for dataset in datasets:
            per_chunk = dataset.chunks[0] if dataset.chunks else n
            for start in range(0, n, per_chunk):  # chunk by chunk: memory stays bounded
                if not np.isfinite(dataset[start : start + per_chunk]).all():
                    return f"{dataset.name} holds non-finite values"
        return ""

    def mark_failed(self, reason: str) -> None:
        """Record that the run was stopped before its end and why (kept frames stay), flush."""
        self._handle["scalms"].attrs["complete"] = False
        self._handle["scalms"].attrs["failed"] = reason
        self._handle.flush()

    def close(self) -> None:
        if self._handle.id.valid:
            self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
