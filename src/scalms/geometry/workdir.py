"""The output folder of ``scalms geometry nanoparticle|bulk|resume``: its layout, and the files
written into it, each atomically (a kill leaves the old file or the new one, never half)::

    OUT/
      geometry.json            what was asked and what was built; read by resume
      crystals/<label>.extxyz  the cut crystals (with their solutes when added before melting)
      melt/                    the MD working dir of the melt (``scalms dynamics`` layout)
      <label>.extxyz           the final structures: the last melted frame, solutes added after
      particles.csv            label, target and actual atom count, composition, melt checks
      analysis/                PDF of each particle, crystal against melted
      report.html
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from scalms.errors import ScalmsError
from scalms.files import atomic_path, atomic_write_json, read_json
from scalms.geometry.plan import TABLE_HEADER, Particle, table_rows

MANIFEST = "geometry.json"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def crystals(self) -> Path:
        return self.root / "crystals"

    @property
    def melt(self) -> Path:
        return self.root / "melt"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def table(self) -> Path:
        return self.root / "particles.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def crystal(self, label: str) -> Path:
        return self.crystals / f"{label}.extxyz"

    def final(self, label: str) -> Path:
        return self.root / f"{label}.extxyz"

    def clear(self) -> None:
        """Remove what an earlier run left in the sub-folders (for --overwrite)."""
        for sub in (self.crystals, self.melt, self.analysis):
            shutil.rmtree(sub, ignore_errors=True)


def write_structure(path: Path, atoms: Atoms) -> Path:
    """``atoms`` as extended XYZ at ``path``, atomically."""
    from ase.io import write

    with atomic_path(path) as tmp:
        write(tmp, atoms, format="extxyz")
    return path


def write_manifest(layout: Layout, manifest: dict[str, Any]) -> None:
    from scalms import __version__

    manifest.setdefault("scalms_version", __version__)
    atomic_write_json(layout.manifest, manifest)


def read_manifest(layout: Layout) -> dict[str, Any]:
    if not layout.manifest.is_file():
        raise ScalmsError(
            f"{layout.root} is not a geometry run (no {MANIFEST}); start one with "
            "`scalms geometry nanoparticle` or `scalms geometry bulk`"
        )
    return read_json(
        layout.manifest,
        "geometry manifest",
        fix="it cannot be resumed: start the run again with --overwrite",
    )


def write_table(layout: Layout, particles: list[Particle]) -> Path:
    with atomic_path(layout.table) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_HEADER)
        writer.writerows(table_rows(particles))
    return layout.table
