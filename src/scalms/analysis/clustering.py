"""Reduce per-atom descriptors, cluster them, and summarise what each cluster holds.

The structural analysis of the thesis (section 3.7, `structural_cluster.py`): per-atom invariant
MLIP descriptors of MD frames, pooled over frames into M "atom-frames" of width W, are
standardised, reduced to a few dimensions with PCA or UMAP, labelled with bisecting k-means, and
projected to 3D with UMAP for the figure. Each label is then described by geometry (coordination,
depth below the adaptive surface, distance from the centre of mass), and solutes of several runs
are placed in one shared map by how close their environments sit to the host's surface and bulk.

scikit-learn does the PCA and the clustering, umap-learn the UMAP, scipy's cKDTree the
neighbour counts; they are imported inside the functions because importing umap takes seconds.
Pure functions: arrays in, records out, no file reading and no plotting.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from scalms.analysis._common import Element, frames_array
from scalms.analysis.results import LabelSummary, SolutePlacement
from scalms.analysis.trace import solute_trace

REDUCERS = ("pca", "umap")

_AT_CENTRE_A = 1e-6
"""An atom closer than this (Å) to its frame's centre of mass has no direction to a surface."""

UMAP_FIT_POINTS = 20_000
"""Atom-frames UMAP learns its map from; the rest are placed on it with `transform`.

Fitting UMAP on 100,000 atom-frames takes minutes on two cores; learning the map on a seeded
subsample and transforming the others keeps the whole reduction within a minute
(benchmarks/cluster_speed.py gives the times and the labels' agreement with a full fit)."""


def standardise(descriptors: np.ndarray) -> np.ndarray:
    """(M, W) descriptors scaled to zero mean and unit variance per column, float64.

    A constant column carries no information and becomes 0 rather than NaN.
    """
    values = _descriptor_matrix(descriptors)
    centred = values - values.mean(axis=0)
    scale = values.std(axis=0)
    constant = scale == 0.0
    scale[constant] = 1.0  # centred values of a constant column are already 0
    return centred / scale


def reduce_descriptors(
    descriptors: np.ndarray,
    method: str,
    dim: int,
    *,
    seed: int | None = 0,
    umap_neighbors: int = 15,
    umap_min_dist: float = 0.1,
    umap_fit_points: int | None = UMAP_FIT_POINTS,
) -> np.ndarray:
    """(M, W) descriptors to (M, dim) float64 coordinates, on the standardised descriptors.

    method "pca": principal components (sklearn's PCA). Their number is capped at min(W, M - 1),
    so fewer than `dim` columns come back when the data cannot give more (no warning: the shape
    says it).
    method "umap": umap-learn's UMAP with `umap_neighbors` neighbours (capped at M - 1) and
    `umap_min_dist`. A seed makes it reproducible but single-threaded (umap-learn's own rule);
    seed None lets it use every core and gives slightly different coordinates each run. When M
    exceeds `umap_fit_points`, the map is learnt on that many atom-frames drawn with the seed and
    the others are placed on it (`UMAP.transform`); None fits all of them, much more slowly.
    ValueError for an unknown method, dim < 1, fewer than 2 atom-frames, or (UMAP) dim >= M - 1.
    """
    if method not in REDUCERS:
        raise ValueError(f"unknown reduction {method!r}; choose one of {', '.join(REDUCERS)}")
    if dim < 1:
        raise ValueError(f"the reduced dimension must be at least 1, got {dim}")
    values = standardise(descriptors)
    if method == "pca":
        return _pca(values, dim, seed)
    return _umap(values, dim, seed, umap_neighbors, umap_min_dist, umap_fit_points)


def bisecting_kmeans(embedding: np.ndarray, n_clusters: int, *, seed: int | None = 0) -> np.ndarray:
    """(M,) int labels 0..n_clusters-1 of the (M, d) points, by bisecting k-means.

    sklearn's BisectingKMeans splits the cluster of largest inertia in two until there are
    `n_clusters` (the thesis's "hierarchical k-means"). ValueError when n_clusters < 1 or exceeds M.
    """
    from sklearn.cluster import BisectingKMeans

    points = _points(embedding, "embedding")
    if n_clusters < 1:
        raise ValueError(f"the number of clusters must be at least 1, got {n_clusters}")
    if n_clusters > len(points):
        raise ValueError(f"more clusters ({n_clusters}) than atom-frames ({len(points)})")
    model = BisectingKMeans(n_clusters=n_clusters, random_state=seed)
    return model.fit_predict(points).astype(np.int64)


