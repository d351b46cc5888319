"""Accuracy metrics against values worked out by hand on small synthetic data."""

import numpy as np
import pytest

from scalms.benchmark.metrics import (
    committee_of,
    element_offsets,
    energy_errors,
    error_stats,
    force_errors,
    metrics_row,
    model_metrics,
    net_force_check,
    ranks,
    spread_vs_error,
)


def test_component_and_magnitude_errors_match_hand_computed_values():
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    predicted = np.array([[1.5, 0.0, 0.0], [0.0, 1.0, 0.0]])
    errors = force_errors(reference, predicted)
    # Component errors: +0.5, 0, 0, 0, -1, 0.
    c = errors.components
    assert c.n == 6
    assert c.mae == pytest.approx(1.5 / 6)
    assert c.rmse == pytest.approx(np.sqrt(1.25 / 6))
    assert c.max_abs == pytest.approx(1.0)
    assert c.mean == pytest.approx(-0.5 / 6)
    # Reference mean 0.5: total sum of squares 4 * 0.25 + 0.25 + 2.25 = 3.5; residual 1.25.
    assert c.r2 == pytest.approx(1 - 1.25 / 3.5)
    # Magnitudes 1, 2 against 1.5, 1: errors +0.5 and -1.
    m = errors.magnitudes
    assert m.mae == pytest.approx(0.75)
    assert m.rmse == pytest.approx(np.sqrt((0.25 + 1.0) / 2))
    assert m.r2 == pytest.approx(1 - 1.25 / 0.5)  # worse than guessing the mean
    assert errors.atom_mean == pytest.approx(0.75)
    assert errors.atom_max == pytest.approx(1.0)


def test_perfect_predictions_have_zero_error_and_unit_r2():
    forces = np.random.default_rng(1).normal(size=(10, 3))
    stats = error_stats(forces, forces.copy())
    assert (stats.mae, stats.rmse, stats.max_abs, stats.r2) == (0.0, 0.0, 0.0, 1.0)


def test_r2_is_nan_for_a_constant_reference_and_stats_of_nothing_are_nan():
    assert np.isnan(error_stats(np.ones(4), np.arange(4.0)).r2)
    empty = error_stats(np.array([]), np.array([]))
    assert empty.n == 0 and np.isnan(empty.mae)


def test_per_element_offsets_are_recovered_and_aligned_energy_error_vanishes():
    # Ga2, GaPt, Pt2 and Ga3Pt: the model's energies sit 0.3 eV per Ga and -1.2 eV per Pt off.
    numbers = np.array([31, 31, 31, 78, 78, 78, 31, 31, 31, 78])
    n_atoms = np.array([2, 2, 2, 4])
    reference = np.array([-5.0, -7.0, -9.0, -14.0])
    counts = np.array([[2, 0], [1, 1], [0, 2], [3, 1]])
    predicted = reference + counts @ np.array([0.3, -1.2])
    errors = energy_errors(reference, predicted, numbers, n_atoms)
    assert errors.offsets_eV == pytest.approx({"Ga": 0.3, "Pt": -1.2})
    assert errors.aligned_per_atom.mae == pytest.approx(0.0, abs=1e-12)
    raw = np.abs(counts @ np.array([0.3, -1.2])) / n_atoms
    assert errors.per_atom.mae == pytest.approx(raw.mean())
    assert errors.per_atom.max_abs == pytest.approx(raw.max())


def test_offsets_take_the_minimum_norm_solution_when_compositions_cannot_tell_elements_apart():
    # Every frame is GaPt: only the sum of the two offsets is known.
    offsets = element_offsets(np.zeros(3), np.full(3, 2.0), np.ones((3, 2)))
    assert offsets == pytest.approx([1.0, 1.0])


def test_model_metrics_split_forces_by_element_and_name_their_units():
    numbers = np.array([31, 78, 31])
    reference = np.zeros((3, 3))
    predicted = np.array([[0.1, 0, 0], [0, 0.4, 0], [0, 0, -0.1]])
    metrics = model_metrics("m", numbers, np.array([3]), [-1.0], [-1.3], reference, predicted)
    assert metrics.forces_by_element["Ga"].components.mae == pytest.approx(0.2 / 6)
    assert metrics.forces_by_element["Pt"].components.mae == pytest.approx(0.4 / 3)
    row = metrics_row(metrics)
    assert row["force_mae_eV_per_A"] == pytest.approx(0.6 / 9)
    assert row["energy_mae_eV_per_atom"] == pytest.approx(0.1)
    assert row["n_frames"] == 1 and row["n_atoms"] == 3


def test_net_force_flags_frames_whose_forces_do_not_sum_to_zero():
    forces = np.array([[1.0, 0, 0], [-1.0, 0, 0], [1.0, 0, 0], [0.5, 0, 0], [0, 0, 0]])
    check = net_force_check(forces, np.array([2, 3]), threshold_eV_per_A=0.1)
    assert check.magnitude_eV_per_A == pytest.approx([0.0, 1.5])
    assert check.per_atom_eV_per_A == pytest.approx([0.0, 0.5])
    assert check.flagged.tolist() == [False, True]


def test_committee_of_identical_models_has_zero_spread():
    rng = np.random.default_rng(2)
    forces, energy = rng.normal(size=(7, 3)), np.array([-3.0, -4.0])
    committee = committee_of(["a", "b", "c"], [forces] * 3, [energy] * 3, np.array([3, 4]))
    assert np.all(committee.force_spread_eV_per_A == 0.0)
    assert np.all(committee.energy_spread_eV_per_atom == 0.0)
    np.testing.assert_allclose(committee.mean_forces, forces)


def test_committee_spread_is_the_rms_distance_from_the_mean_force():
    reference = np.zeros((2, 3))
    delta = np.array([[0.3, 0.4, 0.0], [0.0, 0.0, 1.0]])
    committee = committee_of(
        ["a", "b"], [reference + delta, reference - delta], [np.zeros(1)] * 2, np.array([2])
    )
    np.testing.assert_allclose(committee.mean_forces, reference, atol=1e-15)
    assert committee.force_spread_eV_per_A == pytest.approx([0.5, 1.0])


def test_spread_that_tracks_error_correlates_fully_and_ties_share_ranks():
    assert ranks(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [4.0, 1.0, 2.5, 2.5]
    spread = np.linspace(0.0, 1.0, 50)
    relation = spread_vs_error(spread, 2 * spread**2, n_bins=5)
    assert relation.spearman == pytest.approx(1.0)
    assert 0.9 < relation.pearson < 1.0  # monotonic, not linear
    assert relation.bin_count.tolist() == [10] * 5
    assert np.all(np.diff(relation.bin_error) > 0)
    unrelated = spread_vs_error(spread, np.ones(50))
    assert np.isnan(unrelated.pearson)


def test_aligned_energy_r2_measures_what_the_composition_does_not_explain():
    # Three Ga4 frames; the model sits 5 eV per atom off and errs by +0.1, -0.1 and 0 eV.
    numbers, n_atoms = np.full(12, 31), np.array([4, 4, 4])
    reference = np.array([-10.0, -10.4, -9.8])
    error = np.array([0.1, -0.1, 0.0])
    errors = energy_errors(reference, reference + 20.0 + error, numbers, n_atoms)
    assert errors.offsets_eV["Ga"] == pytest.approx(5.0)
    assert errors.aligned_per_atom.mae == pytest.approx(0.2 / 3 / 4)
    spread = reference - reference.mean()  # one composition: the fit is the mean
    assert errors.aligned_per_atom.r2 == pytest.approx(1 - np.sum(error**2) / np.sum(spread**2))
