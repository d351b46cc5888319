"""Isolated-atom energies (E0) for MACE: one spin-polarised single point per element.

Each atom sits alone in the middle of a large non-periodic box (15 Å by default), with the
initial magnetic moment of its ground state (Hund's rule, from ASE's
``ground_state_magnetic_moments``) so a DFT code starts from the right spin. Two files come out:

- ``E0.json``: ``{"31": -0.28, ...}``, atomic number -> energy in eV, the form
  ``mace_run_train --E0s E0.json`` reads (it takes a file ending in ``.json`` whose keys are
  atomic numbers);
- ``E0.xyz``: one frame per element with ``config_type=IsolatedAtom``, ``REF_energy`` and zero
  ``REF_forces``, which MACE also reads as E0 when the frames are in its training file.

Both are rewritten atomically after each element, so a failure keeps the elements done; a rerun
skips them when the calculator and its settings match, and refuses the files otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, ground_state_magnetic_moments

from scalms.errors import ScalmsError
from scalms.hpc.labels import ENERGY_KEY, InfoValue, Label, labelled_frame

DEFAULT_BOX_A = 15.0
CONFIG_TYPE = "IsolatedAtom"
COMMAND = "scalms hpc e0"


class E0Log(Protocol):
    def line(self, text: str) -> None: ...


class _Silent:
    def line(self, text: str) -> None:
        pass


def check_elements(elements: list[str]) -> list[str]:
    """The element symbols, each once, in the order given; one line for an unknown one."""
    if not elements:
        raise ScalmsError("give at least one --element")
    unknown = [e for e in elements if e not in atomic_numbers or e == "X"]
    if unknown:
        raise ScalmsError(f"unknown element(s): {', '.join(unknown)}")
    return list(dict.fromkeys(elements))


def isolated_atom(element: str, box_A: float = DEFAULT_BOX_A) -> Atoms:
    """One atom of ``element`` in the middle of a cubic, non-periodic box of side ``box_A``."""
    if not box_A > 0:
        raise ScalmsError(f"--box-A must be positive, got {box_A}")
    atom = Atoms(element, cell=[box_A] * 3, pbc=False)
    atom.center()
    z = atomic_numbers[element]
    # ASE's table stops at Z = 103; beyond it no moment is known.
    moment = ground_state_magnetic_moments[z] if z < len(ground_state_magnetic_moments) else 0.0
    atom.set_initial_magnetic_moments([moment])
    return atom


def e0_frame(atom: Atoms, label: Label, calculator: str, settings: dict, box_A: float) -> Atoms:
    """The stored frame: energy as computed, forces zero (an isolated atom feels none; what the
    code returned is kept as ``computed_force_eV_per_A``, a check of the box and the grid)."""
    computed = float(np.linalg.norm(label.forces_eV_per_A))
    zero = replace(label, forces_eV_per_A=np.zeros((1, 3)))
    return labelled_frame(
        atom,
        zero,
        calculator,
        settings,
        CONFIG_TYPE,
        e0_box_A=float(box_A),
        computed_force_eV_per_A=computed,
    )


def e0_table(frames: list[Atoms]) -> dict[str, float]:
    """``{"31": E0}`` from the frames, sorted by atomic number (the JSON MACE reads)."""
    table = {int(a.numbers[0]): float(a.info[ENERGY_KEY]) for a in frames}
    return {str(z): table[z] for z in sorted(table)}


def frames_path_for(out: Path) -> Path:
    return out.with_suffix(".xyz")


def _identity(calculator: str, settings: dict[str, InfoValue], box_A: float) -> dict:
    identity = {"calc_name": calculator, "e0_box_A": float(box_A)}
    identity.update({f"calc_{k}": v for k, v in settings.items()})
    return identity


def read_existing(frames_out: Path, identity: dict) -> list[Atoms]:
    """The frames of an earlier run into the same files, checked to come from the same
    calculator, settings and box."""
    from scalms.hpc.reference_file import read_reference

    frames = read_reference(frames_out)
    for atoms in frames:
        if atoms.info.get("config_type") != CONFIG_TYPE or len(atoms) != 1:
            raise ScalmsError(
                f"{frames_out} is not an E0 file of `{COMMAND}`: choose another --out"
            )
        for key, value in identity.items():
            stored = atoms.info.get(key)
            same = (
                np.isclose(float(stored), float(value))
                if isinstance(value, float) and isinstance(stored, int | float)
                else stored == value
            )
            if not same:
                raise ScalmsError(
                    f"{frames_out} holds {atoms.get_chemical_symbols()[0]} made with "
                    f"{key}={stored!r}, not {value!r}: choose another --out"
                )
    return frames


def write_e0(frames: list[Atoms], out: Path, frames_out: Path) -> None:
    """Both files, each atomically (they are small: rewriting is simpler than appending)."""
    import ase.io

    from scalms.files import atomic_path, atomic_write_json

    ordered = sorted(frames, key=lambda a: int(a.numbers[0]))
    with atomic_path(frames_out) as tmp:
        ase.io.write(tmp, ordered, format="extxyz")
    atomic_write_json(out, e0_table(ordered))


@dataclass
class E0Result:
    out: Path
    frames_out: Path
    energies_eV: dict[str, float]
    """Element symbol -> E0, every element in the files (computed now or before)."""
    computed: list[str]


def run_e0(
    elements: list[str],
    calculator: str,
    settings=None,
    out: Path = Path("E0.json"),
    *,
    frames_out: Path | None = None,
    box_A: float = DEFAULT_BOX_A,
    model_config: Path = Path("model_config.yaml"),
    device: str = "auto",
    timeout_s: float | None = None,
    log: E0Log | None = None,
) -> E0Result:
    """E0 of each element with ``calculator`` (a DFT code, always spin-polarised, or a model of
    ``model_config`` in its own child); see the module docstring for the files."""
    from scalms.files import WorkDirLock
    from scalms.hpc.dft import is_dft_code
    from scalms.hpc.labelling import model_entry, model_settings

    log = log or _Silent()
    elements = check_elements(elements)
    atoms = {e: isolated_atom(e, box_A) for e in elements}
    out = Path(out).absolute()
    if out.suffix != ".json":
        raise ScalmsError(f"--out {out.name}: MACE reads E0s from a file ending in .json")
    frames_out = Path(frames_out).absolute() if frames_out else frames_path_for(out)
    workdir = out.parent / f"{out.stem}_runs"
    if is_dft_code(calculator):
        from scalms.hpc.dft import make_dft_labeller
        from scalms.hpc.dft.settings import DFTSettings

        calculator = calculator.lower()
        settings = replace(settings or DFTSettings(), spin=True)  # E0 is spin-polarised
        if settings.workdir == DFTSettings().workdir:
            settings = replace(settings, workdir=workdir / "dft")
        labeller = make_dft_labeller(calculator, settings)
        for atom in atoms.values():
            labeller.check(atom)
        described = labeller.describe()
    else:
        labeller = None
        entry = model_entry(calculator, model_config, device)
        described = model_settings(entry)
    identity = _identity(calculator, described, box_A)
    existing = read_existing(frames_out, identity)
    have = {a.get_chemical_symbols()[0] for a in existing}
    todo = [e for e in elements if e not in have]
    frames = list(existing)
    for e in elements:
        if e in have:
            log.line(f"{e}: kept from {frames_out.name}")
    with WorkDirLock(workdir, COMMAND):
        if labeller is not None:
            try:
                for element in todo:
                    label = labeller.label(atoms[element])
                    frames.append(e0_frame(atoms[element], label, calculator, described, box_A))
                    write_e0(frames, out, frames_out)
                    log.line(_line(element, label))
            finally:
                labeller.close()
        elif todo:
            frames += _model_e0(
                todo, entry, atoms, described, box_A, workdir, device, timeout_s, log
            )
        if not todo or labeller is None:
            write_e0(frames, out, frames_out)
    energies = {a.get_chemical_symbols()[0]: float(a.info[ENERGY_KEY]) for a in frames}
    return E0Result(out, frames_out, energies, todo)


def _line(element: str, label: Label) -> str:
    steps = f", {label.scf_steps} SCF steps" if label.scf_steps is not None else ""
    return f"{element}: E0 {label.energy_eV:.6f} eV{steps}, {label.wall_s:.1f} s"


class _ChildLines:
    """Reporter for the model's child: its status lines go to the log."""

    def __init__(self, log: E0Log):
        self.log = log

    def start(self, model: str) -> None:
        pass

    def event(self, model: str, event: dict) -> None:
        if event.get("event") == "status":
            self.log.line(str(event.get("message", "")))

    def finish(self, model: str, outcome) -> None:
        pass


def _model_e0(elements, entry, atoms, settings, box_A, workdir, device, timeout_s, log):
    """Label the atoms in the model's child; the parent writes the files."""
    from scalms.files import read_json
    from scalms.hpc.labelling import run_model_child
    from scalms.workers.task import Task

    params = {"elements": elements, "box_A": box_A, "settings": settings}

    def make_task(entry, model_dir: Path) -> Task:
        return Task("e0", entry, (model_dir / "e0.json").absolute(), device, 0, params)

    child = run_model_child(entry, make_task, workdir, _ChildLines(log), timeout_s, lambda: True)
    if not child.ok:
        where = f" (log: {child.log})" if child.log else ""
        raise ScalmsError(f"{entry.name}: {child.reason}{where}")
    results = read_json(child.output, "child result")
    frames = []
    for element in elements:
        got = results[element]
        label = Label(
            float(got["energy_eV"]), np.array(got["forces_eV_per_A"]), float(got["wall_s"])
        )
        frames.append(e0_frame(atoms[element], label, entry.name, settings, box_A))
    return frames