def order_labels(labels: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... by increasing mean `key` over each label's points.

    Cluster numbers from k-means are arbitrary; ordered by, e.g., depth below the surface, label 0
    is the one nearest the surface in every run. NaN keys are ignored; ties keep the old order.
    """
    labels = np.asarray(labels)
    key = np.asarray(key, dtype=np.float64)
    if labels.ndim != 1 or key.shape != labels.shape:
        raise ValueError(
            f"labels and key need the same (M,) shape, got {labels.shape} and {key.shape}"
        )
    present, inverse = np.unique(labels, return_inverse=True)
    finite = np.isfinite(key)
    sums = np.bincount(inverse[finite], weights=key[finite], minlength=present.size)
    counts = np.bincount(inverse[finite], minlength=present.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.inf)  # a label of NaN keys goes last
    rank = np.empty(present.size, dtype=np.int64)
    rank[np.argsort(means, kind="stable")] = np.arange(present.size)
    return rank[inverse]


def embedding_map(
    descriptors: np.ndarray,
    *,
    seed: int | None = 0,
    umap_neighbors: int = 15,
    umap_min_dist: float = 0.1,
    max_points: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The 3D UMAP projection of the standardised descriptors for the figure (thesis Fig 4.10).

    Returns (indices (K,), coords (K, 3)): the sorted atom-frames drawn (all of them, or a seeded
    random `max_points` when M is larger; a figure shows no more) and their UMAP coordinates.
    The standardisation uses all M atom-frames, so the map matches the clustering's scale.
    """
    if max_points < 5:
        raise ValueError(f"max_points must be at least 5 for a 3D map, got {max_points}")
    values = standardise(descriptors)
    n_points = len(values)
    if n_points > max_points:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(n_points, size=max_points, replace=False))
    else:
        indices = np.arange(n_points)
    coords = _umap(values[indices], 3, seed, umap_neighbors, umap_min_dist, fit_points=None)
    return indices, coords


def coordination_numbers(positions: np.ndarray, cutoff_A: float) -> np.ndarray:
    """(F, N) int: other atoms within `cutoff_A` Å of each atom, per frame of (F, N, 3) positions.

    For nanoparticles in vacuum: no periodic images. scipy's cKDTree counts the neighbours.
    """
    from scipy.spatial import cKDTree

    positions = frames_array(positions, "positions")
    if not cutoff_A > 0:
        raise ValueError(f"the coordination cutoff must be positive, got {cutoff_A} Å")
    counts = np.empty(positions.shape[:2], dtype=np.int64)
    for f, frame in enumerate(positions):
        frame = np.asarray(frame, dtype=np.float64)
        within = cKDTree(frame).query_ball_point(frame, r=cutoff_A, return_length=True)
        counts[f] = within - 1  # each atom finds itself
    return counts


def depth_below_surface(
    positions: np.ndarray,
    masses: np.ndarray,
    numbers: np.ndarray,
    *,
    n_surface: int = 5,
    surface_elements: Sequence[Element] = (),
) -> np.ndarray:
    """(F, N) depth of every atom below the adaptive surface in Å, positive inside.

    The surface is `solute_trace`'s, with every atom traced: along the direction from the centre
    of mass to the atom, the mean projection of the `n_surface` furthest atoms (of
    `surface_elements`, all when empty); depth = surface - distance from the centre. Each frame
    is centred on its own centre of mass first, so a drifting particle keeps its depths. An atom
    at the centre (within 1e-6 Å) has no direction: its depth is the mean surface of the frame's
    other atoms (the particle's radius), the largest depth it can have.
    """
    positions = frames_array(positions, "positions")
    centred = positions - _centres_of_mass(positions, masses)[:, None, :]
    n_frames, n_atoms = positions.shape[:2]
    trace = solute_trace(
        centred,
        masses,
        numbers,
        traced=np.ones(n_atoms, dtype=bool),
        time_fs=np.arange(n_frames, dtype=np.float64),  # not used: depths need no time
        n_surface=n_surface,
        surface_elements=surface_elements,
    )
    surface = trace.surface_A
    # Closer than rounding to the centre, an atom's direction is noise: treat it as at the centre.
    undefined = ~np.isfinite(surface) | (trace.distance_A < _AT_CENTRE_A)
    if undefined.any():
        others = np.where(undefined, np.nan, surface)
        with warnings.catch_warnings():  # a frame with no other atom: NaN, said in the result
            warnings.simplefilter("ignore", RuntimeWarning)
            radius = np.nanmean(others, axis=1, keepdims=True)
        surface = np.where(undefined, radius, surface)
    return surface - trace.distance_A


