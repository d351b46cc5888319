"""``scalms analyze cluster``: descriptors of trajectories reduced, clustered and compared.

The steps: select frames (`selection`), get per-atom descriptors (`descriptors`, cached), pool
the atom-frames of every run, reduce them (PCA and/or UMAP) and cluster them (bisecting
k-means) in one shared space, so that runs with different solutes are compared in the same map.
Each label is then read through physics: its elements, coordination, depth below the adaptive
surface, distance from the centre and PDF. The numbers come from `scalms.analysis.clustering`;
this module only composes them and writes the labels file, tables, figures and report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from ase.data import chemical_symbols

from scalms.analysis._common import element_number
from scalms.analysis.results import LabelSummary, PairDistribution, SolutePlacement
from scalms.errors import ScalmsError
from scalms.structural.descriptors import DescriptorSet
from scalms.structural.selection import FrameSelection, SelectedRun

REDUCER_CHOICES = {"pca": ("pca",), "umap": ("umap",), "both": ("pca", "umap")}


@dataclass(frozen=True)
class ClusterSettings:
    """How descriptors are reduced and clustered, and how labels are read.

    ``coordination_cutoff_A``: neighbours closer than this count for the coordination number
    (3.7 Å: near the first minimum of liquid Ga's g(r)). ``n_surface``: atoms that define the
    adaptive surface (as `scalms analyze trace`). ``host``: the element solutes sit in.
    ``map_points``: atom-frames drawn in the 3D map (a seeded subsample beyond).
    """

    n_clusters: int = 4
    dim: int = 10
    reducers: tuple[str, ...] = ("pca", "umap")
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    seed: int = 0
    coordination_cutoff_A: float = 3.7
    n_surface: int = 5
    host: str = "Ga"
    map_points: int = 20_000
    pdf_r_max_A: float = 8.0

    def __post_init__(self) -> None:
        problems = []
        if self.n_clusters < 2:
            problems.append(f"--n-clusters must be at least 2, got {self.n_clusters}")
        if self.dim < 1:
            problems.append(f"--dim must be at least 1, got {self.dim}")
        if not self.reducers or set(self.reducers) - {"pca", "umap"}:
            problems.append(f"--reducer must be pca, umap or both, got {self.reducers}")
        if self.umap_neighbors < 2 or self.umap_min_dist < 0:
            problems.append("--umap-neighbors must be >= 2 and --umap-min-dist >= 0")
        if self.coordination_cutoff_A <= 0 or self.n_surface < 1:
            problems.append("--coordination-cutoff-A and --surface-atoms must be > 0")
        if self.map_points < 10:
            problems.append(f"--map-points must be at least 10, got {self.map_points}")
        if self.host not in chemical_symbols[1:]:
            problems.append(f"--host '{self.host}' is not an element symbol")
        if problems:
            raise ScalmsError("; ".join(problems))


@dataclass(frozen=True)
class Pooled:
    """The atom-frames of every run, one row each: runs in order, each frame-major."""

    descriptors: np.ndarray  # (M, W)
    symbols: np.ndarray  # (M,)
    sources: np.ndarray  # (M,) run names
    coordination: np.ndarray  # (M,)
    depth_A: np.ndarray  # (M,) below the adaptive surface, positive inside
    distance_A: np.ndarray  # (M,) from the frame's centre of mass
    slices: dict[str, slice]  # run name -> its rows

    @property
    def n_points(self) -> int:
        return len(self.symbols)


@dataclass
class ReducerResult:
    """One reducer's embedding, labels and what the labels mean."""

    reducer: str
    embedding: np.ndarray  # (M, dim)
    labels: np.ndarray  # (M,), 0 nearest the surface
    summaries: list[LabelSummary]
    surface_label: int | None
    bulk_label: int | None
    placements: list[SolutePlacement]
    reduce_s: float
    cluster_s: float


@dataclass
class ClusterAnalysis:
    """Everything computed, in memory: what the files and figures are made from."""

    settings: ClusterSettings
    selection: FrameSelection
    descriptors: DescriptorSet
    pooled: Pooled
    results: dict[str, ReducerResult]
    map_indices: np.ndarray
    map_coords: np.ndarray
    map_s: float
    pdfs: dict[str, dict[str, dict[str, PairDistribution]]] = field(default_factory=dict)
    """reducer -> run -> "label k" -> the PDF of label k's atoms (all atoms as neighbours)."""

    @property
    def runs(self) -> list[SelectedRun]:
        return [d.run for d in self.descriptors.runs]


def pool(described: DescriptorSet, settings: ClusterSettings) -> Pooled:
    """Flatten every run's descriptors and per-atom profiles into one row per atom-frame."""
    from scalms.analysis.clustering import (
        coordination_numbers,
        depth_below_surface,
        distance_from_centre,
    )

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "sym", "src", "cn", "d", "r")}
    slices = {}
    start = 0
    for item in described.runs:
        traj = item.run.trajectory
        n_frames, n_atoms = traj.n_frames, traj.n_atoms
        n_host = int(np.count_nonzero(traj.numbers == element_number(settings.host)))
        # the surface is made of host atoms where there are any, of all atoms otherwise
        surface = (settings.host,) if n_host else ()
        n_surface = min(settings.n_surface, n_host or n_atoms)
        parts["x"].append(item.values.reshape(n_frames * n_atoms, -1))
        parts["sym"].append(np.tile(np.asarray(traj.symbols), n_frames))
        parts["src"].append(np.full(n_frames * n_atoms, item.run.name))
        parts["cn"].append(
            coordination_numbers(traj.positions, settings.coordination_cutoff_A).reshape(-1)
        )
        depth = depth_below_surface(
            traj.positions,
            traj.masses,
            traj.numbers,
            n_surface=n_surface,
            surface_elements=surface,
        )
        parts["d"].append(depth.reshape(-1))
        parts["r"].append(distance_from_centre(traj.positions, traj.masses).reshape(-1))
        slices[item.run.name] = slice(start, start + n_frames * n_atoms)
        start += n_frames * n_atoms
    return Pooled(
        descriptors=np.concatenate(parts["x"]),
        symbols=np.concatenate(parts["sym"]),
        sources=np.concatenate(parts["src"]),
        coordination=np.concatenate(parts["cn"]),
        depth_A=np.concatenate(parts["d"]),
        distance_A=np.concatenate(parts["r"]),
        slices=slices,
    )


