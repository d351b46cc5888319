"""The DFT-settings benchmark: every frame of a trajectory recomputed with every setting.

Replaces the thesis's ``benchmarkDFT_FF_singlepoint_vasp.py`` (D.1.5): how much do the forces
move with the cutoff, the functional, spin polarisation or the SCF threshold? The thesis found
CP2K's forces unfit for training at loose settings (Appendix B); this puts a number on it.

Each (frame, setting) is one row of a CSV, appended (and fsynced) as it finishes: energy, net
force, max |F|, SCF steps, wall time, and the forces themselves (JSON, so the differences can be
computed again from the file alone). A rerun with the same CSV skips the rows already there,
including refused ones (the same settings refuse the same frame again). Every setting's forces
are then compared with the reference setting's, and with the frame's own reference
(``REF_forces``) where the trajectory carries one, into ``<csv stem>_differences.csv``.

The settings loop is the outer one: one labeller (one CP2K process) runs at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.hpc.labels import Labeller, SCFNotConverged, summarize

if TYPE_CHECKING:
    from scalms.hpc.dft.settings import DFTSettings

COMMAND = "scalms hpc recompute"
FILE_REFERENCE = "file reference"
"""The name of the trajectory's own REF_energy/REF_forces in the differences."""
OK, REFUSED = "ok", "scf_not_converged"
COLUMNS = (
    "frame",
    "frame_sha1",
    "setting",
    "code",
    "cutoff",
    "functional",
    "spin",
    "scf_convergence",
    "status",
    "n_atoms",
    "energy_eV",
    "energy_per_atom_eV",
    "net_force_eV_per_A",
    "max_force_eV_per_A",
    "mean_abs_force_eV_per_A",
    "scf_steps",
    "wall_s",
    "forces_eV_per_A",
    "message",
)
DIMENSIONS = ("code", "cutoff", "functional", "spin", "scf_convergence")


class RecomputeError(ScalmsError):
    """The benchmark cannot run as asked, or its CSV belongs to other work."""


@dataclass(frozen=True)
class Setting:
    """One combination of settings: its name in the CSV and its values (text) per dimension."""

    name: str
    values: dict[str, str] = field(default_factory=dict)


LabellerFactory = Callable[[], Labeller]


def _text(value) -> str:
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def dft_setting_grid(
    code: str,
    base: DFTSettings,
    cutoffs: Sequence[float | None] = (),
    functionals: Sequence[str] = (),
    spins: Sequence[bool | None] = (),
    scf_convergences: Sequence[float | None] = (),
) -> list[tuple[Setting, DFTSettings]]:
    """Every combination of the values given (an empty list keeps ``base``'s value), in the
    order given, the cutoff varying slowest. Names spell out every dimension ("default" where
    the code's module chooses), so a rerun with more values finds the rows it made before."""
    axes = (
        list(dict.fromkeys(cutoffs)) or [base.cutoff],
        list(dict.fromkeys(functionals)) or [base.functional],
        list(dict.fromkeys(spins)) or [base.spin],
        list(dict.fromkeys(scf_convergences)) or [base.scf_convergence],
    )
    grid = []
    for cutoff, functional, spin, scf in itertools.product(*axes):
        values = {
            "code": code,
            "cutoff": _text(cutoff),
            "functional": functional,
            "spin": _text(spin),
            "scf_convergence": _text(scf),
        }
        name = f"{code} " + " ".join(f"{k}={values[k]}" for k in DIMENSIONS[1:])
        settings = replace(
            base, cutoff=cutoff, functional=functional, spin=spin, scf_convergence=scf
        )
        grid.append((Setting(name, values), settings))
    return grid


def resolve_setting(names: Sequence[str], text: str | None) -> str:
    """The setting ``text`` names: a full name, or words that only one name holds
    (``cutoff=800``); None: the first."""
    if not names:
        raise RecomputeError("no settings to compare")
    if text is None:
        return names[0]
    if text in names:
        return text
    words = text.split()
    matches = [name for name in names if all(word in name.split() for word in words)]
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(names)
    what = "matches none" if not matches else f"matches {len(matches)}"
    raise RecomputeError(f"--reference-setting {text!r} {what} of the settings: {listed}")


def short_names(names: Sequence[str]) -> list[str]:
    """Setting names less the words every one shares ("cp2k", "functional=PBE"...), for
    tables and figures; a name left empty stays whole."""
    split = [name.split() for name in names]
    shared = set(split[0]).intersection(*split[1:]) if len(split) > 1 else set()
    short = [" ".join(w for w in words if w not in shared) for words in split]
    return [s or name for s, name in zip(short, names, strict=True)]


