"""The consolidated results file of an MD working directory, which analyses and plots read.

Layout::

    /                       attrs: format="scalms-md-results", format_version, method
                            ("links" or "repack"), complete (every run complete when written),
                            runs (JSON list of [model, structure])
    /<model>/<structure>    a trajectory (see :mod:`scalms.io.trajectory`): an external link to
                            the root of the run's own file, or a full copy of it

With links the results file is tiny and always shows the runs' current frames; a repacked file
stands alone (to copy off a cluster, or after the run folders are deleted). Every reader here
also takes a single trajectory file, so commands accept either.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import h5py

from scalms.files import atomic_path
from scalms.io.export import check_targets
from scalms.io.names import check_name
from scalms.io.trajectory import (
    PARTICLES,
    TrajectoryError,
    group_info,
    is_hdf5,
    is_trajectory,
    open_hdf5,
    read_group,
    reading,
    time_groups,
    trajectory_info,
)
from scalms.trajectory import Trajectory

if TYPE_CHECKING:
    from scalms.io.foreign import FrameTiming

FORMAT = "scalms-md-results"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunRef:
    """One run a results (or trajectory) file holds, as it stands when read."""

    model: str
    structure: str
    complete: bool
    n_frames: int


def _check_name(name: str, what: str) -> None:
    """Refuse a run name that cannot name an HDF5 group and a file or folder (``check_name``)."""
    check_name(name, what)


def _write_atomically(out: Path, fill) -> Path:
    """Write ``out`` through a temporary file in the same folder, replaced in one step."""
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True, locking=False) as handle:
        fill(handle)
    return Path(out)


def consolidate(
    runs: dict[tuple[str, str], Path],
    out: Path,
    *,
    method: Literal["links", "repack"] = "links",
) -> Path:
    """Write the results file ``out`` holding each ``(model, structure)`` run's trajectory file.

    ``method="links"`` stores external links (relative to ``out``'s folder, so the folder can
    move as a whole); ``"repack"`` copies every trajectory in. An existing ``out`` is replaced
    atomically: readers see the old file or the new one, never half of one.
    """
    if method not in ("links", "repack"):
        raise ValueError(f"method must be 'links' or 'repack', not {method!r}")
    out = Path(out)
    infos = {}
    for (model, structure), path in runs.items():
        _check_name(model, "model")
        _check_name(structure, "structure")
        infos[model, structure] = trajectory_info(path)

    def fill(handle: h5py.File) -> None:
        handle.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            method=method,
            complete=all(info.complete for info in infos.values()),
            runs=json.dumps([list(key) for key in runs]),
        )
        for (model, structure), path in runs.items():
            group = handle.require_group(model)
            if method == "links":
                target = Path(path).resolve()
                try:
                    name = os.path.relpath(target, out.resolve().parent)
                except ValueError:  # another drive on Windows: no relative path exists
                    name = str(target)
                group[structure] = h5py.ExternalLink(name, "/")
            else:
                with open_hdf5(path) as source:
                    # One copy of the whole root keeps step/time shared between its groups.
                    source.copy(source["/"], group, name=structure)
                # Stored under these names now, whatever the run was first called.
                group[structure]["parameters"].attrs.update(model=model, structure=structure)

    return _write_atomically(out, fill)


def _run_root(handle: h5py.File, path: Path, model: str, structure: str) -> h5py.Group:
    """The trajectory of run (model, structure) in the results file ``handle``."""
    if model not in handle or structure not in handle[model]:
        known = ", ".join(f"{m}/{s}" for m in handle for s in handle[m]) or "none"
        raise TrajectoryError(f"{path} holds no run {model}/{structure} (runs: {known})")
    link = handle[model].get(structure, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = Path(link.filename)
        if not target.is_absolute():
            target = path.parent / target
        if not target.is_file():
            raise TrajectoryError(
                f"run {model}/{structure} of {path} links to {target}, which does not exist; "
                "restore it, or repack the results file while it is there"
            )
        try:
            root = handle[model][structure]
        except (KeyError, OSError) as err:
            raise TrajectoryError(
                f"run {model}/{structure} of {path}: cannot open {target} ({err})"
            ) from None
    else:
        root = handle[model][structure]
    if not is_trajectory(root):
        raise TrajectoryError(f"run {model}/{structure} of {path} is not a scalms trajectory")
    return root


class RunSet:
    """The runs of a results file or of a single trajectory file, read on demand."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        with open_hdf5(self.path) as handle, reading(self.path):
            if handle.attrs.get("format") == FORMAT:
                self.kind = "results"
                self.runs = [
                    self._ref(model, structure, _run_root(handle, self.path, model, structure))
                    for model in handle
                    for structure in handle[model]
                ]
            elif is_trajectory(handle):
                self.kind = "trajectory"
                info = group_info(handle)
                self.runs = [RunRef(info.model, info.structure, info.complete, info.n_frames)]
            else:
                raise TrajectoryError(
                    f"{self.path} is neither a scalms results file nor a scalms trajectory"
                )
        for ref in self.runs:
            check_name(ref.model, "model", self.path)
            check_name(ref.structure, "structure", self.path)

    @staticmethod
    def _ref(model: str, structure: str, root: h5py.Group) -> RunRef:
        info = group_info(root)
        return RunRef(model, structure, info.complete, info.n_frames)

    def select(
        self, models: list[str] | None = None, structures: list[str] | None = None
    ) -> list[RunRef]:
        """The runs of the given models and structures (None: all); an error if none match."""
        picked = [
            ref
            for ref in self.runs
            if (not models or ref.model in models)
            and (not structures or ref.structure in structures)
        ]
        if not picked:
            known = ", ".join(f"{r.model}/{r.structure}" for r in self.runs)
            wanted = f"models {models or 'any'}, structures {structures or 'any'}"
            raise TrajectoryError(f"no run of {self.path} matches {wanted} (runs: {known})")
        return picked

    def read(self, ref: RunRef, frames: slice | None = None) -> Trajectory:
        """The frames ``frames`` (default: all) of run ``ref``."""
        return read_run(self.path, ref.model, ref.structure, frames)

    def check_timing(self, timing: FrameTiming) -> None:
        """Refuse a ``timing`` that contradicts the time step and save interval stored with the
        runs (scalms files carry their own; options given for other files must agree)."""
        with open_hdf5(self.path) as handle, reading(self.path):
            for ref in self.runs:
                root = handle if self.kind == "trajectory" else handle[ref.model][ref.structure]
                stored = root["parameters"].attrs
                dt, interval = float(stored["time_step_fs"]), int(stored["save_interval"])
                for option, given, value in (
                    ("--time-step-fs", timing.time_step_fs, dt),
                    ("--save-interval", timing.save_interval, interval),
                    ("--frame-interval-fs", timing.frame_interval_fs, dt * interval),
                ):
                    if given is not None and not math.isclose(given, value, rel_tol=1e-6):
                        raise TrajectoryError(
                            f"{option} {given:g} contradicts run {ref.model}/{ref.structure} of "
                            f"{self.path}, which was saved with {value:g}; leave {option} out"
                        )

    def __iter__(self) -> Iterator[RunRef]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)