def _neighbour_readings(
    runs: list[SelectedRun],
    pooled: Pooled,
    coordinate: np.ndarray,
    surface_points: np.ndarray,
    settings: ClusterSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Per solute atom-frame, the mean surface coordinate of its host neighbours and the
    fraction of them labelled surface, (M,) each (NaN for host atoms)."""
    from scalms.analysis.clustering import neighbour_average

    mean_coordinate = np.full(pooled.n_points, np.nan)
    surface_fraction = np.full(pooled.n_points, np.nan)
    for run in runs:
        traj = run.trajectory
        rows = pooled.slices[run.name]
        shape = (traj.n_frames, traj.n_atoms)
        host = traj.numbers == element_number(settings.host)
        for values, into in ((coordinate, mean_coordinate), (surface_points, surface_fraction)):
            into[rows] = neighbour_average(
                values[rows].reshape(shape),
                traj.positions,
                settings.coordination_cutoff_A,
                centres=~host,
                neighbours=host,
            ).reshape(-1)
    return mean_coordinate, surface_fraction


def _reduce_and_cluster(
    runs: list[SelectedRun], pooled: Pooled, reducer: str, settings: ClusterSettings
) -> ReducerResult:
    from scalms.analysis.clustering import (
        bisecting_kmeans,
        order_labels,
        place_solutes,
        reduce_descriptors,
        summarise_labels,
        surface_and_bulk_labels,
        surface_coordinate,
    )

    started = time.perf_counter()
    try:  # the pure functions say what is wrong with a ValueError: here it is the user's input
        embedding = reduce_descriptors(
            pooled.descriptors,
            reducer,
            settings.dim,
            seed=settings.seed,
            umap_neighbors=settings.umap_neighbors,
            umap_min_dist=settings.umap_min_dist,
        )
        reduce_s = time.perf_counter() - started
        started = time.perf_counter()
        labels = bisecting_kmeans(embedding, settings.n_clusters, seed=settings.seed)
    except ValueError as err:
        raise ScalmsError(f"{reducer}: {err}") from None
    labels = order_labels(labels, pooled.depth_A)
    cluster_s = time.perf_counter() - started
    summaries = summarise_labels(
        labels, pooled.symbols, pooled.coordination, pooled.depth_A, pooled.distance_A
    )
    try:
        surface, bulk = surface_and_bulk_labels(summaries, settings.host)
    except ValueError:  # fewer than two host clusters: no surface/bulk axis to place solutes on
        surface = bulk = None
    placements = []
    if surface is not None and bulk is not None:
        axis = {"surface_label": surface, "bulk_label": bulk, "host": settings.host}
        coordinate = surface_coordinate(embedding, labels, pooled.symbols, **axis)
        neighbour_coordinate, neighbour_surface = _neighbour_readings(
            runs, pooled, coordinate, (labels == surface).astype(float), settings
        )
        placements = place_solutes(
            embedding,
            labels,
            pooled.symbols,
            pooled.sources,
            pooled.depth_A,
            neighbour_coordinate,
            neighbour_surface,
            **axis,
        )
    return ReducerResult(
        reducer, embedding, labels, summaries, surface, bulk, placements, reduce_s, cluster_s
    )


def _label_pdfs(
    analysis_runs: list[SelectedRun], pooled: Pooled, labels: np.ndarray, r_max_A: float
) -> dict[str, dict[str, PairDistribution]]:
    """Per run, the PDF of each label's atoms (labels change per frame) against all atoms."""
    from scalms.analysis.pdf import pair_distribution

    pdfs = {}
    for run in analysis_runs:
        traj = run.trajectory
        run_labels = labels[pooled.slices[run.name]].reshape(traj.n_frames, traj.n_atoms)
        curves = {}
        for label in np.unique(run_labels):
            mask = run_labels == label
            if mask.sum() < 1 or traj.n_atoms < 2:
                continue
            curves[f"label {label}"] = pair_distribution(
                traj.positions,
                mask_a=mask,
                r_max_A=r_max_A,
                n_bins=160,
                label=f"label {label}",
                cell=traj.cell,
                pbc=traj.pbc,
            )
        pdfs[run.name] = curves
    return pdfs


def analyse(
    described: DescriptorSet,
    settings: ClusterSettings,
    selection: FrameSelection,
    progress: Callable[[str], None] | None = None,
) -> ClusterAnalysis:
    """Pool, reduce, cluster and read the labels of ``described``: no files."""
    from scalms.analysis.clustering import embedding_map

    say = progress or (lambda _: None)
    say("per-atom coordination, depth and distance")
    pooled = pool(described, settings)
    if settings.n_clusters > pooled.n_points:
        raise ScalmsError(
            f"--n-clusters {settings.n_clusters} is more than the {pooled.n_points} atom-frames "
            "selected; lower it or select more frames"
        )
    results = {}
    for reducer in settings.reducers:
        say(f"{reducer} to {settings.dim} dimensions, then bisecting k-means")
        results[reducer] = _reduce_and_cluster(
            [d.run for d in described.runs], pooled, reducer, settings
        )
    say("3D UMAP map for the figures")
    started = time.perf_counter()
    try:
        map_indices, map_coords = embedding_map(
            pooled.descriptors,
            seed=settings.seed,
            umap_neighbors=settings.umap_neighbors,
            umap_min_dist=settings.umap_min_dist,
            max_points=settings.map_points,
        )
    except ValueError as err:
        raise ScalmsError(f"3D map: {err}") from None
    map_s = time.perf_counter() - started
    analysis = ClusterAnalysis(
        settings, selection, described, pooled, results, map_indices, map_coords, map_s
    )
    say("PDF per label")
    runs = analysis.runs
    for reducer, result in results.items():
        analysis.pdfs[reducer] = _label_pdfs(runs, pooled, result.labels, settings.pdf_r_max_A)
    return analysis


def settings_record(settings: ClusterSettings, selection: FrameSelection) -> dict:
    """Settings as plain data, for the labels file, the summary and the report."""
    return {**asdict(settings), "reducers": list(settings.reducers), **asdict(selection)}
