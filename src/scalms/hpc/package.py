"""Training datasets from labelled frames: train / valid / test split by source file.

Replaces the thesis's ``dataset_packager.py`` (3.3, D.1.5). Each source file (one rattle job, one
AIMD run) goes whole into one set, so frames made from the same start never sit on both sides of
the train/test line. Before the split, frames that would teach a model wrong physics are dropped,
each with its reason in the report:

- no reference energy or forces (``REF_energy``/``REF_forces``, or a calculator's results);
- a force above ``force_threshold`` (default 5 eV/Å: the thesis's cap for invalid forces);
- forces that do not sum to about zero, ``|ΣF|`` above ``net_force_threshold`` (default 0.1 eV/Å;
  thesis Appendix B: such data misled the MLIPs trained on it).

Isolated-atom frames (``config_type`` ``IsolatedAtom``, the E0 MACE reads) go to train as they are.
Frames are written with the reference under ``REF_energy``/``REF_forces`` (extended XYZ), which
``mace_run_train --energy_key REF_energy --forces_key REF_forces`` reads as it is.

The pure part (:func:`filter_frames`, :func:`assign_files`) takes frames and sizes in and gives
splits out; :func:`package` reads, plans every packaging, and only then writes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from scalms.errors import ScalmsError
from scalms.hpc.labels import ENERGY_KEY, FORCES_KEY

DEFAULT_FORCE_THRESHOLD = 5.0
"""eV/Å: a larger force on any atom marks the frame as invalid (thesis 3.3)."""
DEFAULT_NET_FORCE_THRESHOLD = 0.1
"""eV/Å: a larger |ΣF| marks inconsistent forces (thesis Appendix B)."""
ISOLATED_ATOM = "IsolatedAtom"
SOURCE_KEY = "packaged_from"
"""``info`` key naming the file a packaged frame came from (a rattle frame's own
``source_file``, the structure it was rattled from, is kept as it is)."""
SETS = ("train", "valid", "test")
TRAIN, VALID, TEST = range(3)


class PackageError(ScalmsError):
    """The packaging cannot be made as asked (bad split, nothing left, element missing)."""


# --- input --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Percentages of the frames of the input files for train, valid and test (sum 100)."""

    train: float
    valid: float
    test: float

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (self.train / 100.0, self.valid / 100.0, self.test / 100.0)

    def __str__(self) -> str:
        return "-".join(f"{p:g}" for p in (self.train, self.valid, self.test))


def parse_split(text: str) -> Split:
    """``"80-10-10"`` -> :class:`Split`; three non-negative numbers adding to 100."""
    parts = text.replace("/", "-").split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values):
        raise PackageError(
            f"--split {text!r}: give three percentages for train-valid-test, e.g. 80-10-10"
        )
    if abs(sum(values) - 100.0) > 1e-6:
        raise PackageError(f"--split {text!r} adds to {sum(values):g}, not 100")
    if values[TRAIN] == 0:
        raise PackageError(f"--split {text!r} leaves nothing to train on")
    return Split(*values)


def parse_elements(text: str | None) -> list[str]:
    """``"Pt,Bi"`` -> ``["Pt", "Bi"]``, each checked to be a chemical symbol."""
    from ase.data import chemical_symbols

    if not text:
        return []
    elements = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in elements if e not in chemical_symbols[1:]]
    if unknown:
        raise PackageError(
            f"--elements-in-test-valid: {', '.join(unknown)} is not an element symbol (e.g. Pt,Bi)"
        )
    return list(dict.fromkeys(elements))


