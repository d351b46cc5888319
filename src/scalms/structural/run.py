"""``scalms analyze cluster`` end to end: select, describe (cached), analyse, write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.files import WorkDirLock
from scalms.models.loading import check_descriptors
from scalms.structural.cache import DescriptorCache
from scalms.structural.cluster import ClusterSettings, analyse
from scalms.structural.descriptors import compute_descriptors
from scalms.structural.outputs import ClusterOutput, write_outputs
from scalms.structural.selection import FrameSelection, select_runs
from scalms.workers.fanout import Reporter


def cluster_trajectories(
    paths: Sequence[Path | str],
    entry: ModelEntry,
    out: Path | str,
    *,
    settings: ClusterSettings | None = None,
    selection: FrameSelection | None = None,
    models: Sequence[str] | None = None,
    structures: Sequence[str] | None = None,
    cache: DescriptorCache | None = None,
    use_cache: bool = True,
    device: str = "auto",
    plot: bool = True,
    reporter: Reporter | None = None,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> ClusterOutput:
    """The whole analysis of ``paths`` with model ``entry``, written to the folder ``out``."""
    settings = settings or ClusterSettings()
    selection = selection or FrameSelection()
    check_descriptors(entry)  # before reading anything: a model without descriptors says so
    runs = select_runs(paths, selection, models, structures)
    total = sum(run.n_atom_frames for run in runs)
    if settings.n_clusters > total:
        raise ScalmsError(
            f"--n-clusters {settings.n_clusters} is more than the {total} atom-frames selected; "
            "lower it or select more frames"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with WorkDirLock(out, "analyze cluster"):
        described = compute_descriptors(
            runs,
            entry,
            out / "work",
            cache=cache,
            use_cache=use_cache,
            device=device,
            seed=settings.seed,
            reporter=reporter,
            timeout_s=timeout_s,
        )
        analysis = analyse(described, settings, selection, progress)
        return write_outputs(analysis, out, plot=plot, progress=progress)
