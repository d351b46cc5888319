"""Trajectories out to other tools: extended XYZ for OVITO and ASE, a Universe for MDAnalysis."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from scalms.errors import ScalmsError
from scalms.files import atomic_path
from scalms.trajectory import Trajectory


def write_extxyz(
    traj: Trajectory, path: Path | str, *, stride: int = 1, frames: slice | None = None
) -> Path:
    """Write the frames ``frames`` (default: all) of ``traj``, every ``stride``-th, to ``path``.

    Each frame carries the cell, pbc, masses, momenta (ASE units, from the velocities),
    forces (eV/Å) and energy (eV) where saved, and ``step`` and ``time_fs`` in its comment
    line (``time_fs`` only when the time is known), so OVITO and ``ase.io.read(path, ":")`` get
    them back. Frames are written one at a time (a long run never sits in memory as Atoms) to a
    temporary file that replaces ``path`` when done.
    """
    import ase.io  # ase.io pulls in many format modules; keep it out of start-up

    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    picked = range(traj.n_frames)[frames if frames is not None else slice(None)][::stride]
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        for i in picked:
            atoms = traj.atoms(i)
            atoms.info["step"] = int(traj.step[i])
            if traj.has_time:
                atoms.info["time_fs"] = float(traj.time_fs[i])
            ase.io.write(handle, atoms, format="extxyz")
    return Path(path)


def export_runs(runs, targets: dict, *, stride: int = 1) -> dict:
    """Write each run ``ref`` of ``runs`` (a :class:`scalms.io.results.RunSet`) to
    ``targets[ref]`` as extended XYZ, all or nothing: every file is written to a temporary file
    first, and the targets are replaced only once all were written. Returns frames per target.
    """
    written = {}
    with ExitStack() as stack:
        for ref, target in targets.items():
            traj = runs.read(ref)
            tmp = stack.enter_context(atomic_path(target))
            write_extxyz(traj, tmp, stride=stride)
            written[target] = len(range(0, traj.n_frames, stride))
    return written


def check_targets(targets: list[Path], *, overwrite: bool) -> None:
    """Refuse, before anything is written, output files that exist (unless ``overwrite``) or that
    cannot be written because a folder is a file there or the file is a folder."""
    existing = []
    for target in targets:
        target = Path(target)
        for parent in reversed(target.parents):
            if parent.exists() and not parent.is_dir():
                raise ScalmsError(f"cannot write {target}: {parent} is a file, not a folder")
        if target.is_dir():
            raise ScalmsError(f"cannot write {target}: a folder of that name exists")
        if target.exists():
            existing.append(str(target))
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (
            f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        )
        raise ScalmsError(f"{shown} exist(s); pass --overwrite to replace")


def to_mdanalysis(traj: Trajectory):
    """An MDAnalysis Universe holding ``traj`` in memory, in MDAnalysis units (Å, ps, Å/ps,
    kJ/(mol Å)).

    MDAnalysis's own H5MD reader opens a scalms trajectory only without forces, as it knows no
    eV-based force unit; this works for every run. Non-periodic runs get no box, so MDAnalysis
    does not wrap distances across the vacuum cell.
    """
    import MDAnalysis as mda
    from ase.geometry import cell_to_cellpar
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.units import convert

    universe = mda.Universe.empty(traj.n_atoms, trajectory=False)
    universe.add_TopologyAttr("names", traj.symbols)
    universe.add_TopologyAttr("types", traj.symbols)
    universe.add_TopologyAttr("elements", traj.symbols)
    universe.add_TopologyAttr("masses", traj.masses)
    dimensions = np.array([cell_to_cellpar(cell) for cell in traj.cell]) if traj.pbc.any() else None
    per_atom = {}
    if traj.velocities is not None:
        per_atom["velocities"] = traj.velocities * 1000.0  # Å/fs -> Å/ps
    if traj.forces is not None:
        per_atom["forces"] = traj.forces * convert(1.0, "eV", "kJ/mol")
    universe.load_new(
        traj.positions,
        format=MemoryReader,
        dimensions=dimensions,
        dt=traj.frame_interval_fs / 1000.0,  # ps
        **per_atom,
    )
    return universe