# --- frames -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """A frame left out, why (``missing_energy``, ``missing_forces``, ``bad_forces``,
    ``max_force``, ``net_force``), and the offending value (eV/Å) where there is one."""

    frame: int
    reason: str
    detail: str
    value: float | None = None


@dataclass(frozen=True)
class Thresholds:
    force_eV_per_A: float = DEFAULT_FORCE_THRESHOLD
    net_force_eV_per_A: float = DEFAULT_NET_FORCE_THRESHOLD


def _calculator_result(atoms: Atoms, name: str):
    results = getattr(atoms.calc, "results", None) or {}
    return results.get(name)


def reference_of(atoms: Atoms) -> tuple[float | None, np.ndarray | None]:
    """The frame's reference energy (eV) and forces (eV/Å): ``REF_energy``/``REF_forces`` first
    (what scalms and MACE write), else the calculator's results (extended XYZ written with
    ``energy=``/``forces``, which ASE reads into a single-point calculator); None where absent."""
    energy = atoms.info.get(ENERGY_KEY)
    if energy is None:
        energy = _calculator_result(atoms, "energy")
    forces = atoms.arrays.get(FORCES_KEY)
    if forces is None:
        forces = _calculator_result(atoms, "forces")
    return (
        None if energy is None else float(energy),
        None if forces is None else np.asarray(forces, dtype=float),
    )


def is_isolated_atom(atoms: Atoms) -> bool:
    """An E0 frame as MACE recognises it: one atom, ``config_type`` ``IsolatedAtom``."""
    return len(atoms) == 1 and atoms.info.get("config_type") == ISOLATED_ATOM


def _stored(atoms: Atoms, energy: float, forces: np.ndarray, source: str) -> Atoms:
    frame = atoms.copy()
    frame.calc = None
    frame.info[ENERGY_KEY] = float(energy)
    frame.arrays[FORCES_KEY] = np.array(forces, dtype=float)
    frame.info[SOURCE_KEY] = source
    return frame


def filter_frames(
    frames: list[Atoms], thresholds: Thresholds, source: str = ""
) -> tuple[list[Atoms], list[Atoms], list[Dropped]]:
    """Split ``frames`` into kept frames, isolated-atom frames and dropped ones (with reasons).

    Kept and isolated frames are copies with the reference under ``REF_energy``/``REF_forces``,
    no calculator, and ``source`` under :data:`SOURCE_KEY` in ``info``. Isolated atoms skip the
    force thresholds (their forces are zero by symmetry and written as zeros where absent); they
    still need an energy, which is what MACE takes from them.
    """
    kept, isolated, dropped = [], [], []
    for index, atoms in enumerate(frames):
        energy, forces = reference_of(atoms)
        if energy is None or not math.isfinite(energy):
            dropped.append(
                Dropped(index, "missing_energy", f"no reference energy (info {ENERGY_KEY})")
            )
            continue
        if is_isolated_atom(atoms):
            if forces is None or forces.shape != (1, 3):
                forces = np.zeros((1, 3))
            isolated.append(_stored(atoms, energy, forces, source))
            continue
        if forces is None:
            dropped.append(
                Dropped(index, "missing_forces", f"no reference forces (arrays {FORCES_KEY})")
            )
            continue
        if forces.shape != (len(atoms), 3) or not np.isfinite(forces).all():
            dropped.append(
                Dropped(index, "bad_forces", "reference forces are not a finite (n_atoms, 3) array")
            )
            continue
        max_force = float(np.linalg.norm(forces, axis=1).max())
        if max_force > thresholds.force_eV_per_A:
            dropped.append(
                Dropped(
                    index,
                    "max_force",
                    f"max |F| {max_force:.3g} eV/Å above --force-threshold "
                    f"{thresholds.force_eV_per_A:g}",
                    max_force,
                )
            )
            continue
        # float64 sum: rounding of the sum must not pass for a net force
        net_force = float(np.linalg.norm(forces.sum(axis=0, dtype=np.float64)))
        if net_force > thresholds.net_force_eV_per_A:
            dropped.append(
                Dropped(
                    index,
                    "net_force",
                    f"net force |ΣF| {net_force:.3g} eV/Å above --net-force-threshold "
                    f"{thresholds.net_force_eV_per_A:g}",
                    net_force,
                )
            )
            continue
        kept.append(_stored(atoms, energy, forces, source))
    return kept, isolated, dropped


@dataclass
class SourceFile:
    """One input file after filtering: what is kept, what is dropped and why."""

    name: str
    """As the report names it: relative to the input folder, or the path given for --extra."""
    path: Path
    n_read: int
    frames: list[Atoms]
    isolated: list[Atoms]
    dropped: list[Dropped]
    extra: bool = False

    @property
    def elements(self) -> frozenset[str]:
        return frozenset(s for atoms in self.frames for s in atoms.get_chemical_symbols())


def load_source(path: Path, name: str, thresholds: Thresholds, extra: bool = False) -> SourceFile:
    """Read every frame of ``path`` (any format ASE reads) and filter it."""
    from scalms.io.structures import read_frames  # ase.io.read(path, ":") with one-line errors

    frames = read_frames(path)
    kept, isolated, dropped = filter_frames(frames, thresholds, name)
    return SourceFile(name, Path(path), len(frames), kept, isolated, dropped, extra)


# --- the split ----------------------------------------------------------------------------------


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def assign_files(
    sizes: list[int],
    elements: list[frozenset[str]],
    split: Split,
    required: list[str],
    seed: int,
    names: list[str] | None = None,
) -> list[int]:
    """The set (0 train, 1 valid, 2 test) of each file, whole files only.

    Frame counts come as close to ``split`` as whole files allow; every element of ``required``
    is in some file of valid and of test; each set with a share above zero gets a file.
    ``seed`` orders the files at random, so other seeds give other packagings of the same
    quality. Method: files holding a required element are placed first (the smallest such
    file, so the ratio suffers least), the others go one by one to the set furthest below its
    target, then single moves and pairwise swaps that bring the counts closer are made while
    they help and keep every condition.
    """
    n = len(sizes)
    names = names or [f"file {i}" for i in range(n)]
    shares = split.fractions
    open_sets = [s for s in range(3) if shares[s] > 0]
    if required and (shares[VALID] == 0 or shares[TEST] == 0):
        raise PackageError(
            f"--elements-in-test-valid needs a valid and a test set, but --split is {split}"
        )
    if n < len(open_sets):
        raise PackageError(
            f"--split {split} needs at least {len(open_sets)} files with kept frames "
            f"(one per set); found {n}"
        )
    total = float(sum(sizes))
    target = [share * total for share in shares]
    rng = np.random.default_rng(seed)
    rank = {int(i): r for r, i in enumerate(rng.permutation(n))}
    ordered = sorted(range(n), key=rank.__getitem__)
    where = [-1] * n
    count = [0, 0, 0]

    def put(i: int, s: int) -> None:
        where[i] = s
        count[s] += sizes[i]

    for element in required:
        holders = [i for i in ordered if element in elements[i]]
        if not holders:
            raise PackageError(
                f"--elements-in-test-valid: {element} is in no kept frame of the {n} files"
            )
        for s in (TEST, VALID):
            if any(where[i] == s for i in holders):
                continue
            free = [i for i in holders if where[i] < 0]
            if not free:
                raise PackageError(
                    f"--elements-in-test-valid: {element} is in {len(holders)} file(s) "
                    f"({_names([names[i] for i in holders])}); valid and test need one each, "
                    "as files are never split"
                )
            put(min(free, key=lambda i: (sizes[i], rank[i])), s)
    for s in open_sets:  # every set with a share gets a file, the smallest free one
        if not any(where[i] == s for i in range(n)):
            free = [i for i in ordered if where[i] < 0]
            if not free:
                raise PackageError(
                    f"no file is left for {SETS[s]}: the {n} files all went to valid and test "
                    f"to hold {', '.join(required)}; add files or list fewer elements"
                )
            put(min(free, key=lambda i: (sizes[i], rank[i])), s)
    for i in ordered:
        if where[i] < 0:
            put(i, max(open_sets, key=lambda s: target[s] - count[s]))

    def allowed() -> bool:
        members = [[i for i in range(n) if where[i] == s] for s in range(3)]
        if any(not members[s] for s in open_sets):
            return False
        return all(
            any(element in elements[i] for i in members[s])
            for element in required
            for s in (VALID, TEST)
        )

    def deviation() -> float:
        return sum(abs(count[s] - target[s]) for s in range(3))

    def move(i: int, s: int) -> None:
        count[where[i]] -= sizes[i]
        put(i, s)

    for _ in range(100):  # a pass that helps nowhere ends it; 100 is a guard, never reached
        improved = False
        for i in ordered:
            for s in open_sets:
                if s == where[i]:
                    continue
                before, old = deviation(), where[i]
                move(i, s)
                if deviation() < before - 1e-9 and allowed():
                    improved = True
                else:
                    move(i, old)
        for i in ordered:
            for j in ordered:
                a, b = where[i], where[j]
                if a >= b or sizes[i] == sizes[j]:
                    continue
                before = deviation()
                move(i, b)
                move(j, a)
                if deviation() < before - 1e-9 and allowed():
                    improved = True
                else:
                    move(i, a)
                    move(j, b)
        if not improved:
            break
    return where


# --- the whole packaging ------------------------------------------------------------------------


@dataclass
class Packaging:
    """One packaging (``dataset_<k>``): the frames of each set and where they came from."""

    seed: int
    sets: dict[str, list[Atoms]]
    files: dict[str, list[str]]
    """Set name -> names of the files whose frames went there (--extra files under train)."""
    file_set: dict[str, str | None]
    """File name -> set it went to (None: nothing kept; isolated atoms always go to train)."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class PackagePlan:
    """Everything :func:`package` writes, decided before a byte is written."""

    input_dir: Path
    pattern: str
    split: Split
    thresholds: Thresholds
    elements_in_test_valid: list[str]
    sources: list[SourceFile]
    extras: list[SourceFile]
    packagings: list[Packaging]