class ForeignRunSet(RunSet):
    """The one run of a trajectory file another code wrote (any format ASE reads), in memory."""

    kind = "trajectory (read through ASE)"

    def __init__(self, path: Path | str, timing: FrameTiming | None = None):
        from scalms.io.foreign import read_foreign

        self.path = Path(path)
        self.trajectory = read_foreign(self.path, timing)
        traj = self.trajectory
        check_name(traj.model, "model", self.path)
        check_name(traj.structure, "structure", self.path)
        self.runs = [RunRef(traj.model, traj.structure, traj.complete, traj.n_frames)]

    def read(self, ref: RunRef, frames: slice | None = None) -> Trajectory:
        if ref not in self.runs:
            raise TrajectoryError(f"{self.path} holds run {self.runs[0]}, not {ref}")
        return self.trajectory if frames is None else self.trajectory.select(frames)


def open_runs(
    path: Path | str, timing: FrameTiming | None = None, *, need_time: str | None = None
) -> RunSet:
    """The runs of ``path``: a results file, a scalms trajectory, or a trajectory file of another
    code in any format ASE reads (one run, read whole; ``timing`` says what its file does not).

    ``need_time`` names what needs the time between frames (e.g. "the MSD"): a run whose time
    is unknown is then refused with what to give.
    """
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"file not found: {path}")
    if is_hdf5(path):
        runs = RunSet(path)
        if timing is not None and timing.given():
            runs.check_timing(timing)
        return runs
    runs = ForeignRunSet(path, timing)
    if need_time and not runs.trajectory.has_time:
        raise TrajectoryError(
            f"{path} does not say how much time lies between its frames, which {need_time} "
            "needs: give --time-step-fs (and --save-interval unless the file numbers its steps), "
            "or --frame-interval-fs"
        )
    return runs


