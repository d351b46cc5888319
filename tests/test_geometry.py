"""Crystals, Wulff particles, alloys and molecule placement: the model-free half of geometry."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.cluster import wulff_construction
from ase.data import atomic_masses
from ase.io import write
from ase.units import _amu

from scalms.errors import ScalmsError
from scalms.geometry.adsorbates import (
    PlacementSettings,
    load_molecule,
    particle_radius,
    place_molecules,
    split_evenly,
)
from scalms.geometry.alloy import formula_label, solute_count, substitute
from scalms.geometry.crystals import (
    SurfaceEnergies,
    bulk_crystal,
    parse_miller,
    read_surface_energies,
    shipped_surface_energies,
)
from scalms.geometry.wulff import equivalent_millers, wulff_particle


def _min_distance(atoms: Atoms) -> float:
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


# -- crystals ----------------------------------------------------------------------------


def test_alpha_ga_has_the_measured_density_and_neighbour_shell():
    ga = bulk_crystal("Ga")
    assert len(ga) == 8 and ga.get_chemical_formula() == "Ga8"
    density_g_cm3 = len(ga) * atomic_masses[31] * _amu * 1e3 / (ga.get_volume() * 1e-24)
    assert density_g_cm3 == pytest.approx(5.91, abs=0.01)
    big = ga.repeat(3)
    centre = big.positions[np.argmin(np.linalg.norm(big.positions - big.cell.sum(0) / 2, axis=1))]
    shell = np.sort(np.linalg.norm(big.positions - centre, axis=1))[1:8]
    # One covalent dimer partner, then three pairs of metallic neighbours.
    np.testing.assert_allclose(shell, [2.48, 2.69, 2.69, 2.73, 2.73, 2.79, 2.79], atol=0.01)


def test_fcc_solutes_come_from_ase_and_other_crystals_are_refused():
    pt = bulk_crystal("Pt")
    assert len(pt) == 4 and pt.cell.lengths() == pytest.approx([3.92] * 3)
    with pytest.raises(ScalmsError, match="no bulk crystal for Bi"):
        bulk_crystal("Bi")


@pytest.mark.parametrize(
    ("text", "miller"),
    [("100", (1, 0, 0)), ("1-10", (1, -1, 0)), ("(1,1,1)", (1, 1, 1)), ("0 1 2", (0, 1, 2))],
)
def test_miller_indices_are_read_in_the_usual_spellings(text, miller):
    assert parse_miller(text) == miller


@pytest.mark.parametrize("text", ["000", "10", "1a0", ""])
def test_what_is_not_miller_indices_is_refused(text):
    with pytest.raises(ScalmsError, match="not Miller indices"):
        parse_miller(text)


def test_the_shipped_surface_energies_name_their_source():
    ga = shipped_surface_energies("Ga")
    assert (0, 1, 0) in ga.energies_J_per_m2 and len(ga.energies_J_per_m2) == 7
    assert all(0.1 < e < 2.0 for e in ga.energies_J_per_m2.values())
    assert "SevenNet-0" in ga.source
    assert "Tran" in shipped_surface_energies("Pt").source
    with pytest.raises(ScalmsError, match="--surface-energies"):
        shipped_surface_energies("Bi")


def test_user_surface_energies_read_from_json_or_yaml(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps({"Ga": {"100": 0.5, "010": 0.6}}))
    (tmp_path / "e.yaml").write_text("'100': 0.5\n'010': 0.6\n")
    for name in ("e.json", "e.yaml"):
        energies = read_surface_energies(tmp_path / name, "Ga")
        assert energies.energies_J_per_m2 == {(1, 0, 0): 0.5, (0, 1, 0): 0.6}
    (tmp_path / "bad.json").write_text('{"100": -1}')
    with pytest.raises(ScalmsError, match="must be positive"):
        read_surface_energies(tmp_path / "bad.json", "Ga")
    (tmp_path / "broken.yaml").write_text("100: [")
    with pytest.raises(ScalmsError, match="cannot read"):
        read_surface_energies(tmp_path / "broken.yaml", "Ga")
    with pytest.raises(ScalmsError, match="not found"):
        read_surface_energies(tmp_path / "missing.json", "Ga")


# -- Wulff construction ------------------------------------------------------------------


def test_facet_families_follow_the_point_group():
    ga, pt = bulk_crystal("Ga"), bulk_crystal("Pt")
    assert len(equivalent_millers(ga, (1, 0, 0))) == 2  # orthorhombic mmm: signs only
    assert len(equivalent_millers(ga, (1, 1, 1))) == 8
    assert len(equivalent_millers(pt, (1, 0, 0))) == 6  # cubic m-3m: permutations too
    assert len(equivalent_millers(pt, (1, 1, 0))) == 12
    assert len(equivalent_millers(pt, (1, 1, 1))) == 8


@pytest.mark.parametrize("target", [55, 147])
def test_fcc_wulff_particles_are_the_ones_ase_builds(target):
    energies = shipped_surface_energies("Pt")
    ours = wulff_particle(bulk_crystal("Pt"), energies, target).atoms
    theirs = wulff_construction(
        "Pt",
        list(energies.energies_J_per_m2),
        list(energies.energies_J_per_m2.values()),
        target,
        "fcc",
        rounding="closest",
        latticeconstant=3.92,
    )
    assert len(ours) == len(theirs)
    a = ours.positions - ours.positions.mean(axis=0)
    b = theirs.positions - theirs.positions.mean(axis=0)
    a, b = a[np.lexsort(a.T.round(6))], b[np.lexsort(b.T.round(6))]
    np.testing.assert_allclose(a, b, atol=1e-8)


def test_a_cube_of_a_simple_cubic_lattice_grows_in_whole_shells():
    cubic = bulk("Po", "sc", a=2.5)
    energies = SurfaceEnergies("Po", {(1, 0, 0): 1.0}, "test")
    assert wulff_particle(cubic, energies, 100).n_atoms == 125  # 27 and 125 are allowed
    assert wulff_particle(cubic, energies, 100, rounding="below").n_atoms == 27
    assert wulff_particle(cubic, energies, 125, rounding="above").n_atoms == 125
    particle = wulff_particle(cubic, energies, 343)
    assert particle.n_atoms == 343
    np.testing.assert_allclose(np.ptp(particle.atoms.positions, axis=0), [15.0] * 3)
    assert particle.facets[0].area_fraction == pytest.approx(1.0)


@pytest.mark.parametrize("target", [50, 342, 1568])
def test_gallium_particles_report_their_count_and_keep_crystal_distances(target):
    energies = shipped_surface_energies("Ga")
    particle = wulff_particle(bulk_crystal("Ga"), energies, target)
    assert particle.n_atoms == len(particle.atoms)
    assert abs(particle.n_atoms - target) / target < 0.15
    assert _min_distance(particle.atoms) == pytest.approx(2.483, abs=1e-3)  # the Ga2 dimer
    assert sum(f.area_fraction for f in particle.facets) == pytest.approx(1.0)
    again = wulff_particle(bulk_crystal("Ga"), energies, target)
    np.testing.assert_array_equal(again.atoms.positions, particle.atoms.positions)


def test_a_costly_facet_stays_off_the_shape():
    energies = SurfaceEnergies("Pt", {(1, 0, 0): 1.0, (1, 1, 1): 1.0, (1, 1, 0): 5.0}, "test")
    facets = {
        f.miller: f.area_fraction for f in wulff_particle(bulk_crystal("Pt"), energies, 200).facets
    }
    assert facets[(1, 1, 0)] == 0.0 and facets[(1, 0, 0)] > 0 and facets[(1, 1, 1)] > 0


def test_facets_that_enclose_nothing_are_refused():
    energies = SurfaceEnergies("Ga", {(0, 0, 1): 0.5}, "test")
    with pytest.raises(ScalmsError, match="do not enclose"):
        wulff_particle(bulk_crystal("Ga"), energies, 100)
    with pytest.raises(ScalmsError, match="at least 1 atom"):
        wulff_particle(bulk_crystal("Ga"), shipped_surface_energies("Ga"), 0)


# -- alloys ------------------------------------------------------------------------------


def test_substitution_replaces_exactly_the_requested_number_with_the_seed_deciding_where():
    particle = wulff_particle(bulk_crystal("Ga"), shipped_surface_energies("Ga"), 342).atoms
    n_ga = len(particle)
    alloy = substitute(particle, "Pt", fraction=0.05, seed=3)
    assert (alloy.numbers == 78).sum() == round(0.05 * n_ga)
    assert (alloy.numbers == 31).sum() == n_ga - round(0.05 * n_ga)
    np.testing.assert_array_equal(alloy.positions, particle.positions)
    assert alloy.get_masses()[alloy.numbers == 78] == pytest.approx(atomic_masses[78])
    same = substitute(particle, "Pt", fraction=0.05, seed=3)
    other = substitute(particle, "Pt", fraction=0.05, seed=4)
    np.testing.assert_array_equal(same.numbers, alloy.numbers)
    assert not np.array_equal(other.numbers, alloy.numbers)
    assert (substitute(particle, "Bi", count=7).numbers == 83).sum() == 7
    assert _min_distance(alloy) == pytest.approx(_min_distance(particle))


def test_a_small_positive_fraction_still_places_one_solute():
    assert solute_count(40, fraction=0.001) == 1
    assert solute_count(40, fraction=0.0) == 0
    assert solute_count(40, count=40) == 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 500}, "cannot replace 500"),
        ({"fraction": 1.5}, "must lie in"),
        ({}, "either a solute fraction or a solute count"),
        ({"fraction": 0.1, "count": 2}, "either a solute fraction"),
        ({"count": 1, "host": "Au"}, "no Au atoms"),
        ({"count": 1, "host": "Xx"}, "unknown element 'Xx'"),
    ],
)
def test_impossible_substitutions_are_refused(kwargs, message):
    with pytest.raises(ScalmsError, match=message):
        substitute(Atoms("Ga10", positions=np.arange(30).reshape(10, 3)), "Pt", **kwargs)


def test_labels_put_the_host_first():
    assert formula_label(Atoms("PtGa54")) == "Ga54Pt"
    assert formula_label(Atoms("Ga144Pt3")) == "Ga144Pt3"


# -- molecules around a particle ---------------------------------------------------------


@pytest.fixture(scope="module")
def particle():
    from scalms.geometry.plan import in_vacuum

    return in_vacuum(
        wulff_particle(bulk_crystal("Ga"), shipped_surface_energies("Ga"), 150).atoms, 10
    )


def _internal_distances(positions):
    return np.linalg.norm(positions[:, None] - positions[None], axis=-1)


def test_placed_propanes_keep_their_shape_and_their_distance_from_everything(particle):
    settings = PlacementSettings(seed=1)
    placement = place_molecules(particle, [load_molecule("propane")], 12, settings)
    assert placement.placed == {"propane": 12} and not placement.saturated
    atoms = placement.atoms
    assert len(atoms) == len(particle) + 12 * 11
    assert not atoms.pbc.any()
    template = _internal_distances(load_molecule("propane")[1].positions)
    tags = atoms.get_tags()
    assert sorted(set(tags)) == list(range(13))
    for tag in range(1, 13):
        mine = atoms.positions[tags == tag]
        np.testing.assert_allclose(_internal_distances(mine), template, atol=1e-10)
        others = atoms.positions[tags != tag]
        gaps = np.linalg.norm(mine[:, None] - others[None], axis=-1)
        assert gaps.min() >= settings.min_distance_A
    # Every molecule sits outside the particle's radius.
    masses = particle.get_masses()
    com = masses @ atoms.positions[tags == 0] / masses.sum()
    radius = particle_radius(particle.positions, masses, 10)
    for tag in range(1, 13):
        centre = atoms[tags == tag].get_center_of_mass()
        assert np.linalg.norm(centre - com) >= radius + settings.distance_from_radius_A - 1e-9


def test_the_same_seed_places_the_same_molecules(particle):
    a = place_molecules(particle, [load_molecule("propane")], 5, PlacementSettings(seed=7)).atoms
    b = place_molecules(particle, [load_molecule("propane")], 5, PlacementSettings(seed=7)).atoms
    c = place_molecules(particle, [load_molecule("propane")], 5, PlacementSettings(seed=8)).atoms
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)


def test_several_kinds_share_the_count_and_a_full_surface_is_reported(particle):
    assert split_evenly(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}
    kinds = [load_molecule("propane"), load_molecule("methane")]
    tight = PlacementSettings(max_attempts=1, max_directions=30, seed=2)
    placement = place_molecules(particle, kinds, 400, tight)
    assert placement.requested == {"propane": 200, "methane": 200}
    assert placement.saturated
    assert 0 < placement.placed["propane"] < 200
    n_placed = sum(placement.placed.values())
    assert (
        len(placement.atoms)
        == len(particle) + 11 * placement.placed["propane"] + 5 * (placement.placed["methane"])
    )
    assert placement.atoms.get_tags().max() == n_placed


def test_molecules_come_from_names_or_files(tmp_path):
    name, water = load_molecule("H2O")
    assert name == "H2O" and water.get_chemical_formula() == "H2O"
    write(tmp_path / "co2.xyz", Atoms("CO2", positions=[[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]]))
    name, co2 = load_molecule(str(tmp_path / "co2.xyz"))
    assert name == "co2" and len(co2) == 3
    with pytest.raises(ScalmsError, match="unknown molecule 'unobtainium'"):
        load_molecule("unobtainium")


def test_bad_placement_settings_are_refused():
    with pytest.raises(ScalmsError, match="min_distance_A must be positive"):
        PlacementSettings(min_distance_A=0)
    with pytest.raises(ScalmsError, match="max_attempts must be at least 1"):
        PlacementSettings(max_attempts=0)


# -- melt checks -------------------------------------------------------------------------


def _trajectory(n_frames: int, frame_fs: float, step_A: float, vibration_A: float = 0.0):
    """A Ga particle whose atoms random-walk by ``step_A`` per frame and vibrate about that."""
    from scalms.trajectory import Trajectory

    rng = np.random.default_rng(5)
    base = wulff_particle(bulk_crystal("Ga"), shipped_surface_energies("Ga"), 50).atoms.positions
    walk = np.cumsum(rng.normal(scale=step_A, size=(n_frames, *base.shape)), axis=0)
    positions = base + walk + rng.normal(scale=vibration_A, size=walk.shape)
    positions[0] = base
    return Trajectory(
        positions=positions,
        numbers=np.full(len(base), 31),
        masses=np.full(len(base), 69.72),
        cell=np.tile(np.eye(3) * 30, (n_frames, 1, 1)),
        pbc=np.zeros(3, bool),
        step=np.arange(n_frames) * 10,
        time_fs=np.arange(n_frames) * frame_fs,
        time_step_fs=frame_fs / 10,
        save_interval=10,
        temperature_K=np.full(n_frames, 450.0),
    )


def test_the_melt_check_calls_diffusing_disordered_atoms_liquid_and_a_vibrating_crystal_not():
    from scalms.geometry.melt import LIQUID_D_CM2_PER_S, check_melt

    # 3 x 0.3^2 Å^2 per 50 fs frame: D = 0.27 / (6 x 50) Å^2/fs = 9e-5 cm^2/s.
    # 40 frames after the hot stage's last (step 190), 1.95 ps
    liquid = check_melt(_trajectory(60, 50.0, step_A=0.3), final_steps=400)
    assert liquid.n_frames == 40 and liquid.window_fs == 1950
    assert liquid.D_cm2_per_s == pytest.approx(9e-5, rel=0.3)
    assert liquid.lindemann > 0.1 and liquid.q6_final < 0.5 * liquid.q6_crystal
    assert liquid.liquid is True
    crystal = check_melt(_trajectory(60, 50.0, step_A=0.0, vibration_A=0.1), final_steps=400)
    assert crystal.D_cm2_per_s < 0.1 * LIQUID_D_CM2_PER_S
    assert crystal.lindemann < 0.05 and crystal.liquid is False
    short = check_melt(_trajectory(60, 10.0, step_A=0.3), final_steps=400)  # 0.4 ps
    assert short.D_cm2_per_s is None and short.liquid is None and short.lindemann is not None


def test_the_melt_verdict_judges_only_the_last_stage_after_the_quench():
    """A run whose stages tell themselves apart: 450 K and still, 1000 K and fast, the quench
    (700 K, fast) and the settled last stage (450 K, slow). The verdict sees only the last."""
    from scalms.geometry.melt import MeltProtocol, check_melt, final_stage

    protocol = MeltProtocol(
        equilibrate_ps=0.5, hot_ps=1.0, final_ps=3.0, time_step_fs=5.0, save_interval=10
    )  # 100 + 200 + 600 steps; the thermostat time is 100 steps, the quench 3 of them
    assert protocol.quench_steps == 300
    quench_end = 100 + 200 + 300
    step = np.arange(0, 901, 10)
    temperature = np.select(
        [step <= 100, step <= 300, step <= quench_end], [450.0, 1000.0, 700.0], 450.0
    )
    settled = step > quench_end
    rng = np.random.default_rng(6)
    base = wulff_particle(bulk_crystal("Ga"), shipped_surface_energies("Ga"), 50).atoms.positions
    # 0.05 Å per axis per 50 fs frame once settled (D = 2.5e-6 cm²/s), 0.4 Å before it
    scale = np.where(settled, 0.05, 0.4)[:, None, None]
    walk = np.cumsum(rng.normal(size=(len(step), *base.shape)) * scale, axis=0)
    walk[0] = 0.0
    trajectory = _trajectory(len(step), 50.0, step_A=0.0)
    trajectory = replace(trajectory, positions=base + walk, step=step, temperature_K=temperature)
    final = final_stage(trajectory, protocol.final_steps, protocol.quench_steps)
    assert list(final.step) == list(step[settled])  # from step 610: no hot or quench frame
    check = check_melt(trajectory, protocol.final_steps, protocol.quench_steps)
    assert check.n_frames == settled.sum() == 30 and check.temperature_K == 450.0
    assert check.D_cm2_per_s == pytest.approx(2.5e-6, rel=0.35)
    assert check.liquid is False  # slow at the target: the fast hot frames do not count


# -- what fits: sizes checked before anything is built ------------------------------------


def test_a_particle_larger_than_the_free_memory_is_refused_with_the_largest_that_fits():
    from scalms.geometry.plan import CUT_BYTES_PER_ATOM, check_fits

    free = 24 * 10**9  # the 24 GB of a small workstation
    with pytest.raises(ScalmsError, match=r"100,000,000 atoms needs about 150.0 GB") as refused:
        check_fits(100_000_000, CUT_BYTES_PER_ATOM, "a Wulff particle", available=free)
    assert "at most about 8,000,000 atoms" in str(refused.value)
    check_fits(100_000, CUT_BYTES_PER_ATOM, "a Wulff particle", available=free)


def test_the_cut_memory_estimate_covers_a_measured_cut():
    """The estimate per atom is at least what cutting a particle of 20,000 atoms takes."""
    import tracemalloc

    from scalms.geometry.plan import CUT_BYTES_PER_ATOM

    crystal, energies = bulk_crystal("Ga"), shipped_surface_energies("Ga")
    tracemalloc.start()
    wulff_particle(crystal, energies, 20_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak / 20_000 < CUT_BYTES_PER_ATOM


@pytest.mark.parametrize("repeat", [(0, 1, 1), (2, -1, 2), (1, 1, 0)])
def test_a_bulk_cell_needs_a_repeat_of_at_least_one_along_each_axis(repeat):
    from scalms.geometry.plan import SoluteRequest, plan_bulk

    with pytest.raises(ScalmsError, match="at least 1"):
        plan_bulk(bulk_crystal("Ga"), repeat, SoluteRequest())
