"""Rattled frames for reference data: the geometry of each slot, nothing else (no labelling, no
files written).

A rattle job makes ``count`` frames, slot ``j = 0 .. count-1``. Slot ``j``'s geometry depends on
(seed, j, attempt) only, so shards, resumed runs and retries after a refused SCF all draw the
same structures an uninterrupted single run would. Per slot, in the thesis's order (3.3):

1. a frame of INPUT (a random one when INPUT is a trajectory; frame ``j`` itself with
   ``each_frame``, see below);
2. alloying: exactly the asked number of host atoms replaced by the alloy element
   (:func:`scalms.geometry.alloy.substitute`);
3. BFGS pre-convergence (fmax 0.5 eV/Å, at most 20 steps) when asked, and always after
   alloying, with the labelling calculator: relaxing with another potential would leave the
   particle off the labeller's own minimum, which is what pre-convergence is for;
4. the rattle: every particle atom displaced by a normal draw of ``stddev_A`` per coordinate
   (ASE's ``Atoms.rattle``);
5. molecules, when asked, placed around the rattled particle
   (:func:`scalms.geometry.adsorbates.place_molecules`). The thesis rattles and pre-converges
   only the particle: the molecules keep their own geometry (ASE's g2 molecules or the file
   given) and are placed last, so the minimum distance to the rattled particle holds.

Each step has its own random stream spawned from (seed, j, attempt), so switching molecules on
does not change the particle's rattle.

``each_frame`` labels given frames as they are (active learning labels the MD frames it
selected): slot ``j`` is frame ``j`` of INPUT, in order, and ``count`` is at most the number of
frames. With ``stddev_A`` 0 the rattle adds exact zeros, so the labelled positions are INPUT's
bit for bit; the frames' own ``info`` (``learn_round``, ``md_frame``, ...) is kept, under the
labelling's own keys. Alloying, molecules and pre-convergence still apply, frame by frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from scalms.errors import ScalmsError
from scalms.geometry.adsorbates import PlacementSettings

PRE_CONVERGE_FMAX_EV_PER_A = 0.5
PRE_CONVERGE_MAX_STEPS = 20
"""The thesis's pre-convergence (Appendix D.1.5): BFGS to max |F| < 0.5 eV/Å, 20 steps at most."""
DEFAULT_COUNT = 10
"""Frames a rattle job makes when --count is not given (and --each-frame is not set)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N): this job computes the slots j with j % N == K (K counts from 0)."""
    parts = text.split("/")
    try:
        k, n = (int(p) for p in parts)
    except ValueError:
        raise ScalmsError(
            f"--shard '{text}' is not K/N (two whole numbers, e.g. 0/4 for the first of four)"
        ) from None
    if n < 1 or not 0 <= k < n:
        raise ScalmsError(
            f"--shard '{text}': need 0 <= K < N (K counts from 0), e.g. 0/{max(n, 2)}"
        )
    return k, n