def distance_from_centre(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """(F, N) distance in Å of every atom from its own frame's centre of mass."""
    positions = frames_array(positions, "positions")
    centre = _centres_of_mass(positions, masses)
    return np.linalg.norm(positions - centre[:, None, :], axis=-1)


def summarise_labels(
    labels: np.ndarray,
    symbols: np.ndarray,
    coordination: np.ndarray,
    depth_A: np.ndarray,
    distance_A: np.ndarray,
) -> list[LabelSummary]:
    """One summary per label present, sorted by label; all inputs (M,) over the atom-frames.

    coordination: neighbour counts; depth_A: below the adaptive surface; distance_A: from the
    centre of mass (both Å).
    """
    labels = np.asarray(labels)
    symbols, coordination, depth_A, distance_A = _same_length(
        labels, symbols=symbols, coordination=coordination, depth_A=depth_A, distance_A=distance_A
    )
    summaries = []
    for label in np.unique(labels):
        mask = labels == label
        summaries.append(
            LabelSummary(
                label=int(label),
                n_points=int(mask.sum()),
                fraction=float(mask.mean()),
                element_fractions=_fractions(symbols[mask]),
                mean_coordination=float(coordination[mask].mean()),
                mean_depth_A=float(depth_A[mask].mean()),
                mean_distance_from_centre_A=float(distance_A[mask].mean()),
            )
        )
    return summaries


def surface_and_bulk_labels(summaries: Sequence[LabelSummary], host: str = "Ga") -> tuple[int, int]:
    """(surface label, bulk label): the host-majority labels of smallest and largest mean depth.

    ValueError when fewer than two labels have the host as their majority element.
    """
    hosts = [s for s in summaries if _majority(s.element_fractions) == host]
    if len(hosts) < 2:
        raise ValueError(
            f"need two labels made mostly of {host} to tell surface from bulk, found {len(hosts)}; "
            "cluster into more labels or check the host element"
        )
    surface = min(hosts, key=lambda s: s.mean_depth_A)
    bulk = max(hosts, key=lambda s: s.mean_depth_A)
    return surface.label, bulk.label


def surface_coordinate(
    embedding: np.ndarray,
    labels: np.ndarray,
    symbols: np.ndarray,
    *,
    surface_label: int,
    bulk_label: int,
    host: str = "Ga",
) -> np.ndarray:
    """Each point's place on the host's bulk-to-surface axis of the embedding, (M,).

    With c_b and c_s the mean embedding of the host atom-frames labelled bulk and surface, a
    point x gets (x - c_b) . (c_s - c_b) / |c_s - c_b|^2: 0 at the bulk centroid, 1 at the
    surface centroid, the part of x off the axis ignored. For host atoms it follows depth and
    coordination; a solute's own coordinate also carries its element's offset in descriptor
    space, which is why `place_solutes` reads solutes through their host neighbours.
    """
    points = _points(embedding, "embedding")
    labels = np.asarray(labels)
    (symbols,) = _same_length(labels, symbols=symbols)
    if labels.shape != (len(points),):
        raise ValueError(
            f"labels need one entry per embedded point ({len(points)}), got {labels.shape}"
        )
    if surface_label == bulk_label:
        raise ValueError(f"the surface and bulk labels must differ, both are {surface_label}")
    host_points = symbols == host
    surface = _centroid(points, host_points & (labels == surface_label), host, surface_label)
    bulk = _centroid(points, host_points & (labels == bulk_label), host, bulk_label)
    axis = surface - bulk
    return (points - bulk) @ axis / float(axis @ axis)


def neighbour_average(
    values: np.ndarray,
    positions: np.ndarray,
    cutoff_A: float,
    centres: np.ndarray,
    neighbours: np.ndarray,
) -> np.ndarray:
    """Per frame, the mean of `values` over each centre atom's neighbours, (F, N).

    values: (F, N) per atom and frame; positions: (F, N, 3) Å; centres, neighbours: (N,) bool.
    An atom's neighbours are the `neighbours` atoms other than itself within `cutoff_A` (no
    periodic images: nanoparticles). NaN for atoms that are not centres or have no neighbour.
    scipy's cKDTree finds the pairs.
    """
    from scipy.spatial import cKDTree

    values = np.asarray(values, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    centres, neighbours = np.asarray(centres, bool), np.asarray(neighbours, bool)
    if values.shape != positions.shape[:2]:
        raise ValueError(f"values {values.shape} and positions {positions.shape} differ in shape")
    averaged = np.full(values.shape, np.nan)
    centre_index = np.flatnonzero(centres)
    neighbour_index = np.flatnonzero(neighbours)
    if centre_index.size == 0 or neighbour_index.size == 0:
        return averaged
    for frame in range(values.shape[0]):
        tree = cKDTree(positions[frame, neighbour_index])
        found = tree.query_ball_point(positions[frame, centre_index], cutoff_A)
        for atom, near in zip(centre_index, found, strict=True):
            near = neighbour_index[near]
            near = near[near != atom]
            if near.size:
                averaged[frame, atom] = values[frame, near].mean()
    return averaged


def place_solutes(
    embedding: np.ndarray,
    labels: np.ndarray,
    symbols: np.ndarray,
    sources: np.ndarray,
    depth_A: np.ndarray,
    neighbour_coordinate: np.ndarray,
    neighbour_surface_fraction: np.ndarray,
    *,
    surface_label: int,
    bulk_label: int,
    host: str = "Ga",
) -> list[SolutePlacement]:
    """Where each (source, non-host element) sits in the shared embedding, and what its host
    neighbours look like there.

    embedding: (M, d) reduced descriptors; labels, symbols, sources (trajectory names), depth_A
    (Å below the surface): (M,). neighbour_coordinate and neighbour_surface_fraction (M,): per
    solute atom-frame, the mean `surface_coordinate` of its host neighbours and the fraction of
    them labelled surface (`neighbour_average`; NaN where it has none). The surface and bulk
    centroids are the mean embedding of the host atom-frames carrying `surface_label` and
    `bulk_label`. One placement per (source, element) present, in order of first appearance.
    """
    points = _points(embedding, "embedding")
    labels = np.asarray(labels)
    if labels.shape != (len(points),):
        raise ValueError(
            f"labels need one entry per embedded point ({len(points)}), got {labels.shape}"
        )
    symbols, sources, depth_A, coordinate, fraction = _same_length(
        labels,
        symbols=symbols,
        sources=sources,
        depth_A=depth_A,
        neighbour_coordinate=neighbour_coordinate,
        neighbour_surface_fraction=neighbour_surface_fraction,
    )
    if surface_label == bulk_label:
        raise ValueError(f"the surface and bulk labels must differ, both are {surface_label}")
    host_points = symbols == host
    surface_centroid = _centroid(
        points, host_points & (labels == surface_label), host, surface_label
    )
    bulk_centroid = _centroid(points, host_points & (labels == bulk_label), host, bulk_label)
    all_labels = np.unique(labels)

    placements = []
    for source, element in _groups(sources[~host_points], symbols[~host_points]):
        mask = (sources == source) & (symbols == element)
        own = points[mask]
        centroid = own.mean(axis=0)
        placements.append(
            SolutePlacement(
                source=str(source),
                element=str(element),
                n_points=int(mask.sum()),
                label_fractions={int(k): float(np.mean(labels[mask] == k)) for k in all_labels},
                distance_to_surface=float(np.linalg.norm(centroid - surface_centroid)),
                distance_to_bulk=float(np.linalg.norm(centroid - bulk_centroid)),
                spread=float(np.sqrt(((own - centroid) ** 2).sum(axis=1).mean())),
                neighbour_surface_coordinate=_nanmean(coordinate[mask]),
                neighbour_surface_fraction=_nanmean(fraction[mask]),
                mean_depth_A=float(depth_A[mask].mean()),
            )
        )
    return placements


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN when there are none (a solute with no host neighbour)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


# ---------------------------------------------------------------- helpers


def _descriptor_matrix(descriptors: np.ndarray) -> np.ndarray:
    """The descriptors as a finite (M, W) float64 matrix with M >= 2, or a ValueError."""
    values = _points(descriptors, "descriptors")
    if len(values) < 2:
        raise ValueError(f"need at least 2 atom-frames to reduce descriptors, got {len(values)}")
    return values


def _points(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a finite, non-empty (M, d) float64 matrix, or a ValueError naming it."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(
            f"{name} must be a non-empty (atom-frames, width) matrix, got {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{name} hold NaN or infinite values; recompute or drop those frames")
    return values


def _pca(values: np.ndarray, dim: int, seed: int | None) -> np.ndarray:
    """The first min(dim, W, M - 1) principal components of standardised (M, W) values."""
    from sklearn.decomposition import PCA

    n_components = min(dim, values.shape[1], len(values) - 1)
    model = PCA(n_components=n_components, random_state=seed)
    return np.asarray(model.fit_transform(values), dtype=np.float64)


def _umap(
    values: np.ndarray,
    dim: int,
    seed: int | None,
    neighbors: int,
    min_dist: float,
    fit_points: int | None,
) -> np.ndarray:
    """UMAP coordinates (M, dim) of standardised values, learnt on at most `fit_points` of them."""
    n_points = len(values)
    if dim >= n_points - 1:
        raise ValueError(
            f"UMAP to {dim} dimensions needs more than {dim + 1} atom-frames, got {n_points}"
        )
    if neighbors < 2:
        raise ValueError(f"UMAP needs at least 2 neighbours, got {neighbors}")
    import umap

    model = umap.UMAP(
        n_components=dim,
        n_neighbors=min(neighbors, n_points - 1),
        min_dist=min_dist,
        random_state=seed,
        # umap-learn runs one thread when seeded and warns unless told so
        n_jobs=1 if seed is not None else -1,
    )
    if fit_points is None or n_points <= fit_points:
        return np.asarray(model.fit_transform(values), dtype=np.float64)
    fitted = np.zeros(n_points, dtype=bool)
    fitted[np.random.default_rng(seed).choice(n_points, size=fit_points, replace=False)] = True
    coords = np.empty((n_points, dim))
    coords[fitted] = model.fit_transform(values[fitted])
    coords[~fitted] = model.transform(values[~fitted])
    return coords


def _centres_of_mass(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """(F, 3) centre of mass of each frame of (F, N, 3) positions, Å."""
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != (positions.shape[1],):
        raise ValueError(
            f"masses need one entry per atom ({positions.shape[1]}), got {masses.shape}"
        )
    return np.einsum("n,fnx->fx", masses, positions) / masses.sum()


def _same_length(labels: np.ndarray, **arrays) -> list[np.ndarray]:
    """The named arrays as numpy arrays, each checked to have the (M,) shape of `labels`."""
    if labels.ndim != 1:
        raise ValueError(f"labels must be a flat (M,) array, got shape {labels.shape}")
    checked = []
    for name, values in arrays.items():
        values = np.asarray(values)
        if values.shape != labels.shape:
            raise ValueError(
                f"{name} needs one entry per atom-frame ({labels.size}), got {values.shape}"
            )
        checked.append(values)
    return checked


def _fractions(symbols: np.ndarray) -> dict[str, float]:
    """Fraction of each element among `symbols`, largest first (ties by symbol)."""
    elements, counts = np.unique(symbols, return_counts=True)
    order = sorted(range(len(elements)), key=lambda i: (-counts[i], str(elements[i])))
    return {str(elements[i]): float(counts[i] / counts.sum()) for i in order}


def _majority(element_fractions: dict[str, float]) -> str | None:
    """The element with the largest fraction, None for an empty label."""
    return max(element_fractions, key=element_fractions.__getitem__) if element_fractions else None


def _centroid(points: np.ndarray, mask: np.ndarray, host: str, label: int) -> np.ndarray:
    """Mean of the points in `mask`; ValueError when no host atom-frame carries `label`."""
    if not mask.any():
        raise ValueError(f"no {host} atom-frame has label {label}; pick a label that holds {host}")
    return points[mask].mean(axis=0)


def _groups(sources: np.ndarray, symbols: np.ndarray) -> list[tuple[str, str]]:
    """The distinct (source, element) pairs, in order of first appearance."""
    seen: dict[tuple[str, str], None] = {}
    for pair in zip(sources.tolist(), symbols.tolist(), strict=True):
        seen.setdefault(pair)
    return list(seen)
