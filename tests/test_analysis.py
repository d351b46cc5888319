"""The analyses against cases with known answers: crystals, hand-counted pairs, spheres, random
walks, ballistic motion and force fields whose sum is known."""

import math

import numpy as np
import pytest
from ase.build import bulk
from ase.cluster import Octahedron
from ase.data import atomic_masses

from scalms.analysis import (
    fit_diffusion,
    mean_squared_displacement,
    msd_direct,
    msd_fft,
    msd_of,
    net_force,
    net_force_of,
    pair_distribution,
    parse_pair,
    partial_pair_distribution,
    pdf_of,
    solute_trace,
    trace_of,
    unwrap_positions,
)
from scalms.testing import GA_FCC_LATTICE_A, ga_cluster
from scalms.trajectory import Trajectory

GA, PT = 31, 78


def binary_cloud(n_atoms=120, n_frames=4, n_pt=17, seed=0):
    """Random Ga/Pt positions in a 9 Å ball, a few frames, with atomic numbers."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n_frames, n_atoms, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = 9.0 * rng.random((n_frames, n_atoms, 1)) ** (1 / 3)
    numbers = np.full(n_atoms, GA)
    numbers[rng.choice(n_atoms, n_pt, replace=False)] = PT
    return direction * radius + 5.0, numbers


def ordered_pair_counts(positions, mask_a, mask_b, r_max, n_bins):
    """Brute-force float64 histogram of ordered A-B distances (i != j), summed over frames."""
    counts = np.zeros(n_bins)
    for frame in positions:
        d = np.linalg.norm(frame[:, None] - frame[None], axis=-1)
        wanted = mask_a[:, None] & mask_b[None, :] & ~np.eye(len(frame), dtype=bool)
        counts += np.histogram(d[wanted], bins=n_bins, range=(0, r_max))[0]
    return counts


def square_and_far_atom():
    """Four atoms on a unit square and one 10 Å away: 8 ordered pairs at 1 Å, 4 at sqrt(2) Å."""
    return np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [10, 10, 10]]], dtype=float)


# ---------------------------------------------------------------- pair distribution


def test_pdf_of_fcc_cluster_peaks_exactly_at_the_neighbour_shells():
    a = GA_FCC_LATTICE_A
    cluster = Octahedron("Ga", 6, latticeconstant=a)
    r_max, n_bins = 7.0, 333  # bin width 0.021 Å: no shell distance near a bin edge
    result = pair_distribution(cluster.positions[None], r_max_A=r_max, n_bins=n_bins)
    # fcc neighbour shells lie at a sqrt(n / 2): a/sqrt(2), a, a sqrt(3/2), a sqrt(2), ...
    shells = a * np.sqrt(np.arange(1, 7) / 2)
    shell_bins = set((shells[shells < r_max] / (r_max / n_bins)).astype(int))
    assert set(np.flatnonzero(result.g)) == shell_bins
    assert result.r_A[np.argmax(result.g)] == pytest.approx(a / math.sqrt(2), abs=r_max / n_bins)
    n = len(cluster)
    mask = np.ones(n, dtype=bool)
    exact = ordered_pair_counts(cluster.positions[None], mask, mask, r_max, n_bins)
    fraction = pair_distribution(
        cluster.positions[None], r_max_A=r_max, n_bins=n_bins, mode="pair-fraction"
    )
    np.testing.assert_allclose(fraction.g * n * (n - 1), exact, atol=1e-9)


def test_pair_fraction_sums_to_the_fraction_of_pairs_within_r_max():
    # Equation 3.1: 5 atoms, 20 ordered pairs, 12 of them closer than 1.5 Å.
    positions = np.repeat(square_and_far_atom(), 3, axis=0)
    result = pair_distribution(positions, r_max_A=1.5, n_bins=7, mode="pair-fraction")
    assert result.g.sum() == pytest.approx(12 / 20, abs=1e-12)
    width = 1.5 / 7
    assert result.g[int(1.0 / width)] == pytest.approx(8 / 20, abs=1e-12)
    assert result.g[int(math.sqrt(2) / width)] == pytest.approx(4 / 20, abs=1e-12)
    assert result.n_frames == 3 and result.mode == "pair-fraction"


def test_shell_density_integrates_to_the_mean_coordination_number():
    result = pair_distribution(square_and_far_atom(), r_max_A=1.5, n_bins=7, mode="shell")
    edges = np.linspace(0, 1.5, 8)
    shell_volume = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    # 12 ordered pairs among 5 atoms: 2.4 neighbours per atom within r_max
    assert (result.g * shell_volume).sum() == pytest.approx(12 / 5, abs=1e-12)


def test_partial_pdfs_add_up_to_the_full_pdf():
    positions, numbers = binary_cloud()
    kw = {"r_max_A": 6.0, "n_bins": 40}
    n = len(numbers)
    counts = {GA: int((numbers == GA).sum()), PT: int((numbers == PT).sum())}
    full = {m: pair_distribution(positions, mode=m, **kw).g for m in ("shell", "pair-fraction")}
    weighted_sum = 0
    for a in (GA, PT):
        around_a = 0
        for b in (GA, PT):
            shell = partial_pair_distribution(positions, numbers, (a, b), mode="shell", **kw).g
            fraction = partial_pair_distribution(
                positions, numbers, (a, b), mode="pair-fraction", **kw
            ).g
            pairs = counts[a] * counts[b] - (counts[a] if a == b else 0)
            weighted_sum = weighted_sum + pairs * fraction
            around_a = around_a + shell
        # B densities around A add up to the density of all atoms around A
        all_around_a = pair_distribution(positions, mask_a=numbers == a, **kw).g
        np.testing.assert_allclose(around_a, all_around_a, rtol=1e-12, atol=1e-15)
        full_weighted = counts[a] * all_around_a
        full["by-reference"] = full.get("by-reference", 0) + full_weighted
    np.testing.assert_allclose(weighted_sum, n * (n - 1) * full["pair-fraction"], rtol=1e-12)
    np.testing.assert_allclose(full["by-reference"], n * full["shell"], rtol=1e-12, atol=1e-15)


def test_reference_element_normalises_so_pt_ga_differs_from_ga_pt():
    positions, numbers = binary_cloud()
    n_ga, n_pt = (numbers == GA).sum(), (numbers == PT).sum()
    pt_ga = partial_pair_distribution(positions, numbers, "Pt-Ga", r_max_A=6.0, n_bins=30)
    ga_pt = partial_pair_distribution(positions, numbers, "Ga-Pt", r_max_A=6.0, n_bins=30)
    assert (pt_ga.label, ga_pt.label) == ("Pt-Ga", "Ga-Pt")
    assert not np.allclose(pt_ga.g, ga_pt.g)
    # the same pairs are counted; only the number of reference atoms differs
    np.testing.assert_allclose(pt_ga.g * n_pt, ga_pt.g * n_ga, rtol=1e-12)
    # as a fraction of ordered pairs, N_Pt N_Ga = N_Ga N_Pt: the two agree
    fractions = [
        partial_pair_distribution(positions, numbers, p, r_max_A=6.0, n_bins=30, mode=m).g
        for p, m in (("Pt-Ga", "pair-fraction"), ("Ga-Pt", "pair-fraction"))
    ]
    np.testing.assert_allclose(*fractions, rtol=1e-12)


def test_self_pairs_never_count_but_coincident_distinct_atoms_do():
    # atoms 0 and 1 coincide: two ordered pairs at distance 0, which the first bin must keep
    positions = np.array([[[0, 0, 0], [0, 0, 0], [3, 0, 0]]], dtype=float)
    result = pair_distribution(positions, r_max_A=4.0, n_bins=4, mode="pair-fraction")
    np.testing.assert_allclose(result.g * 6, [2, 0, 0, 4])
    # A = every atom, B = atom 2 only: the pair (2, 2) is not counted, (0, 2) and (1, 2) are
    only_2 = np.array([False, False, True])
    result = pair_distribution(
        positions, mask_b=only_2, r_max_A=4.0, n_bins=4, mode="pair-fraction"
    )
    np.testing.assert_allclose(result.g * 2, [0, 0, 0, 2])
    with pytest.raises(ValueError, match=r"no .* pairs"):
        pair_distribution(positions[:, :1], r_max_A=4.0)


def test_constant_per_frame_labels_give_the_static_label_pdf():
    positions, numbers = binary_cloud()
    n_frames = positions.shape[0]
    pt, ga = numbers == PT, numbers == GA
    for mask_a, mask_b in ((pt, ga), (ga, ga), (pt, None)):
        for mode in ("shell", "pair-fraction"):
            static = pair_distribution(positions, mask_a=mask_a, mask_b=mask_b, mode=mode)
            dynamic = pair_distribution(
                positions,
                mask_a=np.tile(mask_a, (n_frames, 1)),
                mask_b=None if mask_b is None else np.tile(mask_b, (n_frames, 1)),
                mode=mode,
            )
            np.testing.assert_allclose(dynamic.g, static.g, rtol=1e-12)


def test_changing_labels_count_and_normalise_each_frame_by_its_own_pairs():
    positions, _ = binary_cloud(n_atoms=60, n_frames=3)
    rng = np.random.default_rng(1)
    mask_a = rng.random((3, 60)) < np.array([[0.2], [0.5], [0.8]])
    mask_b = rng.random((3, 60)) < 0.5
    r_max, n_bins = 8.0, 16
    counts = sum(
        ordered_pair_counts(positions[f : f + 1], mask_a[f], mask_b[f], r_max, n_bins)
        for f in range(3)
    )
    pairs = sum(mask_a[f].sum() * mask_b[f].sum() - (mask_a[f] & mask_b[f]).sum() for f in range(3))
    result = pair_distribution(
        positions, mask_a=mask_a, mask_b=mask_b, r_max_A=r_max, n_bins=n_bins, mode="pair-fraction"
    )
    np.testing.assert_allclose(result.g * pairs, counts, atol=1e-9)
    shell = pair_distribution(positions, mask_a=mask_a, mask_b=mask_b, r_max_A=r_max, n_bins=n_bins)
    edges = np.linspace(0, r_max, n_bins + 1)
    volume = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    np.testing.assert_allclose(shell.g * volume * mask_a.sum(), counts, atol=1e-9)


def test_frame_chunks_and_atom_blocks_do_not_change_the_pdf():
    # 700 atoms make several atom blocks, so the i < j blocks counted twice are exercised
    positions, _ = binary_cloud(n_atoms=700, n_frames=5, n_pt=40)
    positions *= 1.8  # keep the density liquid-like in the larger ball
    reference = pair_distribution(positions, frame_chunk=5, mode="pair-fraction")
    for chunk in (1, 2, None):
        chunked = pair_distribution(positions, frame_chunk=chunk, mode="pair-fraction")
        np.testing.assert_allclose(chunked.g, reference.g, rtol=0, atol=1e-12)
    everything = np.ones(700, dtype=bool)
    exact = ordered_pair_counts(positions, everything, everything, 10.0, 200)
    n_pairs = 5 * 700 * 699
    np.testing.assert_array_equal(np.rint(reference.g * n_pairs), exact)
    # float32 distances may move a distance lying within ~1e-5 Å of a bin edge to the next bin
    single = pair_distribution(positions, mode="pair-fraction", precision="float32")
    assert np.abs(single.g * n_pairs - exact).sum() <= 1e-4 * exact.sum()
    assert single.g.sum() * n_pairs == pytest.approx(exact.sum(), abs=2)


@pytest.mark.parametrize("engine", ["numpy", pytest.param("torch", marks=pytest.mark.slow)])
def test_cpu_pdf_counts_every_pair_in_the_bin_of_an_exact_float64_count(engine, monkeypatch):
    """2 M ordered pairs of a liquid-dense cloud, 0.05 Å bins: a few pairs lie within float32's
    rounding of a bin edge (float32 moves some). On the CPU the default (float64) puts every
    pair where numpy's histogram of direct float64 distances does, whichever kernel counts."""
    import scalms.analysis._cpu as cpu

    monkeypatch.setattr(cpu, "CPU_ENGINE", engine)
    rng = np.random.default_rng(11)
    n_atoms = 1400
    direction = rng.normal(size=(n_atoms, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = (3 * n_atoms / (4 * np.pi * 0.05)) ** (1 / 3)  # 0.05 atoms/Å³, like liquid Ga
    positions = (direction * radius * rng.random((n_atoms, 1)) ** (1 / 3))[None] + 3.0
    everything = np.ones(n_atoms, dtype=bool)
    exact = ordered_pair_counts(positions, everything, everything, 10.0, 200)
    n_pairs = n_atoms * (n_atoms - 1)
    counts = pair_distribution(positions, mode="pair-fraction").g * n_pairs
    np.testing.assert_array_equal(np.rint(counts), exact)
    single = pair_distribution(positions, mode="pair-fraction", precision="float32")
    assert np.abs(np.rint(single.g * n_pairs) - exact).sum() > 0  # the case does test the edges
    with pytest.raises(ValueError, match="precision"):
        pair_distribution(positions, precision="float16")


def test_minimum_image_finds_neighbours_across_periodic_boundaries():
    a = GA_FCC_LATTICE_A
    crystal = bulk("Ga", "fcc", a=a, cubic=True).repeat(3)  # 11.7 Å cube
    # 50 bins put no neighbour shell on a bin edge (54 would put the 3.9 Å shell on one, where
    # the last bit of any distance arithmetic decides the bin).
    r_max, n_bins = 5.4, 50
    positions = crystal.positions[None]
    result = pair_distribution(
        positions, r_max_A=r_max, n_bins=n_bins, cell=crystal.cell[:], pbc=crystal.pbc
    )
    edges = np.linspace(0, r_max, n_bins + 1)
    volume = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    # every atom of bulk fcc has 12 + 6 + 24 neighbours closer than 5.4 Å
    assert (result.g * volume).sum() == pytest.approx(42, abs=1e-9)
    shifted = crystal.copy()
    shifted.translate([2.0, -1.3, 0.7])
    shifted.wrap()
    moved = pair_distribution(
        shifted.positions[None], r_max_A=r_max, n_bins=n_bins, cell=crystal.cell[:], pbc=True
    )
    np.testing.assert_allclose(moved.g, result.g, atol=1e-12)
    with pytest.raises(ValueError, match="half the periodic cell"):
        pair_distribution(positions, r_max_A=6.0, cell=crystal.cell[:], pbc=crystal.pbc)


def test_vacuum_box_of_a_nanoparticle_is_ignored_without_pbc():
    cluster = ga_cluster(shells=3, box_A=12.0)  # a box smaller than 2 r_max: would fold pairs
    positions = cluster.positions[None]
    plain = pair_distribution(positions)
    boxed = pair_distribution(positions, cell=cluster.cell[:], pbc=cluster.pbc)
    np.testing.assert_array_equal(plain.g, boxed.g)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Pt-Ga", (PT, GA)), ("78-31", (PT, GA)), (("Ga", 78), (GA, PT)), ("Ga-Ga", (GA, GA))],
)
def test_pair_names_in_symbols_numbers_or_tuples(text, expected):
    assert parse_pair(text) == expected


@pytest.mark.parametrize("bad", ["PtGa", "Pt-", "Pt-Ga-O", "Xx-Ga", "pt-ga", "200-31", ("Pt",)])
def test_malformed_pair_names_are_refused(bad):
    with pytest.raises(ValueError):
        parse_pair(bad)


def test_partial_pdf_of_an_absent_element_is_refused():
    positions, numbers = binary_cloud()
    with pytest.raises(ValueError, match=r"no Cu atoms.*Ga, Pt"):
        partial_pair_distribution(positions, numbers, "Cu-Ga")


def test_unknown_pdf_mode_and_bad_masks_are_refused():
    positions, numbers = binary_cloud()
    with pytest.raises(ValueError, match="mode"):
        pair_distribution(positions, mode="rdf")
    with pytest.raises(ValueError, match="boolean"):
        pair_distribution(positions, mask_a=numbers)
    with pytest.raises(ValueError, match="shape"):
        pair_distribution(positions, mask_a=np.ones(3, dtype=bool))


# ---------------------------------------------------------------- solute trace


def sphere_shell(radius, centre, n_half=400, seed=0):
    """Points on a sphere in antipodal pairs (their centroid is exactly `centre`)."""
    golden = np.pi * (3 - np.sqrt(5))
    k = np.arange(n_half)
    z = 1 - (k + 0.5) / n_half  # upper hemisphere only; the antipodes fill the lower one
    ring = np.sqrt(1 - z**2)
    half = np.column_stack([ring * np.cos(golden * k), ring * np.sin(golden * k), z])
    rng = np.random.default_rng(seed)
    half = half @ np.linalg.qr(rng.normal(size=(3, 3)))[0]  # no special axis
    return centre + radius * np.concatenate([half, -half])


def test_trace_on_a_sphere_gives_exact_distances_and_the_radius_as_surface():
    radius, centre = 12.0, np.array([30.0, -7.0, 4.0])
    points = sphere_shell(radius, centre)
    numbers = np.full(len(points), GA)
    numbers[[3, 400 + 3, 150, 400 + 150]] = PT  # antipodal Pt pairs keep the centre of mass
    masses = atomic_masses[numbers]
    trace = solute_trace(
        points[None], masses, numbers, traced="Pt", time_fs=np.zeros(1), n_surface=5
    )
    assert trace.symbol == "Pt" and trace.n_atoms == 800
    np.testing.assert_array_equal(trace.indices, [3, 150, 403, 550])
    np.testing.assert_allclose(trace.distance_A, radius, rtol=1e-12)
    # the five atoms furthest along a radius lie within a few degrees of it
    assert np.all(trace.surface_A <= radius + 1e-9)
    np.testing.assert_allclose(trace.surface_A, radius, rtol=0.01)
    ga_only = solute_trace(
        points[None], masses, numbers, traced=PT, time_fs=[0.0], surface_elements=("Ga",)
    )
    assert ga_only.surface_elements == ("Ga",)
    np.testing.assert_allclose(ga_only.surface_A, radius, rtol=0.01)
    assert np.all(ga_only.surface_A < radius)  # the Pt atom itself is no candidate now


def test_trace_origin_stays_at_the_first_frames_centre_of_mass():
    radius, centre = 10.0, np.array([5.0, 5.0, 5.0])
    points = sphere_shell(radius, centre, n_half=200)
    shift = np.array([0.0, 0.0, 3.0])
    positions = np.stack([points, points + shift])
    numbers = np.full(len(points), GA)
    numbers[0] = numbers[200] = PT
    trace = solute_trace(positions, atomic_masses[numbers], numbers, traced=PT, time_fs=[0.0, 10.0])
    expected = np.linalg.norm(points[[0, 200]] - centre + shift, axis=-1)
    np.testing.assert_allclose(trace.distance_A[1], expected, rtol=1e-12)
    np.testing.assert_allclose(trace.time_fs, [0.0, 10.0])


def test_trace_errors_name_the_problem():
    points = sphere_shell(5.0, np.zeros(3), n_half=10)
    numbers = np.full(20, GA)
    masses = atomic_masses[numbers]
    with pytest.raises(ValueError, match=r"no Pt atoms.*Ga"):
        solute_trace(points[None], masses, numbers, traced="Pt", time_fs=[0.0])
    numbers[0] = PT
    with pytest.raises(ValueError, match="n_surface"):
        solute_trace(points[None], masses, numbers, traced="Pt", time_fs=[0.0], n_surface=21)
    with pytest.raises(ValueError, match="n_surface"):
        solute_trace(
            points[None],
            masses,
            numbers,
            traced="Pt",
            time_fs=[0.0],
            n_surface=20,
            surface_elements=("Ga",),
        )
    with pytest.raises(ValueError, match="surface elements"):
        solute_trace(
            points[None], masses, numbers, traced="Pt", time_fs=[0.0], surface_elements=("Cu",)
        )


# ---------------------------------------------------------------- diffusion


def random_walk(D_A2_per_fs, dt_fs, n_frames, n_walkers, seed):
    """Gaussian steps with variance 2 D dt per axis: MSD(t) = 6 D t."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=math.sqrt(2 * D_A2_per_fs * dt_fs), size=(n_frames, n_walkers, 3))
    steps[0] = rng.uniform(-20, 20, size=(n_walkers, 3))  # starting positions
    return np.cumsum(steps, axis=0)


def test_fft_msd_equals_the_direct_sum_over_all_origins():
    positions = random_walk(0.01, 1.0, 300, 7, seed=2) + 1000.0  # far from the origin
    fast = msd_fft(positions)
    direct = msd_direct(positions, max_lag_frames=299, origin_stride=1)
    np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-10)
    assert fast.shape == (300, 7) and np.all(fast[0] == 0)
    # padding only to F + max_lag leaves the lags up to max_lag exact
    np.testing.assert_allclose(msd_fft(positions, 40), direct[:41], rtol=0, atol=1e-10)


def test_direct_msd_uses_every_strided_origin_that_fits_the_lag():
    positions = random_walk(0.01, 1.0, 41, 3, seed=3)
    msd = msd_direct(positions, max_lag_frames=10, origin_stride=3)
    lag = 7
    origins = np.arange(0, 41 - lag, 3)
    expected = (((positions[origins + lag] - positions[origins]) ** 2).sum(-1)).mean(0)
    np.testing.assert_allclose(msd[lag], expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_random_walk_recovers_its_diffusion_coefficient(method):
    D, dt = 0.005, 2.0  # Å^2/fs, fs: D = 5e-4 cm^2/s
    positions = random_walk(D, dt, n_frames=2000, n_walkers=400, seed=4)
    numbers = np.full(400, GA)
    result = mean_squared_displacement(
        positions,
        frame_interval_fs=dt,
        numbers=numbers,
        traced="Ga",
        method=method,
        max_lag_fs=200.0,
    )
    assert result.fit.D_cm2_per_s == pytest.approx(D * 0.1, rel=0.05)
    assert result.fit.r2 > 0.99
    assert (result.fit.fit_start_fs, result.fit.fit_end_fs) == (20.0, 200.0)
    assert result.lag_fs[-1] == 200.0 and result.per_atom_A2.shape == (400, 101)
    assert len(result.per_atom_fit) == 400
    assert result.origin_stride == (1 if method == "fft" else 2)


@pytest.mark.parametrize("remove_drift", [False, True])
@pytest.mark.parametrize("method", ["fft", "direct"])
def test_ballistic_motion_gives_msd_v_squared_t_squared(method, remove_drift):
    """Atoms at constant velocities v_i: MSD_i = |v_i|^2 t^2 with the drift kept, and
    |v_i - V|^2 t^2 with it removed, V the mass-weighted mean velocity of all atoms."""
    rng = np.random.default_rng(5)
    velocity = rng.normal(scale=0.01, size=(6, 3))  # Å/fs
    numbers = np.array([PT, PT, PT, GA, GA, GA])
    time = np.arange(100) * 5.0
    positions = rng.normal(size=(6, 3)) + time[:, None, None] * velocity
    result = mean_squared_displacement(
        positions,
        frame_interval_fs=5.0,
        numbers=numbers,
        traced=PT,
        remove_drift=remove_drift,
        method=method,
        max_lag_fs=200.0,
    )
    masses = atomic_masses[numbers]
    if remove_drift:
        velocity = velocity - masses @ velocity / masses.sum()
    speed2 = (velocity[:3] ** 2).sum(-1)
    expected = speed2[:, None] * result.lag_fs[None] ** 2
    np.testing.assert_allclose(result.per_atom_A2, expected, rtol=1e-9, atol=1e-12)
    assert result.drift_removed is remove_drift


def drifting_particle(n_frames=3000, seed=8):
    """A Ga/Pt particle: every atom random-walks (D = 0.002 Å²/fs per atom, 1 fs frames), and
    the whole particle drifts on top: a constant velocity plus a random walk of its own
    (D_com = 0.004 Å²/fs), as a Langevin thermostat moves a free particle."""
    n_atoms = 55
    walk = random_walk(0.002, 1.0, n_frames, n_atoms, seed=seed)
    rng = np.random.default_rng(seed + 1)
    drift = np.cumsum(rng.normal(scale=math.sqrt(2 * 0.004), size=(n_frames, 3)), axis=0)
    drift += np.arange(n_frames)[:, None] * np.array([2e-3, -1e-3, 5e-4])  # Å/fs
    numbers = np.full(n_atoms, GA)
    numbers[:5] = PT
    return walk, drift, numbers


def test_a_drifting_particle_gives_the_drift_free_diffusion_coefficient():
    walk, drift, numbers = drifting_particle()
    options = {"frame_interval_fs": 1.0, "numbers": numbers, "traced": "Ga", "max_lag_fs": 300.0}
    still = mean_squared_displacement(walk, **options)
    moving = mean_squared_displacement(walk + drift[:, None, :], **options)
    # The particle's own motion, whatever it is, leaves the MSD unchanged to rounding ...
    np.testing.assert_allclose(moving.msd_A2, still.msd_A2, rtol=1e-9, atol=1e-9)
    # ... and D is the atoms' (a walker's D less its 1/N share in the centre of mass).
    assert moving.fit.D_cm2_per_s == pytest.approx(0.002 * 0.1, rel=0.05)
    assert moving.drift_removed
    kept = mean_squared_displacement(walk + drift[:, None, :], remove_drift=False, **options)
    assert not kept.drift_removed
    # the particle's walk (D_com twice the atoms', one realisation) and velocity come back
    assert kept.fit.D_cm2_per_s > 1.5 * moving.fit.D_cm2_per_s


def test_the_centre_of_mass_is_weighted_by_mass_over_every_atom():
    # Two atoms: Pt still, Ga moving 1 Å per frame along x. The centre of mass moves
    # m_Ga / (m_Ga + m_Pt) Å per frame, and Pt's drift-free MSD is that motion squared.
    positions = np.zeros((20, 2, 3))
    positions[:, 1, 0] = np.arange(20)
    result = mean_squared_displacement(
        positions, frame_interval_fs=1.0, numbers=[PT, GA], traced="Pt", max_lag_fs=10.0
    )
    share = atomic_masses[GA] / (atomic_masses[GA] + atomic_masses[PT])
    np.testing.assert_allclose(result.msd_A2, (share * result.lag_fs) ** 2, rtol=1e-12)
    equal = mean_squared_displacement(
        positions,
        frame_interval_fs=1.0,
        numbers=[PT, GA],
        masses=[1.0, 1.0],
        traced="Pt",
        max_lag_fs=10.0,
    )
    np.testing.assert_allclose(equal.msd_A2, (0.5 * equal.lag_fs) ** 2, rtol=1e-12)


def test_all_atoms_are_one_selection_labelled_all():
    walk, _, numbers = drifting_particle(n_frames=200)
    result = mean_squared_displacement(
        walk, frame_interval_fs=1.0, numbers=numbers, traced="all", max_lag_fs=50.0
    )
    assert result.symbol == "all" and list(result.indices) == list(range(55))
    ga = mean_squared_displacement(
        walk, frame_interval_fs=1.0, numbers=numbers, traced="Ga", max_lag_fs=50.0
    )
    pt = mean_squared_displacement(
        walk, frame_interval_fs=1.0, numbers=numbers, traced="Pt", max_lag_fs=50.0
    )
    np.testing.assert_allclose(result.msd_A2, (50 * ga.msd_A2 + 5 * pt.msd_A2) / 55, rtol=1e-12)


def test_fit_converts_the_einstein_slope_to_cm2_per_s():
    lag = np.arange(0, 1001, 10.0)
    fit = fit_diffusion(lag, 6 * 2e-4 * lag + 0.3, 100.0, 900.0)
    assert fit.slope_A2_per_fs == pytest.approx(1.2e-3)
    assert fit.D_cm2_per_s == pytest.approx(2e-5)  # 2e-4 Å^2/fs
    assert fit.intercept_A2 == pytest.approx(0.3)
    assert fit.r2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fit window"):
        fit_diffusion(lag, lag, 2000.0, 3000.0)


def test_lags_beyond_the_trajectory_are_clipped_with_a_warning():
    positions = random_walk(0.01, 1.0, 50, 2, seed=6)
    with pytest.warns(UserWarning, match="clipped"):
        result = mean_squared_displacement(
            positions, frame_interval_fs=1.0, numbers=[GA, GA], traced="Ga", max_lag_fs=1000.0
        )
    assert result.lag_fs[-1] == 49.0


def test_msd_errors_name_the_problem():
    positions = random_walk(0.01, 1.0, 50, 2, seed=6)
    with pytest.raises(ValueError, match="no Pt atoms"):
        mean_squared_displacement(positions, frame_interval_fs=1.0, numbers=[GA, GA], traced="Pt")
    with pytest.raises(ValueError, match="method"):
        mean_squared_displacement(
            positions, frame_interval_fs=1.0, numbers=[GA, GA], traced="Ga", method="slow"
        )


def test_unwrapping_restores_paths_that_cross_the_periodic_cell():
    cell = np.array([[8.0, 0, 0], [1.0, 9.0, 0], [0, 0, 7.0]])
    path = random_walk(0.05, 1.0, 400, 5, seed=7)
    wrapped = path @ np.linalg.inv(cell)
    wrapped -= np.floor(wrapped)
    wrapped = wrapped @ cell
    unwrapped = unwrap_positions(wrapped, cell, [True, True, True])
    np.testing.assert_allclose(unwrapped - unwrapped[0], path - path[0], atol=1e-9)
    np.testing.assert_allclose(msd_fft(unwrapped), msd_fft(path), atol=1e-8)


def breathing_box_walk(scale, n_atoms=300, edge_A=10.0, step_A=0.3, seed=9):
    """Random walkers in a cubic periodic box whose edge is edge_A x scale[t] at frame t.

    Each frame the box changes and the atoms' positions are scaled with it about the origin,
    as a barostat does, then each atom takes a Gaussian step (step_A per axis, so D = step_A^2/2
    Å²/frame). Returns (wrapped, stored like TorchSim: never wrapped, scaled where they are,
    cells), (F, N, 3) Å twice and (F, 3, 3) Å.
    """
    rng = np.random.default_rng(seed)
    n_frames = len(scale)
    cells = scale[:, None, None] * np.eye(3) * edge_A
    steps = rng.normal(scale=step_A, size=(n_frames, n_atoms, 3))
    wrapped = np.empty((n_frames, n_atoms, 3))
    unwrapped = np.empty_like(wrapped)
    wrapped[0] = unwrapped[0] = rng.uniform(0, edge_A * scale[0], size=(n_atoms, 3))
    for t in range(1, n_frames):
        factor = scale[t] / scale[t - 1]
        wrapped[t] = (wrapped[t - 1] * factor + steps[t]) % (edge_A * scale[t])
        unwrapped[t] = unwrapped[t - 1] * factor + steps[t]
    return wrapped, unwrapped, cells


def test_unwrapping_in_a_growing_npt_cell_gives_the_walkers_diffusion_coefficient():
    """An NPT-like run: the cell grows by 30 % while the atoms diffuse across its faces. The
    unwrapped MSD's D is the walkers' whichever image the file kept; counting crossed images
    times the current cell (what unwrapping in fractional coordinates gives) adds 20 %."""
    scale = np.linspace(1.0, 1.3, 2001)
    wrapped, unwrapped, cells = breathing_box_walk(scale)
    D_walk = 0.3**2 / 2 * 0.1  # Å²/fs -> cm²/s, 1 fs frames
    values = {}
    for name, positions in (("wrapped", wrapped), ("unwrapped", unwrapped)):
        run = Trajectory(
            positions=positions,
            numbers=np.full(positions.shape[1], GA),
            masses=np.full(positions.shape[1], atomic_masses[GA]),
            cell=cells,
            pbc=np.ones(3, dtype=bool),
            step=np.arange(len(scale)),
            time_fs=np.arange(len(scale), dtype=float),
            time_step_fs=1.0,
            save_interval=1,
        )
        values[name] = msd_of(run, "Ga", max_lag_fs=1000.0)
        assert values[name].fit.D_cm2_per_s == pytest.approx(D_walk, rel=0.05)
    np.testing.assert_allclose(values["wrapped"].msd_A2, values["unwrapped"].msd_A2, rtol=1e-9)


# ---------------------------------------------------------------- net force


def test_newtons_third_law_pair_forces_sum_to_zero():
    rng = np.random.default_rng(8)
    n_frames, n_atoms = 5, 30
    forces = np.zeros((n_frames, n_atoms, 3))
    for i, j in rng.integers(0, n_atoms, size=(200, 2)):
        if i != j:
            f = rng.normal(size=(n_frames, 3))
            forces[:, i] += f
            forces[:, j] -= f
    result = net_force(forces, np.arange(n_frames) * 10.0)
    assert np.all(result.magnitude_eV_per_A < 1e-12)


def test_constant_field_gives_n_times_the_atomic_force():
    field = np.array([0.1, -0.2, 0.05])
    forces = np.broadcast_to(field, (4, 55, 3))
    result = net_force(forces, np.arange(4.0))
    np.testing.assert_allclose(result.vector_eV_per_A, np.tile(55 * field, (4, 1)))
    np.testing.assert_allclose(result.magnitude_eV_per_A, 55 * np.linalg.norm(field))


# ---------------------------------------------------------------- Trajectory conveniences


def small_run(with_forces=True):
    cluster = ga_cluster(shells=3, n_solute=2, rattle_A=0.05)
    positions = np.stack([cluster.positions + 0.01 * k for k in range(20)])
    n_frames = len(positions)
    return Trajectory(
        positions=positions,
        numbers=cluster.numbers,
        masses=cluster.get_masses(),
        cell=np.tile(cluster.cell[:], (n_frames, 1, 1)),
        pbc=cluster.pbc,
        step=np.arange(n_frames) * 10,
        time_fs=np.arange(n_frames) * 20.0,
        time_step_fs=2.0,
        save_interval=10,
        forces=np.zeros_like(positions) if with_forces else None,
    )


def test_trajectory_conveniences_pass_the_runs_arrays():
    run = small_run()
    pdf = pdf_of(run, "Pt-Ga", n_bins=50)
    direct = partial_pair_distribution(run.positions, run.numbers, "Pt-Ga", n_bins=50)
    np.testing.assert_array_equal(pdf.g, direct.g)
    assert pdf_of(run).label == "all"
    trace = trace_of(run, "Pt")
    assert trace.distance_A.shape == (20, 2)
    # every atom moves by (0.01, 0.01, 0.01) Å per 20 fs frame: the particle drifts as a whole,
    # which is no diffusion unless the drift is kept
    msd = msd_of(run, "Pt", max_lag_fs=200.0)
    np.testing.assert_allclose(msd.msd_A2, 0.0, atol=1e-12)
    msd = msd_of(run, "Pt", max_lag_fs=200.0, remove_drift=False)
    np.testing.assert_allclose(msd.msd_A2, 3 * (0.01 * msd.lag_fs / 20.0) ** 2, atol=1e-12)
    assert net_force_of(run).vector_eV_per_A.shape == (20, 3)
    with pytest.raises(ValueError, match="no forces"):
        net_force_of(small_run(with_forces=False))


# ---------------------------------------------------------------- from the command line


def write_run(path, positions, numbers, frame_fs=2.0):
    """An H5MD trajectory of `positions` (F, N, 3) Å, one frame every `frame_fs` fs."""
    from scalms.io.trajectory import TrajectoryWriter

    with TrajectoryWriter.create(
        path,
        numbers=numbers,
        masses=atomic_masses[numbers],
        pbc=[False] * 3,
        time_step_fs=frame_fs,
        save_interval=1,
        model="lj",
        structure="drifting",
        parameters={},
        target_step=len(positions) - 1,
        velocities=False,
        forces=False,
    ) as writer:
        for step, frame in enumerate(positions):
            writer.append(step=step, positions=frame, cell=np.eye(3) * 40.0)
        writer.mark_complete()


def test_analyze_diffusion_gives_one_record_per_selection_with_the_drift_removed(tmp_path):
    import csv

    from typer.testing import CliRunner

    from scalms.cli import app
    from scalms.io.analysis_files import load_record

    walk, drift, numbers = drifting_particle(n_frames=600)
    write_run(tmp_path / "run.h5md", walk + drift[:, None, :], numbers)
    runner = CliRunner()
    for out, options in (
        ("removed", ["-e", "Ga", "-e", "Pt", "--element", "all", "--no-plot"]),
        ("kept", ["-e", "all", "--keep-drift"]),
    ):
        command = ["analyze", "diffusion", str(tmp_path / "run.h5md"), "--msd-max-lag-fs", "200"]
        result = runner.invoke(app, [*command, "--out", str(tmp_path / out), *options])
        assert result.exit_code == 0, result.output
    with open(tmp_path / "removed" / "diffusion.csv") as handle:
        rows = {row["element"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["Ga", "Pt", "all"]
    assert [rows[k]["n_traced"] for k in ("Ga", "Pt", "all")] == ["50", "5", "55"]
    assert {row["centre_of_mass_drift"] for row in rows.values()} == {"removed"}
    removed = load_record(tmp_path / "removed" / "lj" / "drifting" / "msd_all.json")
    direct = mean_squared_displacement(
        walk, frame_interval_fs=2.0, numbers=numbers, traced="all", max_lag_fs=200.0
    )
    np.testing.assert_allclose(removed.msd_A2, direct.msd_A2, rtol=1e-6, atol=1e-9)
    kept = load_record(tmp_path / "kept" / "lj" / "drifting" / "msd_all.json")
    assert (tmp_path / "kept" / "lj" / "drifting" / "msd_all.png").exists()  # a colour of its own
    assert removed.drift_removed and not kept.drift_removed
    assert kept.fit.D_cm2_per_s > 1.5 * removed.fit.D_cm2_per_s


def test_a_diffusion_selection_that_is_no_element_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from scalms.cli import app

    walk, _, numbers = drifting_particle(n_frames=50)
    write_run(tmp_path / "run.h5md", walk, numbers)
    result = CliRunner().invoke(
        app, ["analyze", "diffusion", str(tmp_path / "run.h5md"), "-e", "Xx", "--no-plot"]
    )
    assert result.exit_code == 2
    assert "'all'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "analysis").exists()


def test_a_saved_request_naming_one_diffusion_element_still_reads_as_one_selection():
    from scalms.dynamics.analyses import AnalysisRequest
    from scalms.errors import ScalmsError

    assert AnalysisRequest.from_dict({"diffusion": "Pt"}).diffusion == ("Pt",)
    request = AnalysisRequest.from_options(diffusion=["Ga", "all"])
    assert request.diffusion == ("Ga", "all") and request.msd_remove_drift
    assert AnalysisRequest.from_dict(request.to_dict()) == request
    with pytest.raises(ScalmsError, match="twice"):
        AnalysisRequest.from_options(diffusion=["Pt", "Pt"])


def test_analyze_pdf_takes_the_precision_and_refuses_an_unknown_one(tmp_path):
    from typer.testing import CliRunner

    from scalms.cli import app
    from scalms.io.analysis_files import load_record

    walk, _, numbers = drifting_particle(n_frames=5)
    write_run(tmp_path / "run.h5md", walk, numbers)
    command = ["analyze", "pdf", str(tmp_path / "run.h5md"), "--no-plot", "--mode", "pair-fraction"]
    runner = CliRunner()
    for precision in ("float64", "float32"):
        out = tmp_path / precision
        result = runner.invoke(app, [*command, "--precision", precision, "--out", str(out)])
        assert result.exit_code == 0, result.output
        record = load_record(out / "lj" / "drifting" / "pdf_all.json")
        expected = pair_distribution(walk, mode="pair-fraction", precision=precision)
        np.testing.assert_array_equal(record.g, expected.g)
    result = runner.invoke(app, [*command, "--precision", "float16", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "float16" in result.output
    assert not (tmp_path / "x").exists()