@dataclass(frozen=True)
class RattleSpec:
    """What a rattle job makes: every choice that shapes a slot's geometry, plus how many slots.

    ``alloy_fraction`` and ``alloy_count`` are alternatives (one with ``alloy``); ``alloy_host``
    is the element replaced (None: the most common element of the frame other than ``alloy``).
    ``placement.seed`` is ignored: each slot draws its own placement. ``each_frame``: slot ``j``
    is frame ``j`` of INPUT instead of a random frame (see the module docstring).
    """

    input: Path
    stddev_A: float = 0.1
    count: int = 1
    alloy: str | None = None
    alloy_fraction: float | None = None
    alloy_count: int | None = None
    alloy_host: str | None = None
    pre_converge: bool = False
    molecules: tuple[str, ...] = ()
    n_molecules: int = 0
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    seed: int = 0
    shard: tuple[int, int] = (0, 1)
    max_attempts: int = 3
    """Tries per slot when the labeller refuses a frame (SCF not converged); not part of the
    job's identity, so a rerun may raise it."""
    each_frame: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "molecules", tuple(self.molecules))
        object.__setattr__(self, "shard", tuple(int(v) for v in self.shard))
        problems = []
        if not self.stddev_A >= 0:  # also catches NaN
            problems.append(f"--stddev-A must be 0 or more, got {self.stddev_A}")
        if self.count < 1:
            problems.append(f"--count must be at least 1, got {self.count}")
        if self.max_attempts < 1:
            problems.append(f"--max-attempts must be at least 1, got {self.max_attempts}")
        k, n = self.shard
        if n < 1 or not 0 <= k < n:
            problems.append(f"shard {k}/{n}: need 0 <= K < N")
        problems += self._alloy_problems()
        if bool(self.molecules) != (self.n_molecules > 0):
            problems.append(
                "--molecule and --n-molecules go together (a molecule and at least one of it)"
                if self.n_molecules >= 0
                else f"--n-molecules must not be negative, got {self.n_molecules}"
            )
        if problems:
            raise ScalmsError("; ".join(problems))

    def _alloy_problems(self) -> list[str]:
        if self.alloy is None:
            if self.alloy_fraction is not None or self.alloy_count is not None:
                return ["--fraction and --count-alloy need --alloy ELEMENT"]
            return []
        problems = [
            f"unknown element '{symbol}'"
            for symbol in (self.alloy, self.alloy_host)
            if symbol is not None and symbol not in atomic_numbers
        ]
        if (self.alloy_fraction is None) == (self.alloy_count is None):
            problems.append("--alloy needs either --fraction or --count-alloy (one of them)")
        elif self.alloy_fraction is not None and not 0 < self.alloy_fraction <= 1:
            problems.append(f"--fraction must lie in (0, 1], got {self.alloy_fraction}")
        elif self.alloy_count is not None and self.alloy_count < 1:
            problems.append(f"--count-alloy must be at least 1, got {self.alloy_count}")
        return problems

    @property
    def relaxes(self) -> bool:
        """Pre-convergence runs when asked for, and always after alloying (thesis 3.3)."""
        return self.pre_converge or self.alloy is not None

    @property
    def config_type(self) -> str:
        return "rattle_molecules" if self.molecules else "rattle"

    def slots(self) -> list[int]:
        """The slots this job computes: those of its shard, in order."""
        k, n = self.shard
        return list(range(k, self.count, n))

    @cached_property
    def input_sha256(self) -> str:
        """The input file's content hash: a resumed job must rattle the same structures."""
        digest = hashlib.sha256()
        with open(self.input, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a child's task file and the reference file's sidecar."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["input"] = str(self.input)
        data["molecules"] = list(self.molecules)
        data["shard"] = list(self.shard)
        data["placement"] = asdict(self.placement)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RattleSpec:
        data = dict(data)
        data["placement"] = PlacementSettings(**data.get("placement", {}))
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to continue an existing reference file: everything that
        shapes a slot's geometry. Not ``count`` (more slots may be added later: the first ones
        do not change), not ``max_attempts``, and the input by content, not by path."""
        data = self.to_dict()
        for key in ("count", "max_attempts", "input"):
            data.pop(key)
        data["input_sha256"] = self.input_sha256
        data["placement"].pop("seed")
        if not self.molecules:
            data.pop("placement")
        if not self.each_frame:
            # Absent, not False: reference files written before the mode existed continue.
            data.pop("each_frame")
        return data


class InputFrames(Sequence[Atoms]):
    """The frames of INPUT: any file ASE reads, or a scalms H5MD trajectory (read frame by
    frame, so a long trajectory is not loaded whole to pick one frame)."""

    def __init__(self, path: Path | str):
        from scalms.io.trajectory import is_hdf5

        self.path = Path(path)
        if not self.path.is_file():
            raise ScalmsError(f"input structure not found: {self.path}")
        self._frames: list[Atoms] | None = None
        self._cache: dict[int, Atoms] = {}
        if is_hdf5(self.path):
            from scalms.io.trajectory import trajectory_info

            self._n = trajectory_info(self.path).n_frames
            if self._n == 0:
                raise ScalmsError(f"{self.path} holds no frames")
        else:
            from scalms.io.structures import read_frames

            self._frames = read_frames(self.path)
            self._n = len(self._frames)

    def __len__(self) -> int:
        return self._n

    @property
    def same_atoms(self) -> bool:
        """Every frame holds the same atoms: a scalms trajectory stores its species once."""
        return self._frames is None

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if self._frames is not None:
            return self._frames[index]
        index = range(self._n)[index]
        if index not in self._cache:
            from scalms.io.trajectory import read_trajectory

            self._cache[index] = read_trajectory(self.path, slice(index, index + 1)).atoms(0)
        return self._cache[index]


def slot_streams(spec: RattleSpec, slot: int, attempt: int) -> dict[str, np.random.Generator]:
    """Independent random streams of one try at one slot, from (seed, slot, attempt) only."""
    root = np.random.SeedSequence([spec.seed, slot, attempt])
    names = ("frame", "alloy", "rattle", "molecules")
    return {
        name: np.random.default_rng(child)
        for name, child in zip(names, root.spawn(len(names)), strict=True)
    }


def pick_frame(n_frames: int, rng: np.random.Generator) -> int:
    """A frame index: a random one of a trajectory, 0 for a single structure."""
    return int(rng.integers(n_frames)) if n_frames > 1 else 0


def resolve_count(input: Path | str, count: int | None, each_frame: bool) -> int:
    """The job's ``count`` when --count may be left out: as given, else every frame of INPUT
    with ``each_frame``, else :data:`DEFAULT_COUNT`. Reads INPUT only in the second case."""
    if count is not None:
        return count
    return len(InputFrames(input)) if each_frame else DEFAULT_COUNT


def check_frame_count(spec: RattleSpec, n_frames: int) -> None:
    """With ``each_frame``, refuse a ``count`` beyond the frames of INPUT, in one line."""
    if spec.each_frame and spec.count > n_frames:
        raise ScalmsError(
            f"--count {spec.count} with --each-frame: {spec.input} holds only {n_frames} "
            f"frame(s), and slot j labels frame j; use --count {n_frames} or less (or leave it "
            f"out: every frame)"
        )


def frame_index(spec: RattleSpec, n_frames: int, slot: int, rng: np.random.Generator) -> int:
    """The frame of INPUT that ``slot`` starts from: the slot itself with ``each_frame``, else
    :func:`pick_frame`'s draw."""
    if spec.each_frame:
        check_frame_count(spec, n_frames)
        return slot
    return pick_frame(n_frames, rng)


