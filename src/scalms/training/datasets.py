"""Checks of a training's inputs, made before any trainer starts: every file readable, every
frame labelled under ``REF_energy``/``REF_forces`` (what ``scalms hpc package`` writes), and an
E0 for every element the frames hold. Each problem is one line naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase.data import atomic_numbers, chemical_symbols

from scalms.training.trained import TrainingError

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"
ISOLATED_ATOM = "IsolatedAtom"


@dataclass(frozen=True)
class DatasetSummary:
    path: Path
    role: str
    frames: int
    atoms: int
    elements: frozenset[str]
    isolated_atoms: int = 0

    def line(self) -> str:
        return (
            f"{self.role}: {self.path} ({self.frames} frames, {self.atoms} atoms, "
            f"{'-'.join(sorted(self.elements))})"
        )


def read_frames(path: Path, role: str) -> list:
    """Every frame of ``path`` (any format ASE reads), or one line why not."""
    from ase.io import read

    if not path.is_file():
        raise TrainingError(f"{role} file not found: {path}")
    try:
        frames = read(path, index=":")
    except Exception as err:  # ASE's readers raise many types; each means unreadable
        raise TrainingError(
            f"cannot read {role} file {path}: {type(err).__name__}: {err}"
        ) from None
    if not frames:
        raise TrainingError(f"{role} file {path} holds no frames")
    return frames


def check_dataset(path: Path | str, role: str, require_forces: bool = True) -> DatasetSummary:
    """The frames of a training, validation or test file, each labelled: ``REF_energy`` in its
    info and ``REF_forces`` per atom (isolated-atom frames need the energy only)."""
    path = Path(path)
    frames = read_frames(path, role)
    elements: set[str] = set()
    atoms = isolated = 0
    for index, frame in enumerate(frames):
        is_isolated = frame.info.get("config_type") == ISOLATED_ATOM
        isolated += is_isolated
        if ENERGY_KEY not in frame.info:
            raise TrainingError(
                f"{role} file {path}: frame {index} has no {ENERGY_KEY}; label it with "
                "`scalms hpc rattle` and package it with `scalms hpc package`"
            )
        if require_forces and not is_isolated and FORCES_KEY not in frame.arrays:
            raise TrainingError(
                f"{role} file {path}: frame {index} has no {FORCES_KEY} per atom; label it "
                "with `scalms hpc rattle` and package it with `scalms hpc package`"
            )
        elements.update(frame.get_chemical_symbols())
        atoms += len(frame)
    return DatasetSummary(path, role, len(frames), atoms, frozenset(elements), isolated)


def read_e0(path: Path | str) -> dict[int, float]:
    """The E0 table ``scalms hpc e0`` writes (JSON, atomic number -> eV)."""
    from scalms.files import read_json

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"E0 file not found: {path} (make it with `scalms hpc e0`)")
    raw = read_json(path, "E0 file", "make it with `scalms hpc e0`")
    if not isinstance(raw, dict):
        raise TrainingError(f"E0 file {path} is not a table of atomic number -> energy (eV)")
    table: dict[int, float] = {}
    for key, value in raw.items():
        number = atomic_numbers.get(key) if not str(key).isdigit() else int(key)
        if number is None or not isinstance(value, int | float):
            raise TrainingError(
                f"E0 file {path}: entry {key!r}: {value!r} is not atomic number -> energy (eV)"
            )
        table[number] = float(value)
    return table


def check_e0(path: Path | str, elements: frozenset[str] | set[str]) -> dict[int, float]:
    """The E0 table, refused when an element of the data has no entry."""
    table = read_e0(path)
    missing = sorted(e for e in elements if atomic_numbers[e] not in table)
    if missing:
        have = ", ".join(chemical_symbols[z] for z in sorted(table)) or "none"
        raise TrainingError(
            f"E0 file {path} has no energy for {', '.join(missing)} (it has {have}); "
            f"compute it with `scalms hpc e0 -e {' -e '.join(missing)} --calculator ...`"
        )
    return table
