"""The layout of an MD working directory, and its manifest: everything a resume needs.

```
WORKDIR/
  dynamics.json                 settings, structures, models, analyses: written once, read by resume
  structures/<label>.extxyz     the starting structure of each run, copied in
  trajectories/<model>/<label>.h5md   one H5MD file per (model, structure), written as frames come
  checkpoints/<model>/          batch plan, batch states (TorchSim) or per-structure states (ASE)
  runs/<model>/                 the child's task file and log
  MD_dynamics_results.h5        the consolidated results file analyses and plots read
  analysis/                     analysis records, figures and tables
  report.html
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalms.errors import ScalmsError
from scalms.files import atomic_write_json, read_json

if TYPE_CHECKING:
    from scalms.io.trajectory import TrajectoryInfo

MANIFEST = "dynamics.json"
DEFAULT_DATA_FILE = "MD_dynamics_results.h5"


@dataclass(frozen=True)
class WorkDir:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def structures(self) -> Path:
        return self.root / "structures"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def structure(self, label: str) -> Path:
        return self.structures / f"{label}.extxyz"

    def trajectory(self, model: str, label: str) -> Path:
        return self.root / "trajectories" / model / f"{label}.h5md"

    def checkpoints(self, model: str) -> Path:
        return self.root / "checkpoints" / model

    def results(self, manifest: dict[str, Any]) -> Path:
        return self.root / manifest.get("data_file", DEFAULT_DATA_FILE)

    def write_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write ``manifest`` with the scalms version and the start time added; return what was
        written, so that the report made in the same command shows them too."""
        from scalms import __version__

        manifest = {"scalms_version": __version__, **manifest}
        manifest.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
        atomic_write_json(self.manifest, manifest)
        return manifest

    def read_manifest(self) -> dict[str, Any]:
        if not self.root.is_dir():
            raise ScalmsError(f"no such working directory: {self.root}")
        if not self.manifest.is_file():
            raise ScalmsError(
                f"{self.root} is not an MD working directory (no {MANIFEST}); "
                "start one with `scalms dynamics run`"
            )
        return read_json(
            self.manifest,
            "MD manifest",
            "it cannot be resumed; start the run again with `scalms dynamics run ... --overwrite`",
        )


def readable_info(path: Path) -> TrajectoryInfo | None:
    """What ``path`` holds; None when it is missing or unreadable (e.g. a run killed before
    its file's header reached the disk: nothing in it can be continued)."""
    if not path.exists():
        return None
    from scalms.io.trajectory import TrajectoryError, trajectory_info

    try:
        return trajectory_info(path)
    except (TrajectoryError, KeyError, OSError):  # a file cut off while its groups were made
        return None