def shared_words(names: Sequence[str]) -> str:
    """What :func:`short_names` leaves out, in the order of the first name."""
    if len(names) < 2:
        return ""
    split = [name.split() for name in names]
    shared = set(split[0]).intersection(*split[1:])
    return " ".join(w for w in split[0] if w in shared)


def frame_sha1(atoms: Atoms) -> str:
    """A short fingerprint of a frame's elements, positions (to 1e-6 Å) and cell, so that rows
    of another trajectory are never taken for this one's."""
    digest = hashlib.sha1()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(atoms.positions, 6).astype(np.float64).tobytes())
    digest.update(np.round(atoms.cell.array, 6).astype(np.float64).tobytes())
    return digest.hexdigest()[:12]


# --- the CSV ------------------------------------------------------------------------------------


def _row_text(row: dict[str, object]) -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, COLUMNS, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a recompute CSV; [] when it does not exist. A last line cut by a kill is
    left out; a file with other columns is refused (it is not this benchmark's)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if not text:
        return []
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise RecomputeError(
            f"{path} is not a `{COMMAND}` CSV (its columns differ): choose another --csv"
        )
    return list(reader)


class RowFile:
    """The CSV a run grows: header once, then one row per (frame, setting), each fsynced."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def repair(self) -> None:
        """Cut a last line left half-written by a kill, and write the header to a new file."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._append(",".join(COLUMNS) + "\n")
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, row: dict[str, object]) -> None:
        self._append(_row_text(row))

    def _append(self, text: str) -> None:
        from scalms.files import disk_full_error, is_disk_full

        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            if is_disk_full(err):  # a half row is cut off by the next run's repair
                raise disk_full_error(self.path, err) from err
            raise


def row_of(
    index: int, atoms: Atoms, setting: Setting, label=None, refused: str = ""
) -> dict[str, object]:
    """One CSV row: the label's numbers, or the refusal's message."""
    row: dict[str, object] = {key: "" for key in COLUMNS}
    row.update({key: setting.values[key] for key in DIMENSIONS if key in setting.values})
    row.update(frame=index, frame_sha1=frame_sha1(atoms), setting=setting.name, n_atoms=len(atoms))
    if label is None:
        row.update(status=REFUSED, message=refused)
        return row
    summary = summarize(label)
    forces = np.asarray(label.forces_eV_per_A, dtype=float)
    row.update(
        status=OK,
        energy_eV=repr(float(label.energy_eV)),
        energy_per_atom_eV=repr(float(label.energy_eV) / len(atoms)),
        net_force_eV_per_A=repr(summary.net_force_eV_per_A),
        max_force_eV_per_A=repr(summary.max_force_eV_per_A),
        mean_abs_force_eV_per_A=repr(summary.mean_abs_force_eV_per_A),
        scf_steps="" if label.scf_steps is None else int(label.scf_steps),
        wall_s=f"{label.wall_s:.3f}",
        forces_eV_per_A=json.dumps(forces.tolist()),
    )
    return row


# --- the run ------------------------------------------------------------------------------------


@dataclass
class RecomputeOutcome:
    """What a run did: rows computed now, found from before, refused now; the differences."""

    csv: Path
    differences_csv: Path
    reference_setting: str
    computed: int = 0
    skipped: int = 0
    refused: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)
    differences: list[ForceDifference] = field(default_factory=list)
    summaries: list[SettingSummary] = field(default_factory=list)


def differences_path(csv_path: Path) -> Path:
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}_differences.csv")


def work_dir_for(csv_path: Path) -> Path:
    """The run's folder beside the CSV: its lock and the DFT programs' scratch."""
    csv_path = Path(csv_path)
    return csv_path.parent / f"{csv_path.stem}_runs"


