"""Structural analysis: reduction, bisecting k-means, label order, geometry per atom, summaries.

Descriptors are synthetic (two environments of known membership), structures are ideal
icosahedra whose shells are known, so every expected value comes from the construction.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.cluster import Icosahedron
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from scalms.analysis.clustering import (
    REDUCERS,
    bisecting_kmeans,
    coordination_numbers,
    depth_below_surface,
    distance_from_centre,
    embedding_map,
    neighbour_average,
    order_labels,
    place_solutes,
    reduce_descriptors,
    standardise,
    summarise_labels,
    surface_and_bulk_labels,
    surface_coordinate,
)
from scalms.analysis.results import LabelSummary

N_CORE, N_SHELL, WIDTH = 240, 160, 24


def core_and_shell(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (M, WIDTH) of a particle's core (0) and shell (1) atoms, and the truth.

    The shell's mean is shifted in 16 of the columns (anisotropically: +1.5 in eight, -1.5 in
    eight) against unit noise; the last column is constant, as a dead descriptor channel is.
    The two environments are interleaved so no method can use the order.
    """
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.r_[np.zeros(N_CORE, int), np.ones(N_SHELL, int)])
    descriptors = rng.normal(size=(truth.size, WIDTH)) * np.linspace(0.5, 1.5, WIDTH)
    shift = np.r_[np.full(8, 1.5), np.full(8, -1.5), np.zeros(WIDTH - 16)]
    descriptors += truth[:, None] * shift
    descriptors[:, -1] = 3.0
    return descriptors, truth


def icosahedron(shells: int = 4):
    """An ideal Cu icosahedron (147 atoms for 4 shells): positions (1, N, 3), masses, numbers."""
    atoms = Icosahedron("Cu", noshells=shells)
    return atoms.get_positions()[None], atoms.get_masses(), atoms.numbers


# ---------------------------------------------------------------- reduction and clustering


