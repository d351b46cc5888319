"""Random substitutional alloys: an exact number of host atoms swapped for a solute, seeded."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from scalms.errors import ScalmsError


def solute_count(n_host: int, fraction: float | None = None, count: int | None = None) -> int:
    """Host atoms to replace: ``count`` as given, or ``fraction`` of ``n_host`` rounded to the
    nearest whole atom (at least one when the fraction is positive)."""
    if (fraction is None) == (count is None):
        raise ScalmsError("give either a solute fraction or a solute count, not both or neither")
    if count is not None:
        if not 0 <= count <= n_host:
            raise ScalmsError(f"cannot replace {count} of {n_host} host atoms")
        return count
    if not 0 <= fraction <= 1:
        raise ScalmsError(f"the solute fraction must lie in [0, 1], got {fraction}")
    return max(1, round(fraction * n_host)) if fraction > 0 else 0


def substitute(
    atoms: Atoms,
    solute: str,
    *,
    fraction: float | None = None,
    count: int | None = None,
    host: str = "Ga",
    seed: int = 0,
) -> Atoms:
    """A copy of ``atoms`` with randomly chosen ``host`` atoms replaced by ``solute``.

    Exactly :func:`solute_count` atoms change; the same seed picks the same sites. Positions,
    cell, periodicity and every other atom stay as they are.
    """
    for symbol in (solute, host):
        if symbol not in atomic_numbers:
            raise ScalmsError(f"unknown element '{symbol}'")
    hosts = np.flatnonzero(atoms.numbers == atomic_numbers[host])
    if len(hosts) == 0:
        raise ScalmsError(f"the structure has no {host} atoms to replace")
    n = solute_count(len(hosts), fraction, count)
    rng = np.random.default_rng(seed)
    alloy = atoms.copy()
    alloy.numbers[rng.choice(hosts, size=n, replace=False)] = atomic_numbers[solute]
    alloy.set_masses()  # the solute's own mass, not the host's
    return alloy


def formula_label(atoms: Atoms) -> str:
    """A file-friendly name in the thesis's style: host first, then the rest (Ga54Pt, Ga144Pt3)."""
    symbols = atoms.get_chemical_symbols()
    order = sorted(set(symbols), key=lambda s: (s != "Ga", s))
    return "".join(f"{s}{symbols.count(s) if symbols.count(s) > 1 else ''}" for s in order)
