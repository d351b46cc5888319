"""Helpers the analyses share: choosing atoms by element, and moving arrays onto torch."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

Element = str | int
"""An element as a symbol ("Pt") or an atomic number (78)."""
ALL_ATOMS = "all"
"""The selection of every atom, where an element is asked for."""


def element_number(element: Element) -> int:
    """The atomic number of a symbol or number; ValueError for anything that is not an element."""
    if isinstance(element, bool):
        raise ValueError(f"not an element: {element!r}")
    if isinstance(element, int | np.integer):
        z = int(element)
        if not 0 < z < len(chemical_symbols):
            raise ValueError(f"no element has atomic number {z}")
        return z
    if isinstance(element, str):
        text = element.strip()
        if text.isdigit():
            return element_number(int(text))
        if text in atomic_numbers and text != "X":
            return atomic_numbers[text]
        raise ValueError(f"unknown element symbol {element!r} (symbols are case-sensitive: 'Pt')")
    raise ValueError(f"not an element: {element!r}")


def present(numbers: np.ndarray) -> str:
    """The elements in `numbers`, for error messages: "Ga, Pt"."""
    return ", ".join(chemical_symbols[z] for z in np.unique(numbers))


def select_atoms(numbers: np.ndarray, traced: Element | np.ndarray) -> tuple[np.ndarray, str]:
    """Indices of the atoms `traced` names and a label for them.

    `traced` is an element (symbol or atomic number), "all" (every atom, label "all") or an (N,)
    boolean mask; a mask's label joins the symbols it covers ("Ga+Pt").
    """
    numbers = np.asarray(numbers)
    if isinstance(traced, str) and traced.strip() == ALL_ATOMS:
        return np.arange(numbers.shape[0]), ALL_ATOMS
    if isinstance(traced, np.ndarray | list | tuple):
        mask = np.asarray(traced)
        if mask.dtype != bool or mask.shape != numbers.shape:
            raise ValueError(
                f"a mask of traced atoms must be boolean with one entry per atom "
                f"({numbers.shape[0]}), got dtype {mask.dtype} and shape {mask.shape}"
            )
        indices = np.flatnonzero(mask)
        if indices.size == 0:
            raise ValueError("the mask of traced atoms selects no atom")
        label = "+".join(chemical_symbols[z] for z in np.unique(numbers[indices]))
        return indices, label
    z = element_number(traced)
    indices = np.flatnonzero(numbers == z)
    if indices.size == 0:
        raise ValueError(
            f"no {chemical_symbols[z]} atoms in this structure; "
            f"elements present: {present(numbers)}"
        )
    return indices, chemical_symbols[z]


def masses_of(numbers: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """(N,) masses in amu: `masses` as given, or the standard masses of the elements."""
    if masses is None:
        return atomic_masses[np.asarray(numbers, dtype=int)]
    return np.asarray(masses, dtype=np.float64)


def frames_array(values: Any, name: str, ndim: int = 3) -> np.ndarray:
    """`values` as a numpy array of `ndim` dimensions with xyz last, or a ValueError naming it."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != ndim or array.shape[-1] != 3:
        shape = "(frames, atoms, 3)" if ndim == 3 else "(frames, 3)"
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array