def test_standardise_gives_zero_mean_unit_variance_and_zero_for_a_constant_column():
    descriptors, _ = core_and_shell()
    scaled = standardise(descriptors)
    assert np.allclose(scaled[:, :-1].mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(scaled[:, :-1].std(axis=0), 1.0)
    assert np.all(scaled[:, -1] == 0.0)


def test_pca_and_bisecting_kmeans_recover_core_and_shell():
    descriptors, truth = core_and_shell()
    embedding = reduce_descriptors(descriptors, "pca", 5)
    assert embedding.shape == (truth.size, 5) and embedding.dtype == np.float64
    labels = bisecting_kmeans(embedding, 2)
    assert set(labels.tolist()) == {0, 1}
    assert adjusted_rand_score(truth, labels) > 0.9


def test_same_seed_gives_identical_labels_and_another_dataset_differs():
    descriptors, _ = core_and_shell()
    first = bisecting_kmeans(reduce_descriptors(descriptors, "pca", 5, seed=3), 4, seed=3)
    again = bisecting_kmeans(reduce_descriptors(descriptors, "pca", 5, seed=3), 4, seed=3)
    assert np.array_equal(first, again)
    other = bisecting_kmeans(reduce_descriptors(core_and_shell(1)[0], "pca", 5, seed=3), 4, seed=3)
    assert not np.array_equal(first, other)


@pytest.mark.slow  # importing umap and numba's first compilations: 12-25 s
def test_umap_and_bisecting_kmeans_recover_core_and_shell_reproducibly():
    # The one test that runs UMAP: a full fit, the same seed again, a fit on a subsample with
    # the rest transformed, and the 3D map's subsample.
    descriptors, truth = core_and_shell()
    full = reduce_descriptors(descriptors, "umap", 4, seed=1)
    assert full.shape == (truth.size, 4)
    labels = bisecting_kmeans(full, 2, seed=1)
    assert adjusted_rand_score(truth, labels) > 0.9
    assert np.array_equal(reduce_descriptors(descriptors, "umap", 4, seed=1), full)

    fast = reduce_descriptors(descriptors, "umap", 4, seed=1, umap_fit_points=200)
    assert np.isfinite(fast).all()
    assert adjusted_rand_score(truth, bisecting_kmeans(fast, 2, seed=1)) > 0.9

    indices, coords = embedding_map(descriptors, seed=2, max_points=150)
    assert coords.shape == (150, 3) and indices.shape == (150,)
    assert np.all(np.diff(indices) > 0) and indices[-1] < truth.size
    assert adjusted_rand_score(truth[indices], bisecting_kmeans(coords, 2, seed=2)) > 0.9


def test_pca_returns_no_more_components_than_the_data_holds():
    rng = np.random.default_rng(0)
    assert reduce_descriptors(rng.normal(size=(4, 10)), "pca", 8).shape == (4, 3)  # M - 1
    assert reduce_descriptors(rng.normal(size=(30, 2)), "pca", 8).shape == (30, 2)  # W


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: reduce_descriptors(d, "tsne", 3), "unknown reduction 'tsne'"),
        (lambda d: reduce_descriptors(d, "pca", 0), "at least 1"),
        (lambda d: reduce_descriptors(d[:1], "pca", 2), "at least 2 atom-frames"),
        (lambda d: reduce_descriptors(d[:4], "umap", 3), "more than 4 atom-frames"),
        (lambda d: reduce_descriptors(np.where(d > 2, np.nan, d), "pca", 2), "NaN"),
        (lambda d: bisecting_kmeans(d[:5], 6), r"more clusters \(6\) than atom-frames \(5\)"),
        (lambda d: bisecting_kmeans(d, 0), "at least 1"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(call, message):
    descriptors, _ = core_and_shell()
    with pytest.raises(ValueError, match=message):
        call(descriptors)


def test_every_reducer_the_cli_offers_is_one_the_analysis_knows():
    from scalms.cli.cluster import Reducer
    from scalms.structural.cluster import REDUCER_CHOICES

    assert set(REDUCER_CHOICES) == {choice.value for choice in Reducer}
    assert {r for chosen in REDUCER_CHOICES.values() for r in chosen} == set(REDUCERS)


def test_order_labels_numbers_clusters_by_increasing_mean_key():
    labels = np.array([7, 7, 2, 2, 2, 5, 5])
    depth = np.array([9.0, 11.0, 0.0, 1.0, np.nan, 4.0, 6.0])  # means 10, 0.5 (NaN ignored), 5
    assert order_labels(labels, depth).tolist() == [2, 2, 0, 0, 0, 1, 1]
    # any other numbering of the same clusters gives the same answer
    renamed = np.array([0, 0, 9, 9, 9, 3, 3])
    assert np.array_equal(order_labels(renamed, depth), order_labels(labels, depth))


# ---------------------------------------------------------------- geometry per atom


def test_coordination_is_twelve_at_the_centre_and_matches_all_pair_distances():
    positions, _, _ = icosahedron()
    nearest = pdist(positions[0]).min()
    cutoff = 0.5 * (1.0 + np.sqrt(2.0)) * nearest  # between first and second neighbour shells
    counts = coordination_numbers(positions, cutoff)
    centre = np.argmin(np.linalg.norm(positions[0] - positions[0].mean(axis=0), axis=1))
    assert counts.shape == (1, 147) and counts[0, centre] == 12
    # every pair within the cutoff counted once from each end
    assert counts.sum() == 2 * np.count_nonzero(pdist(positions[0]) <= cutoff)
    assert counts.min() < 12  # surface atoms have lost neighbours


def test_depth_is_near_zero_on_the_outer_shell_and_largest_at_the_centre():
    positions, masses, numbers = icosahedron()
    radius = distance_from_centre(positions, masses)[0]
    depth = depth_below_surface(positions, masses, numbers)[0]
    nearest = pdist(positions[0]).min()
    outer = radius > 0.75 * radius.max()  # the fourth shell: vertices, edges and faces
    assert np.abs(depth[outer]).max() < 0.5 * nearest
    centre = np.argmin(radius)
    assert radius[centre] < 1e-9 and np.argmax(depth) == centre
    # the centre lies one outer radius deep: between the face-centre and vertex radii
    assert radius[outer].min() <= depth[centre] <= radius.max()
    # going inwards shell by shell, depth grows
    shells = np.unique(np.round(radius, 3))
    means = [depth[np.isclose(radius, r, atol=1e-3)].mean() for r in shells]
    assert np.all(np.diff(means) < 0)


def test_depth_and_distance_follow_each_frame_s_own_centre_of_mass():
    positions, masses, numbers = icosahedron(3)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    drifted = np.stack([positions[0], positions[0] @ rotation.T + [30.0, -4.0, 2.0]])
    depth = depth_below_surface(drifted, masses, numbers)
    distance = distance_from_centre(drifted, masses)
    assert np.allclose(depth[1], depth[0], atol=1e-9)
    assert np.allclose(distance[1], distance[0], atol=1e-9)


# ---------------------------------------------------------------- summaries and solutes


def test_summarise_labels_counts_fractions_and_means_per_label():
    labels = np.array([1, 0, 1, 1, 0])
    symbols = np.array(["Ga", "Ga", "Pt", "Ga", "Ga"])
    summaries = summarise_labels(
        labels,
        symbols,
        coordination=np.array([12, 6, 10, 8, 4]),
        depth_A=np.array([5.0, 0.0, 3.0, 4.0, 1.0]),
        distance_A=np.array([1.0, 8.0, 2.0, 3.0, 7.0]),
    )
    assert [s.label for s in summaries] == [0, 1]
    assert sum(s.fraction for s in summaries) == pytest.approx(1.0)
    first, second = summaries
    assert first.n_points == 2 and first.element_fractions == {"Ga": 1.0}
    assert second.element_fractions == pytest.approx({"Ga": 2 / 3, "Pt": 1 / 3})
    assert list(second.element_fractions) == ["Ga", "Pt"]  # largest first
    assert second.mean_coordination == pytest.approx(10.0)
    assert first.mean_depth_A == pytest.approx(0.5)
    assert second.mean_distance_from_centre_A == pytest.approx(2.0)


def _summary(label: int, depth_A: float, elements: dict[str, float]) -> LabelSummary:
    return LabelSummary(label, 10, 0.25, elements, 8.0, depth_A, 5.0)


def test_surface_and_bulk_are_the_shallowest_and_deepest_host_labels():
    summaries = [
        _summary(0, 0.2, {"Ga": 1.0}),
        _summary(1, 9.0, {"Pt": 0.9, "Ga": 0.1}),  # deepest, but not a host label
        _summary(2, 4.0, {"Ga": 1.0}),
        _summary(3, 2.0, {"Ga": 0.8, "Pt": 0.2}),
    ]
    assert surface_and_bulk_labels(summaries) == (0, 2)
    with pytest.raises(ValueError, match="two labels made mostly of Ga"):
        surface_and_bulk_labels(summaries[:2])


def _two_host_clusters_and_solutes():
    rng = np.random.default_rng(0)
    surface = rng.normal([0.0, 0.0], 0.3, (50, 2))
    bulk = rng.normal([10.0, 0.0], 0.3, (50, 2))
    at_surface = surface.mean(axis=0) + np.array([[1.0, 0.0], [-1.0, 0.0]])
    at_bulk = bulk.mean(axis=0) + np.array([[0.0, 0.5], [0.0, -0.5]])
    embedding = np.vstack([surface, bulk, at_surface, at_bulk])
    labels = np.r_[np.zeros(50), np.ones(50), [0, 2], [1, 1]].astype(int)
    symbols = np.array(["Ga"] * 100 + ["Au", "Au", "Pt", "Pt"])
    sources = np.array(["Ga50"] * 100 + ["Ga48Au2", "Ga48Au2", "Ga48Pt2", "Ga48Pt2"])
    depth = np.r_[np.zeros(100), [0.1, 0.3], [4.0, 6.0]]
    return surface, bulk, embedding, labels, symbols, sources, depth


def test_surface_coordinate_is_zero_at_the_bulk_centroid_and_one_at_the_surface():
    *_, embedding, labels, symbols, _, _ = _two_host_clusters_and_solutes()
    t = surface_coordinate(embedding, labels, symbols, surface_label=0, bulk_label=1)
    assert t[:50].mean() == pytest.approx(1.0) and t[50:100].mean() == pytest.approx(0.0)
    # the Pt points sit +-0.5 across the (nearly x) axis about the bulk centroid: their mean is 0
    assert t[102:].mean() == pytest.approx(0.0, abs=1e-12)
    assert np.abs(t[102:]).max() < 1e-3
    with pytest.raises(ValueError, match="must differ"):
        surface_coordinate(embedding, labels, symbols, surface_label=1, bulk_label=1)


def test_neighbour_average_means_the_values_of_neighbours_within_the_cutoff():
    # a solute (atom 0) with two host atoms at 2.5 Å and one at 5 Å, over two frames
    positions = np.array([[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [5, 0, 0]]] * 2, dtype=float)
    positions[1, 2] = [0, 6.0, 0]  # in frame 1 one neighbour has moved away
    values = np.array([[9.0, 1.0, 3.0, 100.0], [9.0, 1.0, 3.0, 100.0]])
    host = np.array([False, True, True, True])
    averaged = neighbour_average(values, positions, 3.0, centres=~host, neighbours=host)
    assert averaged[:, 0] == pytest.approx([2.0, 1.0])
    assert np.isnan(averaged[:, 1:]).all()  # host atoms are not centres
    alone = neighbour_average(values, positions * 10, 3.0, centres=~host, neighbours=host)
    assert np.isnan(alone).all()


def test_place_solutes_reads_clusters_distances_spread_and_the_neighbours():
    surface, bulk, embedding, labels, symbols, sources, depth = _two_host_clusters_and_solutes()
    neighbour_t = np.r_[np.full(100, np.nan), [0.9, 1.1], [0.2, np.nan]]
    neighbour_surface = np.r_[np.full(100, np.nan), [1.0, 0.5], [0.0, np.nan]]
    au, pt = place_solutes(
        embedding, labels, symbols, sources, depth, neighbour_t, neighbour_surface,
        surface_label=0, bulk_label=1,
    )  # fmt: skip
    assert (au.source, au.element, au.n_points) == ("Ga48Au2", "Au", 2)
    assert au.distance_to_surface == pytest.approx(0.0, abs=1e-12)
    assert pt.distance_to_bulk == pytest.approx(0.0, abs=1e-12)
    assert au.distance_to_bulk == pytest.approx(np.linalg.norm(bulk.mean(0) - surface.mean(0)))
    assert au.label_fractions == {0: 0.5, 1: 0.0, 2: 0.5}
    assert sum(pt.label_fractions.values()) == pytest.approx(1.0)
    assert au.spread == pytest.approx(1.0) and pt.spread == pytest.approx(0.5)
    assert au.neighbour_surface_coordinate == pytest.approx(1.0)
    assert au.neighbour_surface_fraction == pytest.approx(0.75)
    assert pt.neighbour_surface_coordinate == pytest.approx(0.2)  # the NaN frame is left out
    assert au.mean_depth_A == pytest.approx(0.2) and pt.mean_depth_A == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no Ga atom-frame has label 2"):
        place_solutes(
            embedding, labels, symbols, sources, depth, neighbour_t, neighbour_surface,
            surface_label=2, bulk_label=1,
        )  # fmt: skip