def find_sources(input_dir: Path, pattern: str, exclude: Path | None = None) -> list[Path]:
    """Files of ``input_dir`` matching ``pattern`` (glob, ``**`` recursive), sorted, leaving out
    anything under ``exclude`` (the output folder, so a rerun never packages its own output)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise PackageError(f"input folder not found: {input_dir}")
    skip = exclude.resolve() if exclude is not None else None
    found = []
    try:
        matches = sorted(input_dir.glob(pattern))
    except (ValueError, NotImplementedError) as err:  # an absolute or empty pattern
        raise PackageError(
            f"--pattern {pattern!r}: {err}; give it relative to the folder"
        ) from None
    for path in matches:
        if not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        found.append(path)
    if not found:
        raise PackageError(f"no file in {input_dir} matches --pattern {pattern!r}")
    return found


def _drop_summary(sources: list[SourceFile]) -> str:
    reasons = Counter(d.reason for src in sources for d in src.dropped)
    return ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in reasons.most_common())


def plan_package(
    input_dir: Path,
    pattern: str = "*.xyz",
    split: Split | str = "80-10-10",
    *,
    extra: list[Path] | None = None,
    amount: int = 1,
    thresholds: Thresholds | None = None,
    elements_in_test_valid: list[str] | str | None = None,
    seed: int = 0,
    out: Path | None = None,
) -> PackagePlan:
    """Read, filter and split: every check that can fail, failing before anything is written."""
    split = parse_split(split) if isinstance(split, str) else split
    thresholds = thresholds or Thresholds()
    if thresholds.force_eV_per_A <= 0 or thresholds.net_force_eV_per_A <= 0:
        raise PackageError("--force-threshold and --net-force-threshold must be above zero")
    if amount < 1:
        raise PackageError(f"--amount {amount}: make at least one packaging")
    required = (
        parse_elements(elements_in_test_valid)
        if isinstance(elements_in_test_valid, str | None)
        else parse_elements(",".join(elements_in_test_valid))
    )
    input_dir = Path(input_dir)
    extra = [Path(p) for p in extra or []]
    for path in extra:
        if not path.is_file():
            raise PackageError(f"--extra file not found: {path}")
    extra_resolved = {p.resolve() for p in extra}
    paths = [p for p in find_sources(input_dir, pattern, out) if p.resolve() not in extra_resolved]
    if not paths:
        raise PackageError(f"every file matching {pattern!r} is also given as --extra")
    sources = [load_source(p, p.relative_to(input_dir).as_posix(), thresholds) for p in paths]
    extras = [load_source(p, str(p), thresholds, extra=True) for p in extra]
    splittable = [src for src in sources if src.frames]
    if not splittable:
        read = sum(src.n_read for src in sources)
        raise PackageError(
            f"every frame of the {len(sources)} file(s) was dropped ({read} read: "
            f"{_drop_summary(sources)}); see the thresholds"
        )
    packagings = []
    for k in range(amount):
        where = assign_files(
            [len(src.frames) for src in splittable],
            [src.elements for src in splittable],
            split,
            required,
            seed + k,
            [src.name for src in splittable],
        )
        packagings.append(_packaging(seed + k, sources, extras, splittable, where, required))
    return PackagePlan(input_dir, pattern, split, thresholds, required, sources, extras, packagings)


def _packaging(
    seed: int,
    sources: list[SourceFile],
    extras: list[SourceFile],
    splittable: list[SourceFile],
    where: list[int],
    required: list[str],
) -> Packaging:
    place = {src.name: SETS[s] for src, s in zip(splittable, where, strict=True)}
    sets: dict[str, list[Atoms]] = {name: [] for name in SETS}
    files: dict[str, list[str]] = {name: [] for name in SETS}
    # E0 frames first in train, as MACE's examples keep them
    for src in [*sources, *extras]:
        sets["train"].extend(src.isolated)
    for src in sources:
        if src.name in place:
            sets[place[src.name]].extend(src.frames)
            files[place[src.name]].append(src.name)
        elif src.isolated:
            files["train"].append(src.name)
    for src in extras:
        sets["train"].extend(src.frames)
        files["train"].append(src.name)
    file_set = {src.name: place.get(src.name) for src in sources}
    for src in sources:
        if src.name not in place and src.isolated:
            file_set[src.name] = "train"
    file_set.update({src.name: "train" for src in extras})
    train_elements = {s for atoms in sets["train"] for s in atoms.get_chemical_symbols()}
    warnings = [
        f"{element} is in valid and test but in no train frame: a model trained on this set "
        "has not seen it"
        for element in required
        if element not in train_elements
    ]
    return Packaging(seed, sets, files, file_set, warnings)


# --- the report ---------------------------------------------------------------------------------


def element_counts(frames: list[Atoms]) -> dict[str, dict[str, int]]:
    """Per element: frames that hold it and atoms of it."""
    frames_with, atoms_of = Counter(), Counter()
    for atoms in frames:
        symbols = Counter(atoms.get_chemical_symbols())
        atoms_of.update(symbols)
        frames_with.update(symbols.keys())
    return {e: {"frames": frames_with[e], "atoms": atoms_of[e]} for e in sorted(atoms_of)}


def report_record(plan: PackagePlan, packaging: Packaging) -> dict[str, Any]:
    """What ``report.json`` holds for one packaging: settings, sets, elements, files, drops.

    ``percent`` is of the split files' frames (the share --split aims at); --extra frames and
    isolated atoms are counted in ``frames`` but not in it."""
    from_split = {name: 0 for name in SETS}
    for src in plan.sources:
        if src.frames:
            from_split[packaging.file_set[src.name]] += len(src.frames)
    split_total = sum(from_split.values())
    targets = dict(zip(SETS, (plan.split.train, plan.split.valid, plan.split.test), strict=True))
    sets = {
        name: {
            "frames": len(packaging.sets[name]),
            "frames_from_split": from_split[name],
            "percent": 100.0 * from_split[name] / split_total,
            "target_percent": targets[name],
            "isolated_atoms": sum(1 for a in packaging.sets[name] if is_isolated_atom(a)),
            "files": packaging.files[name],
            "elements": element_counts(packaging.sets[name]),
        }
        for name in SETS
    }
    return {
        "seed": packaging.seed,
        "input_dir": str(plan.input_dir),
        "pattern": plan.pattern,
        "split": str(plan.split),
        "force_threshold_eV_per_A": plan.thresholds.force_eV_per_A,
        "net_force_threshold_eV_per_A": plan.thresholds.net_force_eV_per_A,
        "elements_in_test_valid": plan.elements_in_test_valid,
        "energy_key": ENERGY_KEY,
        "forces_key": FORCES_KEY,
        "sets": sets,
        "files": [
            {
                "name": src.name,
                "extra": src.extra,
                "set": packaging.file_set.get(src.name),
                "frames_read": src.n_read,
                "frames_kept": len(src.frames),
                "isolated_atoms": len(src.isolated),
                "dropped": [
                    {"frame": d.frame, "reason": d.reason, "detail": d.detail, "value": d.value}
                    for d in src.dropped
                ],
            }
            for src in [*plan.sources, *plan.extras]
        ],
        "warnings": packaging.warnings,
    }


def report_markdown(record: dict[str, Any]) -> str:
    """The readable twin of ``report.json``."""
    lines = [
        f"# Dataset packaging (seed {record['seed']})",
        "",
        f"From `{record['input_dir']}` files matching `{record['pattern']}`, split "
        f"{record['split']} (train-valid-test, % of frames, whole files), force cap "
        f"{record['force_threshold_eV_per_A']:g} eV/Å, net-force cap "
        f"{record['net_force_threshold_eV_per_A']:g} eV/Å. Reference under "
        f"`{record['energy_key']}` / `{record['forces_key']}`.",
        "",
        "| set | files | frames | % of split frames (target) | isolated atoms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in record["sets"].items():
        lines.append(
            f"| {name} | {len(entry['files'])} | {entry['frames']} | "
            f"{entry['percent']:.1f} ({entry['target_percent']:g}) | {entry['isolated_atoms']} |"
        )
    elements = sorted({e for entry in record["sets"].values() for e in entry["elements"]})
    lines += ["", "## Elements: frames holding it (atoms)", ""]
    lines.append("| element | " + " | ".join(record["sets"]) + " |")
    lines.append("| --- |" + " ---: |" * len(record["sets"]))
    for element in elements:
        cells = []
        for entry in record["sets"].values():
            count = entry["elements"].get(element)
            cells.append(f"{count['frames']} ({count['atoms']})" if count else "0")
        marker = (
            " (required in valid and test)" if element in record["elements_in_test_valid"] else ""
        )
        lines.append(f"| {element}{marker} | " + " | ".join(cells) + " |")
    lines += ["", "## Files", "", "| file | set | read | kept | dropped | why dropped |"]
    lines.append("| --- | --- | ---: | ---: | ---: | --- |")
    for entry in record["files"]:
        why = Counter(d["reason"].replace("_", " ") for d in entry["dropped"])
        reasons = ", ".join(f"{n} {reason}" for reason, n in why.most_common())
        name = entry["name"] + (" (--extra)" if entry["extra"] else "")
        lines.append(
            f"| `{name}` | {entry['set'] or 'none'} | {entry['frames_read']} | "
            f"{entry['frames_kept'] + entry['isolated_atoms']} | {len(entry['dropped'])} | "
            f"{reasons} |"
        )
    dropped = [(e["name"], d) for e in record["files"] for d in e["dropped"]]
    if dropped:
        lines += ["", "## Dropped frames", ""]
        lines += [f"- `{name}` frame {d['frame']}: {d['detail']}" for name, d in dropped]
    if record["warnings"]:
        lines += ["", "## Warnings", ""]
        lines += [f"- {w}" for w in record["warnings"]]
    return "\n".join(lines) + "\n"


# --- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """One packaging on disk."""

    folder: Path
    record: dict[str, Any]


def write_package(plan: PackagePlan, out: Path) -> list[Written]:
    """Write ``out/dataset_<k>/{train,valid,test}.xyz`` and ``report.json``/``report.md`` for
    every packaging of ``plan``, each file atomically. A set with a 0 % share is not written."""
    import ase.io

    from scalms.files import WorkDirLock, atomic_path, atomic_write_json, atomic_write_text

    written = []
    with WorkDirLock(out, "scalms hpc package"):
        for k, packaging in enumerate(plan.packagings):
            folder = Path(out) / f"dataset_{k}"
            for name in SETS:
                if not packaging.sets[name]:
                    continue
                with atomic_path(folder / f"{name}.xyz") as tmp:
                    ase.io.write(tmp, packaging.sets[name], format="extxyz")
            record = report_record(plan, packaging)
            atomic_write_json(folder / "report.json", record)
            atomic_write_text(folder / "report.md", report_markdown(record))
            written.append(Written(folder, record))
    return written


def stale_datasets(out: Path, amount: int) -> list[Path]:
    """``dataset_<k>`` folders of ``out`` with k >= ``amount``: left by an earlier packaging
    with a larger --amount (kept: they may be in use; the caller says so)."""
    stale = []
    for folder in Path(out).glob("dataset_*"):
        suffix = folder.name.removeprefix("dataset_")
        if folder.is_dir() and suffix.isdigit() and int(suffix) >= amount:
            stale.append(folder)
    return sorted(stale, key=lambda f: int(f.name.removeprefix("dataset_")))


def package(
    input_dir: Path,
    out: Path,
    pattern: str = "*.xyz",
    split: Split | str = "80-10-10",
    *,
    extra: list[Path] | None = None,
    amount: int = 1,
    thresholds: Thresholds | None = None,
    elements_in_test_valid: list[str] | str | None = None,
    seed: int = 0,
) -> list[Written]:
    """Package the files of ``input_dir`` matching ``pattern`` into ``amount`` datasets under
    ``out`` (seeds ``seed`` .. ``seed + amount - 1``); see the module's docstring.

    Raises :class:`PackageError` (nothing written) for a split not adding to 100, a pattern that
    matches nothing, thresholds that drop every frame, or a required element that cannot be put
    in both valid and test.
    """
    plan = plan_package(
        input_dir,
        pattern,
        split,
        extra=extra,
        amount=amount,
        thresholds=thresholds,
        elements_in_test_valid=elements_in_test_valid,
        seed=seed,
        out=Path(out),
    )
    return write_package(plan, Path(out))