def recompute(
    frames: Sequence[Atoms],
    settings: Sequence[tuple[Setting, LabellerFactory]],
    csv_path: Path,
    *,
    reference_setting: str | None = None,
    log: Callable[[str], None] | None = None,
) -> RecomputeOutcome:
    """Label every frame with every setting into ``csv_path``, then compare the forces.

    ``settings``: (setting, a function making its labeller), in order; the labeller is made
    when its first missing row comes and closed when its rows are done. A refused SCF is a
    row with status ``scf_not_converged``; any other error stops the run, keeping the rows
    written. Rows already in the CSV for the same frame (by fingerprint) are skipped; a row
    for another frame at the same index refuses the run.
    """
    from scalms.files import WorkDirLock

    log = log or (lambda line: None)
    csv_path = Path(csv_path).absolute()
    names = [setting.name for setting, _ in settings]
    if len(set(names)) != len(names):
        raise RecomputeError("two settings share a name: " + ", ".join(names))
    reference_setting = resolve_setting(names, reference_setting)
    if not frames:
        raise RecomputeError("the trajectory holds no frames")
    prints = [frame_sha1(atoms) for atoms in frames]
    outcome = RecomputeOutcome(csv_path, differences_path(csv_path), reference_setting)
    with WorkDirLock(work_dir_for(csv_path), COMMAND):
        done = _rows_done(read_rows(csv_path), prints, csv_path)
        rows = RowFile(csv_path)
        rows.repair()
        for setting, make_labeller in settings:
            missing = [i for i in range(len(frames)) if (i, setting.name) not in done]
            outcome.skipped += len(frames) - len(missing)
            if not missing:
                continue
            labeller = make_labeller()
            try:
                for i in missing:
                    try:
                        label = labeller.label(frames[i])
                    except SCFNotConverged as err:
                        rows.append(row_of(i, frames[i], setting, refused=str(err)))
                        outcome.refused += 1
                        log(f"frame {i}, {setting.name}: refused ({err})")
                        continue
                    rows.append(row_of(i, frames[i], setting, label))
                    outcome.computed += 1
                    log(f"frame {i}, {setting.name}: {summarize(label).line()}")
            finally:
                labeller.close()
        outcome.rows = read_rows(csv_path)
        outcome.differences = force_differences(outcome.rows, reference_setting, frames)
        outcome.summaries = setting_summaries(outcome.rows)
        write_differences(outcome.differences_csv, outcome.differences)
    return outcome


def _rows_done(rows: list[dict[str, str]], prints: list[str], path: Path) -> set[tuple[int, str]]:
    done = set()
    for row in rows:
        index = int(row["frame"])
        if index >= len(prints) or row["frame_sha1"] != prints[index]:
            raise RecomputeError(
                f"{path} holds frame {index} of another trajectory: choose another --csv"
            )
        done.add((index, row["setting"]))
    return done


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ForceDifference:
    """One setting's forces and energies against another's (or the file's reference), over
    the frames both computed. ``force_rms`` is sqrt(mean over atoms and frames of |ΔF|²);
    ``energy_mean_diff`` the mean of ΔE per atom (an offset: harmless for forces) and
    ``energy_spread`` its standard deviation over frames (what moves relative energies)."""

    setting: str
    against: str
    n_frames: int
    force_rms_eV_per_A: float
    force_max_eV_per_A: float
    energy_mean_diff_eV_per_atom: float
    energy_spread_eV_per_atom: float


DIFFERENCE_COLUMNS = (
    "setting",
    "against",
    "n_frames",
    "force_rms_eV_per_A",
    "force_max_eV_per_A",
    "energy_mean_diff_eV_per_atom",
    "energy_spread_eV_per_atom",
)


def _labels_by_setting(rows) -> dict[str, dict[int, tuple[float, np.ndarray]]]:
    table: dict[str, dict[int, tuple[float, np.ndarray]]] = {}
    for row in rows:
        if row["status"] != OK:
            continue
        forces = np.asarray(json.loads(row["forces_eV_per_A"]), dtype=float)
        table.setdefault(row["setting"], {})[int(row["frame"])] = (float(row["energy_eV"]), forces)
    return table


def _compare(setting, against, mine, theirs) -> ForceDifference | None:
    common = sorted(set(mine) & set(theirs))
    if not common:
        return None
    delta = np.concatenate([mine[i][1] - theirs[i][1] for i in common])
    norms = np.linalg.norm(delta, axis=1)
    per_atom = np.array([(mine[i][0] - theirs[i][0]) / len(mine[i][1]) for i in common])
    return ForceDifference(
        setting=setting,
        against=against,
        n_frames=len(common),
        force_rms_eV_per_A=float(np.sqrt(np.mean(norms**2))),
        force_max_eV_per_A=float(norms.max()),
        energy_mean_diff_eV_per_atom=float(per_atom.mean()),
        energy_spread_eV_per_atom=float(per_atom.std()),
    )


def force_differences(
    rows: list[dict[str, str]], reference_setting: str, frames: Sequence[Atoms] = ()
) -> list[ForceDifference]:
    """Every setting against ``reference_setting`` (itself included: zero), then every setting
    against the frames' own reference (``REF_energy``/``REF_forces``, or their calculator's
    results) where ``frames`` carry one. Settings in the order of their first row."""
    from scalms.hpc.package import reference_of

    table = _labels_by_setting(rows)
    order = list(dict.fromkeys(row["setting"] for row in rows if row["setting"] in table))
    found = []
    if reference_setting in table:
        for name in order:
            found.append(_compare(name, reference_setting, table[name], table[reference_setting]))
    own = {}
    for i, atoms in enumerate(frames):
        energy, forces = reference_of(atoms)
        if energy is not None and forces is not None and forces.shape == (len(atoms), 3):
            own[i] = (energy, forces)
    if own:
        for name in order:
            found.append(_compare(name, FILE_REFERENCE, table[name], own))
    return [item for item in found if item is not None]