def alloy_host(atoms: Atoms, spec: RattleSpec) -> str:
    """The element the alloy replaces: as given, else the frame's most common element other
    than the alloy element (ties: the lighter one)."""
    if spec.alloy_host is not None:
        return spec.alloy_host
    symbols = [s for s in atoms.get_chemical_symbols() if s != spec.alloy]
    if not symbols:
        raise ScalmsError(f"{spec.input} holds only {spec.alloy}: nothing to alloy")
    counts = {s: symbols.count(s) for s in set(symbols)}
    return min(counts, key=lambda s: (-counts[s], atomic_numbers[s]))


def composition(spec: RattleSpec, frames: Sequence[Atoms]) -> Atoms:
    """Slot 0's structure before relaxing and rattling, with molecules: every element the job
    will label, for the labeller's check before any work.

    With ``each_frame`` the frames may be several structures of different elements, so two
    atoms of each element that slots 1 .. count-1 hold and slot 0 lacks are added, 5 Å apart
    beyond the structure: one structure names every element the labeller must know (basis
    sets, POTCARs, a model's elements), and two atoms (not one) keep the electron count's
    parity, from which a DFT labeller chooses its spin, as slot 0's own. Every slot of the job
    counts, whatever the shard, so the shards of one job accept or refuse INPUT alike.
    """
    check_frame_count(spec, len(frames))
    streams = slot_streams(spec, 0, 0)
    atoms = _alloyed(spec, frames, streams)[0]
    atoms = _with_molecules(spec, atoms, streams["molecules"])
    if not spec.each_frame:
        return atoms
    scanned = 1 if getattr(frames, "same_atoms", False) else spec.count
    present = set(atoms.numbers)
    missing = sorted({int(z) for i in range(scanned) for z in frames[i].numbers} - present)
    if missing:
        start = atoms.positions[:, 0].max() + 5.0
        extra = [z for z in missing for _ in range(2)]
        positions = [[start + 5.0 * i, 0.0, 0.0] for i in range(len(extra))]
        atoms.extend(Atoms(numbers=extra, positions=positions))
    return atoms