def list_runs(path: Path | str) -> list[RunRef]:
    """Model, structure, completeness and frame count of every run in ``path``."""
    return open_runs(path).runs


def read_run(
    path: Path | str, model: str, structure: str, frames: slice | None = None
) -> Trajectory:
    """The frames ``frames`` of run (model, structure) from a results or trajectory file.

    The trajectory carries the names it is stored under in a results file.
    """
    path = Path(path)
    with open_hdf5(path) as handle, reading(path):
        if handle.attrs.get("format") == FORMAT:
            traj = read_group(_run_root(handle, path, model, structure), frames)
            return replace(traj, model=model, structure=structure)
        if not is_trajectory(handle):
            raise TrajectoryError(f"{path} is neither a scalms results file nor a trajectory")
        info = group_info(handle)
        if (info.model, info.structure) != (model, structure):
            raise TrajectoryError(
                f"{path} holds run {info.model}/{info.structure}, not {model}/{structure}"
            )
        return read_group(handle, frames)


def iter_runs(path: Path | str, frames: slice | None = None) -> Iterator[Trajectory]:
    """Each run of ``path`` in turn (one in memory at a time)."""
    runs = open_runs(path)
    for ref in runs:
        yield runs.read(ref, frames)


def concat(
    inputs: list[Path],
    out: Path,
    *,
    model: str | None = None,
    structure_names: list[str] | None = None,
) -> Path:
    """Repack the trajectory files ``inputs`` into one results file ``out``.

    Runs are named from each file's parameters, or by ``model`` (for every file) and
    ``structure_names`` (one per file, in order) when given.
    """
    if structure_names is not None and len(structure_names) != len(inputs):
        raise TrajectoryError(
            f"{len(structure_names)} structure names given for {len(inputs)} input files"
        )
    runs: dict[tuple[str, str], Path] = {}
    for i, path in enumerate(inputs):
        info = trajectory_info(path)
        key = (model or info.model, structure_names[i] if structure_names else info.structure)
        if key in runs:
            raise TrajectoryError(
                f"{runs[key]} and {path} are both run {key[0]}/{key[1]}; "
                "name them with --model / --structure-name"
            )
        runs[key] = Path(path)
    return consolidate(runs, out, method="repack")


def _share_step_time(root: h5py.Group) -> None:
    """Make every time-dependent group's step and time hard links to the position's again.

    Copying a trajectory's groups one by one duplicates the shared datasets; a writer resuming
    the file appends to the position's only, so the others must be the same datasets.
    """
    position = root[PARTICLES]["position"]
    for group in time_groups(root):
        for name in ("step", "time"):
            if group[name] != position[name]:
                del group[name]
                group[name] = position[name]


def split(
    results: Path, out_dir: Path, *, model: str | None = None, overwrite: bool = False
) -> list[Path]:
    """Write each run of ``results`` (only ``model``'s when given) to its own trajectory file.

    Files go to ``<out_dir>/<model>/<structure>.h5md``; an existing one is an error unless
    ``overwrite``. Returns the files written.
    """
    results, out_dir = Path(results), Path(out_dir)
    runs = open_runs(results)
    if runs.kind != "results":
        raise TrajectoryError(f"{results} is a single trajectory, not a results file to split")
    refs = runs.select([model] if model else None)
    targets = {ref: out_dir / ref.model / f"{ref.structure}.h5md" for ref in refs}
    check_targets(list(targets.values()), overwrite=overwrite)
    # All or nothing: every file is written beside its target first, then all are renamed.
    with open_hdf5(results) as handle, reading(results), ExitStack() as stack:
        for ref, target in targets.items():
            root = _run_root(handle, results, ref.model, ref.structure)
            tmp = stack.enter_context(atomic_path(target))
            with h5py.File(tmp, "w", track_order=True, locking=False) as dest:
                dest.attrs.update(dict(root.attrs))
                for name in root:
                    root.copy(root[name], dest, name=name)
                _share_step_time(dest)
    return list(targets.values())