def write_differences(path: Path, differences: list[ForceDifference]) -> Path:
    """The differences as CSV, written atomically (the whole table each time)."""
    from dataclasses import astuple

    from scalms.files import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DIFFERENCE_COLUMNS)
    for item in differences:
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in astuple(item)])
    return atomic_write_text(path, buffer.getvalue())


@dataclass(frozen=True)
class SettingSummary:
    """Per setting over its rows: frames computed and refused, mean and max net force, mean
    SCF steps and wall time."""

    setting: str
    n_ok: int
    n_refused: int
    net_force_mean_eV_per_A: float
    net_force_max_eV_per_A: float
    scf_steps_mean: float
    wall_s_mean: float


def setting_summaries(rows: list[dict[str, str]]) -> list[SettingSummary]:
    """One summary per setting, in the order of their first row."""
    summaries = []
    for name in dict.fromkeys(row["setting"] for row in rows):
        mine = [row for row in rows if row["setting"] == name]
        ok = [row for row in mine if row["status"] == OK]
        net = np.array([float(row["net_force_eV_per_A"]) for row in ok])
        steps = [float(row["scf_steps"]) for row in ok if row["scf_steps"]]
        wall = np.array([float(row["wall_s"]) for row in ok])
        summaries.append(
            SettingSummary(
                setting=name,
                n_ok=len(ok),
                n_refused=len(mine) - len(ok),
                net_force_mean_eV_per_A=float(net.mean()) if ok else float("nan"),
                net_force_max_eV_per_A=float(net.max()) if ok else float("nan"),
                scf_steps_mean=float(np.mean(steps)) if steps else float("nan"),
                wall_s_mean=float(wall.mean()) if ok else float("nan"),
            )
        )
    return summaries


# --- with a DFT code ----------------------------------------------------------------------------


def recompute_dft(
    trajectory: Path,
    code: str,
    base: DFTSettings,
    csv_path: Path,
    *,
    cutoffs: Sequence[float | None] = (),
    functionals: Sequence[str] = (),
    spins: Sequence[bool | None] = (),
    scf_convergences: Sequence[float | None] = (),
    reference_setting: str | None = None,
    log: Callable[[str], None] | None = None,
) -> RecomputeOutcome:
    """Recompute every frame of ``trajectory`` with ``code`` (cp2k, vasp, espresso) for every
    combination of the settings given; see :func:`recompute`. The trajectory is any file ASE
    reads or a scalms H5MD trajectory (whose saved model forces then count as the frames' own
    reference).

    Every setting's labeller checks every composition before any work (program, basis or
    pseudopotential files, elements): bad input fails in one line with nothing written.
    The DFT scratch goes under ``<csv stem>_runs/dft`` unless ``base`` names a workdir.
    """
    from scalms.hpc.dft import DFT_CODES, is_dft_code, make_dft_labeller
    from scalms.hpc.dft.settings import DFTSettings
    from scalms.hpc.rattle import InputFrames  # any ASE file or a scalms H5MD trajectory

    if not is_dft_code(code):
        raise RecomputeError(
            f"--calculator {code!r}: recompute runs a DFT code ({', '.join(DFT_CODES)}); "
            "compare models with `scalms benchmark accuracy`"
        )
    frames = list(InputFrames(trajectory))
    csv_path = Path(csv_path).absolute()
    if base.workdir == DFTSettings().workdir:
        base = replace(base, workdir=work_dir_for(csv_path) / "dft")
    grid = dft_setting_grid(code, base, cutoffs, functionals, spins, scf_convergences)
    resolve_setting([setting.name for setting, _ in grid], reference_setting)
    compositions = {atoms.symbols.formula.format("hill"): atoms for atoms in frames}
    for _, settings in grid:
        probe = make_dft_labeller(code, settings)
        try:
            for atoms in compositions.values():
                probe.check(atoms)
        finally:
            probe.close()

    def factory(settings: DFTSettings) -> LabellerFactory:
        return lambda: make_dft_labeller(code, settings)

    return recompute(
        frames,
        [(setting, factory(settings)) for setting, settings in grid],
        csv_path,
        reference_setting=reference_setting,
        log=log,
    )
