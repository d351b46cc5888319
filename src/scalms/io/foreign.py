"""Trajectories other MD codes wrote, read through ASE: extended XYZ, ASE .traj, LAMMPS text dumps,
VASP XDATCAR and OUTCAR, and any other format ASE reads with several frames.

Such files seldom say how much time lies between their frames. What they carry is used: the
``step`` and ``time_fs`` of each frame in an extended XYZ comment line (scalms's own export writes
both), the step of each frame of a LAMMPS dump, VASP's POTIM in an OUTCAR (which holds every ionic
step). The user gives the rest as a :class:`FrameTiming`; where the file and the user both give a
value they must agree. A run whose time stays unknown still serves the analyses that need none
(the PDF); the others refuse it, saying what to give.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalms.errors import ScalmsError
from scalms.trajectory import Trajectory

UNKNOWN_MODEL = "unknown"
"""Model name of a run read from a file that does not say which model made it."""
_POTIM = re.compile(rb"POTIM\s*=\s*([-+0-9.eE]+)")
_REL_TOL = 1e-6


class ForeignTrajectoryError(ScalmsError):
    """A trajectory file of another code cannot be read, or its time cannot be known."""


@dataclass(frozen=True)
class FrameTiming:
    """What the user says about time in a trajectory file; None where they say nothing.

    ``time_step_fs``: the MD time step, fs. ``save_interval``: MD steps between two saved
    frames. ``frame_interval_fs``: simulated time between two saved frames, fs.
    """

    time_step_fs: float | None = None
    save_interval: int | None = None
    frame_interval_fs: float | None = None

    def __post_init__(self) -> None:
        for name in ("time_step_fs", "frame_interval_fs"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ForeignTrajectoryError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.save_interval is not None and self.save_interval < 1:
            raise ForeignTrajectoryError(
                f"--save-interval must be at least 1 step, got {self.save_interval}"
            )

    def given(self) -> bool:
        return any(
            v is not None for v in (self.time_step_fs, self.save_interval, self.frame_interval_fs)
        )


def read_foreign(
    path: Path | str,
    timing: FrameTiming | None = None,
    *,
    model: str | None = None,
    structure: str | None = None,
) -> Trajectory:
    """Every frame of the trajectory file ``path`` (any format ASE reads) as a Trajectory.

    Every frame must hold the same atoms in the same order. Velocities, forces and energies are
    kept where every frame has them. The time between frames comes from the file and ``timing``
    (see the module docstring); when neither gives it, ``time_step_fs`` is NaN and
    ``Trajectory.has_time`` False. The run is named ``model`` (default: "unknown") and
    ``structure`` (default: the file's stem).
    """
    import ase.io  # ase.io pulls in every format module: only here, when a file needs it
    from ase.units import fs

    path = Path(path)
    if not path.is_file():
        raise ForeignTrajectoryError(f"file not found: {path}")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:  # ASE raises many types for files it cannot parse
        raise ForeignTrajectoryError(
            f"cannot read {path} as a trajectory ({type(err).__name__}: {err}); give a scalms "
            "H5MD/results file or a format ASE reads (extended XYZ, .traj, LAMMPS dump, "
            "XDATCAR, OUTCAR)"
        ) from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames or len(frames[0]) == 0:
        raise ForeignTrajectoryError(f"{path} holds no atoms")
    first = frames[0]
    for i, atoms in enumerate(frames):
        if len(atoms) != len(first) or not np.array_equal(atoms.numbers, first.numbers):
            raise ForeignTrajectoryError(
                f"{path}: frame {i} holds other atoms than frame 0 ({len(atoms)} against "
                f"{len(first)}, or another order); a trajectory keeps its atoms"
            )
    positions = np.array([atoms.positions for atoms in frames], dtype=np.float64)
    if not np.isfinite(positions).all():
        bad = int(np.flatnonzero(~np.isfinite(positions).all(axis=(1, 2)))[0])
        raise ForeignTrajectoryError(f"{path}: frame {bad} holds a non-finite position")

    velocities = None
    if all(atoms.has("momenta") for atoms in frames):
        # ASE velocities are Å per ASE time unit; a Trajectory's are Å/fs.
        velocities = np.array([atoms.get_velocities() * fs for atoms in frames])
    forces = _calculated(frames, "forces")
    energy = _calculated(frames, "energy")
    steps = _info_series(frames, ("step", "timestep"), int)
    times = _info_series(frames, ("time_fs",), float)
    time_step_fs, save_interval, steps = _resolve_time(
        path, len(frames), steps, times, _file_time_step(path), timing or FrameTiming()
    )
    if times is None:
        times = steps * time_step_fs  # NaN throughout when the time step is unknown
    return Trajectory(
        positions=positions,
        numbers=first.numbers.astype(int),
        masses=first.get_masses().astype(float),
        cell=np.array([atoms.cell.array for atoms in frames], dtype=np.float64),
        pbc=np.array(first.pbc, dtype=bool),
        step=steps,
        time_fs=np.asarray(times, dtype=np.float64),
        time_step_fs=time_step_fs,
        save_interval=save_interval,
        velocities=velocities,
        forces=None if forces is None else np.asarray(forces, dtype=np.float64),
        potential_energy=None if energy is None else np.asarray(energy, dtype=np.float64),
        model=model or str(first.info.get("model", UNKNOWN_MODEL)),
        structure=structure or str(first.info.get("structure", path.stem)),
        complete=True,
        attrs={"source": str(path)},
    )


def _calculated(frames, name: str) -> list | None:
    """A calculated property of every frame (from the file's calculator results), else None."""
    values = []
    for atoms in frames:
        results = atoms.calc.results if atoms.calc is not None else {}
        if results.get(name) is None:
            return None
        values.append(results[name])
    return values


def _info_series(frames, keys: tuple[str, ...], kind) -> np.ndarray | None:
    """The per-frame value of the first of ``keys`` that every frame's info carries."""
    for key in keys:
        if all(key in atoms.info for atoms in frames):
            try:
                return np.array([kind(atoms.info[key]) for atoms in frames])
            except (TypeError, ValueError):
                return None
    return None


def _file_time_step(path: Path) -> float | None:
    """The MD time step a VASP OUTCAR states (POTIM, fs), else None."""
    if "OUTCAR" not in path.name:
        return None
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)  # POTIM is in the echo of INCAR at the top
    match = _POTIM.search(head)
    return float(match.group(1)) if match else None


def _uniform_step(values: np.ndarray, what: str, path: Path) -> float | None:
    """The constant difference between successive ``values``, None for a single frame."""
    if len(values) < 2:
        return None
    steps = np.diff(values.astype(np.float64))
    if not np.allclose(steps, steps[0], rtol=_REL_TOL, atol=0) or steps[0] <= 0:
        raise ForeignTrajectoryError(
            f"{path}: the {what} of the frames do not increase evenly "
            f"({values[:4].tolist()} ...); analyses need evenly spaced frames"
        )
    return float(steps[0])


def _resolve_time(
    path: Path,
    n_frames: int,
    steps: np.ndarray | None,
    times: np.ndarray | None,
    file_time_step: float | None,
    timing: FrameTiming,
) -> tuple[float, int, np.ndarray]:
    """(time step fs, MD steps between frames, MD step of each frame) from the file and the user.

    The time step is NaN when nothing gives it; the steps then count frames.
    """
    file_interval = _uniform_step(steps, "step numbers", path) if steps is not None else None
    file_frame_fs = _uniform_step(times, "times", path) if times is not None else None
    if file_interval is None and file_time_step is not None:
        file_interval = 1.0  # an OUTCAR holds every ionic step
    if file_interval is not None and file_interval != round(file_interval):
        raise ForeignTrajectoryError(f"{path}: the frames are {file_interval} steps apart")

    def pick(what: str, option: str, given, from_file):
        if (
            given is not None
            and from_file is not None
            and not math.isclose(given, from_file, rel_tol=_REL_TOL)
        ):
            raise ForeignTrajectoryError(
                f"{option} {given:g} contradicts {path}, whose frames say {what} = {from_file:g}; "
                f"leave {option} out or correct it"
            )
        return given if given is not None else from_file

    dt = pick("the time step (fs)", "--time-step-fs", timing.time_step_fs, file_time_step)
    interval = pick("steps between frames", "--save-interval", timing.save_interval, file_interval)
    frame_fs = pick(
        "the time between frames (fs)",
        "--frame-interval-fs",
        timing.frame_interval_fs,
        file_frame_fs,
    )
    if dt is None and frame_fs is not None:
        dt = frame_fs / (interval or 1)
    if interval is None and dt is not None and frame_fs is not None:
        interval = frame_fs / dt
        if not math.isclose(interval, round(interval), rel_tol=_REL_TOL) or round(interval) < 1:
            raise ForeignTrajectoryError(
                f"{path}: {frame_fs:g} fs between frames is not a whole number of "
                f"{dt:g} fs time steps"
            )
    if dt is not None and interval is None:
        raise ForeignTrajectoryError(
            f"{path} does not say how many steps lie between its frames: give --save-interval "
            "(MD steps between frames) or --frame-interval-fs with --time-step-fs"
        )
    if (
        dt is not None
        and frame_fs is not None
        and not math.isclose(frame_fs, dt * interval, rel_tol=_REL_TOL)
    ):
        raise ForeignTrajectoryError(
            f"{path}: {frame_fs:g} fs between frames is not {interval:g} steps of {dt:g} fs"
        )
    interval = round(interval) if interval is not None else 1
    if steps is None:
        steps = np.arange(n_frames, dtype=np.int64) * interval
    steps = np.asarray(steps, dtype=np.int64)
    return (float(dt) if dt is not None else math.nan), interval, steps


def import_trajectory(
    source: Path | str,
    out: Path | str,
    timing: FrameTiming | None = None,
    *,
    model: str | None = None,
    structure: str | None = None,
    overwrite: bool = False,
) -> Trajectory:
    """Write the trajectory file ``source`` (any format ASE reads) as a scalms H5MD file ``out``.

    The time between frames must be known (from the file or ``timing``): an H5MD file states it.
    ``out`` is written whole or not at all; an existing one is replaced only with ``overwrite``.
    Returns the trajectory written.
    """
    from scalms.files import atomic_path
    from scalms.io.export import check_targets
    from scalms.io.names import check_name
    from scalms.io.trajectory import TrajectoryWriter

    out = Path(out)
    check_targets([out], overwrite=overwrite)
    traj = read_foreign(source, timing, model=model, structure=structure)
    check_name(traj.model, "model", source)
    check_name(traj.structure, "structure", source)
    if not traj.has_time:
        raise ForeignTrajectoryError(
            f"{source} does not say how much time lies between its frames, which an H5MD file "
            "records: give --time-step-fs (and --save-interval unless the file numbers its "
            "steps), or --frame-interval-fs"
        )
    with atomic_path(out) as tmp:
        writer = TrajectoryWriter.create(
            tmp,
            numbers=traj.numbers,
            masses=traj.masses,
            pbc=traj.pbc,
            time_step_fs=traj.time_step_fs,
            save_interval=traj.save_interval,
            model=traj.model,
            structure=traj.structure,
            parameters={"imported_from": str(Path(source).resolve())},
            velocities=traj.velocities is not None,
            forces=traj.forces is not None,
        )
        with writer:
            for i in range(traj.n_frames):
                writer.append(
                    step=int(traj.step[i]),
                    positions=traj.positions[i],
                    cell=traj.cell[i],
                    velocities=None if traj.velocities is None else traj.velocities[i],
                    forces=None if traj.forces is None else traj.forces[i],
                    potential_energy=(
                        None if traj.potential_energy is None else float(traj.potential_energy[i])
                    ),
                )
            writer.mark_complete()
    return traj
