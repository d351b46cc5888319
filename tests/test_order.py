"""Order parameters that tell a melted particle from a crystal: Lindemann index and Q6."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.cluster import Octahedron
from scipy.spatial.transform import Rotation

from scalms.analysis.order import bond_order, lindemann_index


def _cluster():
    return Octahedron("Pt", 7, 3).positions  # 147-atom truncated octahedron, fcc


def test_a_rigid_particle_moving_and_turning_has_lindemann_zero():
    base = _cluster()
    rotations = Rotation.random(20, random_state=1).as_matrix()
    frames = np.stack([base @ r.T + np.array([i, -2 * i, 0.5]) for i, r in enumerate(rotations)])
    assert lindemann_index(frames) == pytest.approx(0.0, abs=1e-12)


def test_lindemann_of_two_atoms_is_their_relative_distance_spread():
    distances = np.array([2.0, 2.2, 1.8, 2.0])
    frames = np.zeros((4, 2, 3))
    frames[:, 1, 0] = distances
    assert lindemann_index(frames) == pytest.approx(distances.std() / distances.mean())


def test_vibrating_crystal_stays_below_and_wandering_atoms_go_above_the_criterion():
    rng = np.random.default_rng(0)
    base = _cluster()
    solid = base + rng.normal(scale=0.1, size=(30, *base.shape))
    assert 0.01 < lindemann_index(solid) < 0.05
    walk = base + np.cumsum(rng.normal(scale=0.4, size=(30, *base.shape)), axis=0)
    assert lindemann_index(walk) > 0.1


def test_q6_of_fcc_is_the_known_value_whatever_the_orientation():
    fcc = bulk("Pt", "fcc", a=3.92, cubic=True).repeat(5).positions
    assert bond_order(fcc, cutoff_A=3.0) == pytest.approx(0.5745, abs=1e-4)
    turned = fcc @ Rotation.random(random_state=3).as_matrix().T
    assert bond_order(turned, cutoff_A=3.0) == pytest.approx(0.5745, abs=1e-4)


def test_q6_of_a_random_gas_is_small_and_of_no_bonds_zero():
    gas = np.random.default_rng(2).uniform(0, 25, size=(800, 3))
    assert bond_order(gas, cutoff_A=3.0) < 0.05
    assert bond_order(np.array([[0.0, 0, 0], [10.0, 0, 0]]), cutoff_A=3.0) == 0.0


def test_lindemann_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        lindemann_index(np.zeros((1, 5, 3)))
