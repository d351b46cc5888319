"""Bulk crystals of the elements scalms builds particles from, and their surface energies.

Gallium's stable solid, alpha-Ga, is base-centred orthorhombic (space group Cmce, No. 64,
Strukturbericht A11, 8 atoms in the conventional cell on Wyckoff site 8f). It is built here as
that crystal, not approximated by a cubic lattice: ASE's ``wulff_construction`` only knows cubic
and hexagonal lattices, so :mod:`scalms.geometry.wulff` cuts the particle itself (ASE's
``crystal`` applies the space group to the 8f site). The fcc metals (the solutes Pt, Pd, Ag, Au)
come from ASE's ``bulk`` and its reference lattice constants.

Surface energies live in ``data/surface_energies.json`` with their source per element; a user
can pass their own (for example Crystalium's, from the Materials Project) as a JSON or YAML file
mapping Miller indices to J/m².
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ase import Atoms

from scalms.errors import ScalmsError

SURFACE_ENERGIES = Path(__file__).with_name("data") / "surface_energies.json"

ALPHA_GA_CELL_A = (4.5192, 7.6586, 4.5258)
"""Experimental alpha-Ga lattice constants a, b, c (Å) of the A11 prototype (AFLOW library of
crystallographic prototypes, A_oC8_64_f-001, from ICSD 43388). With the site below they give
5.91 g/cm³ and the known neighbour shell: one dimer partner at 2.48 Å, then 2 x 2.69, 2 x 2.73
and 2 x 2.79 Å (tested)."""
ALPHA_GA_SITE = (0.0, 0.1549, 0.0810)
"""Fractional coordinates of the 8f site (0, y, z), same source."""


@dataclass(frozen=True)
class SurfaceEnergies:
    """Surface energies (J/m²) of an element's facets, and where the numbers come from."""

    element: str
    energies_J_per_m2: dict[tuple[int, int, int], float]
    source: str

    def describe(self) -> str:
        facets = ", ".join(
            f"({''.join(str(i) for i in hkl)}) {e:.3f}" for hkl, e in self.energies_J_per_m2.items()
        )
        return f"{self.element}: {facets} J/m² [{self.source}]"


def bulk_crystal(element: str) -> Atoms:
    """The conventional cell of ``element``'s stable solid (alpha-Ga, or fcc for the solutes)."""
    if element == "Ga":
        from ase.spacegroup import crystal

        return crystal("Ga", [ALPHA_GA_SITE], spacegroup=64, cellpar=[*ALPHA_GA_CELL_A, 90, 90, 90])
    from ase.data import atomic_numbers, reference_states

    state = reference_states[atomic_numbers.get(element, 0)] or {}
    if state.get("symmetry") in ("fcc", "bcc", "sc"):
        from ase.build import bulk

        return bulk(element, cubic=True)
    raise ScalmsError(
        f"no bulk crystal for {element}: scalms builds alpha-Ga and cubic metals (Pt, Pd, Ag, "
        "Au, ...); pass your own conventional cell with --bulk FILE"
    )


def parse_miller(text: str) -> tuple[int, int, int]:
    """Miller indices written "100", "1-10", "1,1,0" or "1 1 0"."""
    cleaned = text.strip().strip("()[]")
    if any(sep in cleaned for sep in ", "):
        parts = cleaned.replace(",", " ").split()
    else:  # "1-10": a minus sign belongs to the digit after it
        parts, sign = [], ""
        for char in cleaned:
            if char == "-":
                sign = "-"
            else:
                parts.append(sign + char)
                sign = ""
    try:
        indices = tuple(int(p) for p in parts)
    except ValueError:
        indices = ()
    if len(indices) != 3 or indices == (0, 0, 0):
        raise ScalmsError(f"not Miller indices: {text!r}; write them like 100, 1-10 or 1,1,0")
    return indices  # type: ignore[return-value]


def _from_mapping(element: str, data: dict, source: str) -> SurfaceEnergies:
    energies = {}
    for key, value in data.items():
        try:
            energy = float(value)
        except (TypeError, ValueError):
            raise ScalmsError(
                f"surface energy of {element} ({key}) is not a number: {value!r}"
            ) from None
        if energy <= 0:
            raise ScalmsError(f"surface energy of {element} ({key}) must be positive: {energy}")
        energies[parse_miller(str(key))] = energy
    if not energies:
        raise ScalmsError(f"no surface energies for {element} in {source}")
    return SurfaceEnergies(element, energies, source)


@cache
def _shipped() -> dict:
    return json.loads(SURFACE_ENERGIES.read_text())


def shipped_surface_energies(element: str) -> SurfaceEnergies:
    """The surface energies scalms ships for ``element``."""
    table = _shipped()["elements"]
    if element not in table:
        raise ScalmsError(
            f"no surface energies shipped for {element} (have {', '.join(table)}); "
            "pass your own with --surface-energies FILE"
        )
    entry = table[element]
    return _from_mapping(element, entry["J_per_m2"], entry["source"])


def read_surface_energies(path: Path, element: str) -> SurfaceEnergies:
    """Surface energies from a user's JSON or YAML file: ``{"100": 0.5, "010": 0.6, ...}``,
    or the same under the element's symbol."""
    if not path.is_file():
        raise ScalmsError(f"surface energy file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # both parsers raise their own types; all mean unreadable
        raise ScalmsError(f"cannot read {path}: {err}") from None
    if isinstance(data, dict) and element in data:
        data = data[element]
    if not isinstance(data, dict):
        raise ScalmsError(f"{path} must map Miller indices to J/m², like {{'100': 0.55}}")
    return _from_mapping(element, data, str(path))