def _alloyed(spec, frames, streams, slot: int = 0) -> tuple[Atoms, int]:
    from scalms.geometry.alloy import substitute

    index = frame_index(spec, len(frames), slot, streams["frame"])
    atoms = frames[index].copy()
    atoms.calc = None
    if spec.alloy is not None:
        atoms = substitute(
            atoms,
            spec.alloy,
            fraction=spec.alloy_fraction,
            count=spec.alloy_count,
            host=alloy_host(atoms, spec),
            seed=int(streams["alloy"].integers(2**63)),
        )
    return atoms, index


def _with_molecules(spec: RattleSpec, particle: Atoms, rng: np.random.Generator) -> Atoms:
    if not spec.molecules:
        return particle
    from scalms.geometry.adsorbates import load_molecule, place_molecules

    settings = replace(spec.placement, seed=int(rng.integers(2**63)))
    molecules = [load_molecule(m) for m in spec.molecules]
    return place_molecules(particle, molecules, spec.n_molecules, settings).atoms


def pre_converge(atoms: Atoms, calculator) -> Atoms:
    """A copy of ``atoms`` relaxed with ASE's BFGS to max |F| < 0.5 eV/Å, 20 steps at most (the
    thesis's setting: only the largest forces are taken off, the structure stays near INPUT)."""
    from ase.optimize import BFGS

    relaxed = atoms.copy()
    relaxed.calc = calculator
    BFGS(relaxed, logfile=None).run(fmax=PRE_CONVERGE_FMAX_EV_PER_A, steps=PRE_CONVERGE_MAX_STEPS)
    relaxed.calc = None
    return relaxed


@dataclass
class Candidate:
    """One try at one slot: the structure to label and where it came from."""

    atoms: Atoms
    slot: int
    attempt: int
    source_frame: int


def make_candidate(
    spec: RattleSpec,
    frames: Sequence[Atoms],
    slot: int,
    attempt: int,
    relax_calculator=None,
    relaxed: dict | None = None,
) -> Candidate:
    """The structure of try ``attempt`` at ``slot`` (see the module docstring for the steps).

    ``relax_calculator`` pre-converges (needed when ``spec.relaxes``); ``relaxed`` is an optional
    cache of relaxed input frames (by frame index, unalloyed jobs only), so slots that start
    from the same frame relax it once per process (BFGS is deterministic: the cache changes no
    geometry).
    """
    streams = slot_streams(spec, slot, attempt)
    atoms, index = _alloyed(spec, frames, streams, slot)
    if spec.relaxes:
        if relax_calculator is None:
            raise ValueError("pre-convergence needs a calculator")
        # Only an unalloyed frame recurs across slots; alloyed sites differ slot by slot.
        cache = relaxed if relaxed is not None and spec.alloy is None else None
        if cache is not None and index in cache:
            atoms = cache[index].copy()
        else:
            atoms = pre_converge(atoms, relax_calculator)
            if cache is not None:
                cache[index] = atoms.copy()
    atoms.rattle(stdev=spec.stddev_A, rng=streams["rattle"])
    atoms = _with_molecules(spec, atoms, streams["molecules"])
    return Candidate(atoms, slot, attempt, index)
