"""Reference data of the accuracy benchmark: frames with energies and forces from DFT (or any
method), read from any file ASE reads, checked before a model spends time on them.

Where the numbers are looked for, in order (``energy_key``/``forces_key`` name one place instead):

- the frame's calculator results, as ASE reads ``energy=`` and ``forces`` from extended XYZ
  written with results (VASP, CP2K and ASE's own output files land here too);
- ``info``/``arrays`` entries named ``REF_energy``/``REF_forces`` (the MACE training
  convention), ``DFT_energy``/``DFT_forces``, ``dft_energy``/``dft_forces``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.io.structures import label_sources, read_frames

ENERGY_KEYS = ("REF_energy", "DFT_energy", "dft_energy")
FORCES_KEYS = ("REF_forces", "DFT_forces", "dft_forces")
CALCULATOR = "calculator"
"""Where a value came from when it was the frame's calculator results."""


class ReferenceError(ScalmsError):
    """Reference frames that cannot serve a benchmark (no energies or forces, bad shapes)."""


@dataclass
class ReferenceStructure:
    """The frames of one reference file with their energies (eV) and forces (eV/Å)."""

    label: str
    source: Path
    frames: list[Atoms]
    energy: np.ndarray
    """(n_frames,) eV."""
    forces: list[np.ndarray]
    """One (n_atoms, 3) array per frame, eV/Å."""
    energy_key: str
    forces_key: str


def _calculator_result(atoms: Atoms, name: str):
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    return results.get(name)


def _find_energy(atoms: Atoms, key: str | None) -> tuple[float | None, str]:
    if key is not None:
        if key == "energy" and _calculator_result(atoms, "energy") is not None:
            return float(_calculator_result(atoms, "energy")), CALCULATOR
        value = atoms.info.get(key)
        return (None if value is None else float(value)), key
    value = _calculator_result(atoms, "energy")
    if value is not None:
        return float(value), CALCULATOR
    for name in ENERGY_KEYS:
        if name in atoms.info:
            return float(atoms.info[name]), name
    return None, ""


def _find_forces(atoms: Atoms, key: str | None) -> tuple[np.ndarray | None, str]:
    if key is not None:
        if key == "forces" and _calculator_result(atoms, "forces") is not None:
            return np.asarray(_calculator_result(atoms, "forces"), dtype=float), CALCULATOR
        value = atoms.arrays.get(key)
        return (None if value is None else np.asarray(value, dtype=float)), key
    value = _calculator_result(atoms, "forces")
    if value is not None:
        return np.asarray(value, dtype=float), CALCULATOR
    for name in FORCES_KEYS:
        if name in atoms.arrays:
            return np.asarray(atoms.arrays[name], dtype=float), name
    return None, ""


def _frames_list(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:8])
    return shown + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")


def read_structure(
    label: str, path: Path, energy_key: str | None = None, forces_key: str | None = None
) -> ReferenceStructure:
    """Read every frame of ``path`` with its reference energy and forces.

    Raises :class:`ReferenceError` naming the frames that lack either (or whose forces have the
    wrong shape), and where it looked.
    """
    frames = read_frames(path)
    energies, forces, energy_keys, forces_keys = [], [], set(), set()
    missing_energy, missing_forces, bad_shape = [], [], []
    for index, atoms in enumerate(frames):
        energy, e_key = _find_energy(atoms, energy_key)
        force, f_key = _find_forces(atoms, forces_key)
        if energy is None or not np.isfinite(energy):
            missing_energy.append(index)
        if force is None:
            missing_forces.append(index)
        elif force.shape != (len(atoms), 3) or not np.isfinite(force).all():
            bad_shape.append(index)
        energies.append(energy)
        forces.append(force)
        energy_keys.add(e_key)
        forces_keys.add(f_key)
    problems = []
    looked_energy = energy_key or f"the calculator's energy, {', '.join(ENERGY_KEYS)}"
    looked_forces = forces_key or f"the calculator's forces, {', '.join(FORCES_KEYS)}"
    if missing_energy:
        problems.append(
            f"{path}: frame(s) {_frames_list(missing_energy)} of {len(frames)} have no reference "
            f"energy (looked for {looked_energy}); name it with --energy-key"
        )
    if missing_forces:
        problems.append(
            f"{path}: frame(s) {_frames_list(missing_forces)} of {len(frames)} have no reference "
            f"forces (looked for {looked_forces}); name them with --forces-key"
        )
    if bad_shape:
        problems.append(
            f"{path}: frame(s) {_frames_list(bad_shape)} have forces that are not finite "
            "(n_atoms, 3) arrays"
        )
    if problems:
        raise ReferenceError("\n".join(problems))
    if len(energy_keys) > 1 or len(forces_keys) > 1:
        found = ", ".join(sorted(energy_keys | forces_keys))
        raise ReferenceError(
            f"{path}: frames keep their reference in different places ({found}); "
            "name one with --energy-key and --forces-key"
        )
    return ReferenceStructure(
        label=label,
        source=Path(path),
        frames=frames,
        energy=np.array(energies, dtype=float),
        forces=forces,
        energy_key=energy_keys.pop(),
        forces_key=forces_keys.pop(),
    )


def read_reference(
    paths: list[Path], energy_key: str | None = None, forces_key: str | None = None
) -> list[ReferenceStructure]:
    """Every reference file, labelled as ``scalms static`` labels structures (file stems).

    All problems of all files are reported together.
    """
    if not paths:
        raise ReferenceError("no reference files given")
    structures, problems = [], []
    for source in label_sources(paths):
        try:
            structures.append(read_structure(source.label, source.path, energy_key, forces_key))
        except ScalmsError as err:
            problems.append(str(err))
    if problems:
        raise ReferenceError("\n".join(problems))
    return structures
