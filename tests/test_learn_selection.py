"""Frame selection for labelling: the largest committee spreads, thinned in descriptor space.

Random spreads and features check the greedy contract on many draws; small hand-made cases
pin the counts and the per-frame reductions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scalms.analysis.frame_selection import frame_features, frame_max_spread, select_frames


def _random_round(seed: int, n_frames: int = 60, width: int = 4):
    rng = np.random.default_rng(seed)
    spread = rng.lognormal(mean=-2.0, sigma=0.8, size=n_frames)
    # clustered features, so the distance rule has near-copies to reject
    centres = rng.normal(size=(5, width))
    features = centres[rng.integers(0, 5, n_frames)] + 0.2 * rng.normal(size=(n_frames, width))
    return spread, features


def test_without_a_distance_the_picks_are_the_largest_spreads_above_the_threshold():
    spread, _ = _random_round(0)
    threshold = float(np.quantile(spread, 0.5))
    selection = select_frames(spread, None, threshold, max_count=7, min_distance=0.0)
    expected = np.argsort(-spread)[:7]
    assert selection.picked == expected.tolist()
    assert selection.above_threshold == int((spread > threshold).sum())
    assert selection.too_close == 0
    assert selection.nearest == [None] * 7
    assert (selection.threshold_eV_per_A, selection.min_distance, selection.max_count) == (
        threshold,
        0.0,
        7,
    )


def test_equal_spreads_are_visited_lower_index_first():
    spread = np.array([0.3, 0.5, 0.3, 0.5, 0.1])
    selection = select_frames(spread, None, 0.2, max_count=3, min_distance=0.0)
    assert selection.picked == [1, 3, 0]
    assert selection.above_threshold == 4


@pytest.mark.parametrize("seed", range(6))
def test_greedy_picks_are_apart_and_every_skipped_larger_spread_is_near_an_earlier_pick(seed):
    spread, features = _random_round(seed)
    threshold = float(np.quantile(spread, 0.3))
    min_distance = 0.8
    max_count = 6
    selection = select_frames(spread, features, threshold, max_count, min_distance)
    picked = selection.picked
    assert 0 < len(picked) <= max_count
    assert all(spread[p] > threshold for p in picked)
    assert all(spread[a] >= spread[b] for a, b in itertools.pairwise(picked))
    for a, b in itertools.combinations(picked, 2):
        assert np.linalg.norm(features[a] - features[b]) >= min_distance
    # the greedy invariant: a frame above the threshold that was skipped although its spread
    # beats the last pick lies within min_distance of a pick visited before it
    # (and, when the budget was not spent, every skipped frame above the threshold does)
    last = spread[picked[-1]] if len(picked) == max_count else threshold
    skipped = [c for c in range(len(spread)) if c not in picked and spread[c] > last]
    for c in skipped:
        blockers = [
            p
            for p in picked
            if (spread[p], -p) > (spread[c], -c)
            and np.linalg.norm(features[p] - features[c]) < min_distance
        ]
        assert blockers, f"frame {c} was skipped with nothing close picked before it"
    # skipped ones above the last pick are exactly the rejections, unless the budget ran out
    # before a frame with the last pick's spread was reached
    assert selection.too_close >= len(skipped)
    assert selection.too_close + len(picked) <= selection.above_threshold
    assert selection.nearest[0] is None
    for k, p in enumerate(picked[1:], start=1):
        expected = min(np.linalg.norm(features[p] - features[q]) for q in picked[:k])
        assert selection.nearest[k] == pytest.approx(expected)
        assert selection.nearest[k] >= min_distance


def test_when_the_budget_is_not_reached_every_candidate_above_threshold_is_accounted_for():
    spread, features = _random_round(11, n_frames=40)
    selection = select_frames(spread, features, 0.0, max_count=1000, min_distance=0.9)
    assert selection.above_threshold == 40
    assert selection.too_close + len(selection.picked) == 40
    assert selection.too_close > 0  # the clustered features do hold near-copies


def test_a_threshold_nobody_passes_picks_nothing():
    spread, features = _random_round(3)
    selection = select_frames(spread, features, float(spread.max()), 5, 0.5)
    assert selection.picked == []
    assert selection.above_threshold == 0
    assert selection.too_close == 0
    assert selection.nearest == []


def test_frame_max_spread_takes_the_largest_atom_of_each_frame():
    per_atom = np.array([0.1, 0.4, 0.2, 0.05, 0.7, 0.3, 0.3, 0.2])
    assert frame_max_spread(per_atom, [3, 1, 4]).tolist() == [0.4, 0.05, 0.7]
    assert frame_max_spread(np.zeros(0), []).shape == (0,)


def test_frame_max_spread_refuses_counts_that_do_not_add_up():
    with pytest.raises(ValueError, match="7 per-atom spreads for frames of 8 atoms"):
        frame_max_spread(np.ones(7), [3, 5])
    with pytest.raises(ValueError, match="at least one atom"):
        frame_max_spread(np.ones(3), [3, 0])


def _frames(seed: int, width: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, width)) for n in (4, 7, 3, 9, 5)]


def test_frame_features_do_not_depend_on_the_order_of_atoms_within_a_frame():
    frames = _frames(1)
    rng = np.random.default_rng(2)
    shuffled = [frame[rng.permutation(len(frame))] for frame in frames]
    assert np.allclose(frame_features(frames), frame_features(shuffled), atol=1e-12)


def test_frame_features_are_standardised_and_scaled_by_the_width():
    frames = _frames(3)
    features = frame_features(frames)
    assert features.shape == (5, 5)
    assert np.allclose(features.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(features.std(axis=0), 1.0 / np.sqrt(5))


def test_a_constant_column_becomes_zero_and_a_column_s_scale_does_not_matter():
    frames = _frames(4)
    for frame in frames:
        frame[:, 2] = 3.7  # every atom of every frame: no information
    features = frame_features(frames)
    assert np.array_equal(features[:, 2], np.zeros(5))
    rescaled = [frame * np.array([1.0, 1e-6, 1.0, 250.0, 1.0]) for frame in frames]
    assert np.allclose(frame_features(rescaled), features, atol=1e-9)


def test_frames_of_different_sizes_compare_by_their_mean_environment():
    # two frames with the same environments in different numbers compare equal
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    b = np.vstack([a, a, a])
    c = np.array([[5.0, -1.0]])
    features = frame_features([a, b, c])
    assert np.allclose(features[0], features[1])
    assert np.linalg.norm(features[0] - features[2]) > 1.0


def test_frame_features_refuse_differing_widths_and_empty_input():
    with pytest.raises(ValueError, match="width 3, not 2"):
        frame_features([np.ones((2, 2)), np.ones((4, 3))])
    with pytest.raises(ValueError, match="no frames"):
        frame_features([])
    with pytest.raises(ValueError, match="frame 1: descriptors must be"):
        frame_features([np.ones((2, 2)), np.ones((0, 2))])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spread": [0.1, np.nan, 0.3]}, "1 frames have a non-finite spread"),
        ({"threshold_eV_per_A": -0.1}, "threshold must be >= 0"),
        ({"min_distance": -1.0}, "minimum descriptor distance must be >= 0"),
        ({"max_count": 0}, "must be >= 1"),
        ({"features": np.zeros((2, 4))}, r"one row per frame \(3\)"),
        ({"features": None}, "needs the frames' features"),
    ],
)
def test_select_frames_refuses_bad_input_in_one_line(kwargs, message):
    arguments = {
        "spread": [0.1, 0.2, 0.3],
        "features": np.zeros((3, 4)),
        "threshold_eV_per_A": 0.05,
        "max_count": 2,
        "min_distance": 0.5,
    } | kwargs
    with pytest.raises(ValueError, match=message) as raised:
        select_frames(**arguments)
    assert "\n" not in str(raised.value)
