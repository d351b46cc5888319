"""`scalms analyze cluster` without a model environment: frame selection, the descriptor cache,
the labels file, the composition of the analysis on given descriptors, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.cluster import Icosahedron
from ase.io import write
from sklearn.metrics import adjusted_rand_score

from scalms.config import ModelEntry
from scalms.io.cluster_files import read_cluster_file
from scalms.structural.cache import CachedDescriptors, DescriptorCache, cache_key, model_identity
from scalms.structural.cluster import ClusterSettings, analyse
from scalms.structural.descriptors import DescriptorSet, RunDescriptors
from scalms.structural.outputs import write_outputs
from scalms.structural.selection import FrameSelection, SelectionError, select_runs
from scalms.testing import GA_FCC_LATTICE_A, ga_bulk, ga_cluster
from tests.test_bad_input import refused

SEVENNET = "SevenNet:\n  models:\n    7net-0: {}\n"


def core_shell_frames(n_frames: int = 4, seed: int = 0):
    """A 147-atom Ga icosahedron rattled in a vacuum box, and which atoms are its core (the 55
    inner atoms) rather than its outer shell."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        atoms = Icosahedron("Ga", noshells=4, latticeconstant=GA_FCC_LATTICE_A)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.set_cell([40.0] * 3)
        atoms.center()
        atoms.pbc = False
        frames.append(atoms)
    centre = frames[0].positions.mean(axis=0)
    radius = np.linalg.norm(frames[0].positions - centre, axis=1)
    core = np.zeros(len(radius), bool)
    core[np.argsort(radius)[:55]] = True  # the three inner shells; the outer shell lies beyond
    assert radius[core].max() < radius[~core].min() - 0.5
    return frames, core


@pytest.fixture
def trajectory(tmp_path):
    frames, core = core_shell_frames(6)
    frames[0].symbols[0] = "Pt"  # a solute at the centre of every frame
    for atoms in frames[1:]:
        atoms.symbols[0] = "Pt"
    path = tmp_path / "Ga146Pt.extxyz"
    write(path, frames)
    return path, core


def test_frame_selection_takes_every_nth_frame_from_start_to_stop(trajectory):
    path, _ = trajectory
    (run,) = select_runs([path], FrameSelection(every=2, start=1))
    assert run.frames.tolist() == [1, 3, 5]
    assert run.trajectory.n_frames == 3
    assert run.name == "Ga146Pt"
    assert run.n_atom_frames == 3 * 147
    twice = select_runs([path, path], FrameSelection(every=3))
    assert [r.name for r in twice] == ["Ga146Pt", "Ga146Pt.2"]


def test_an_empty_frame_selection_is_refused_naming_the_run(trajectory):
    path, _ = trajectory
    with pytest.raises(SelectionError, match=r"no frame selected .* 6 frames"):
        select_runs([path], FrameSelection(start=6))


def test_cache_key_follows_the_frames_and_the_model_not_the_file_name(trajectory, tmp_path):
    path, _ = trajectory
    (run,) = select_runs([path], FrameSelection(every=2))
    model = model_identity(ModelEntry(name="7net-0", family="sevennet"))
    key = cache_key(run, model)
    moved = tmp_path / "renamed.extxyz"
    moved.write_bytes(path.read_bytes())
    (same,) = select_runs([moved], FrameSelection(every=2))
    assert cache_key(same, model) == key
    (other_frames,) = select_runs([path], FrameSelection(every=3))
    assert cache_key(other_frames, model) != key
    other_model = model_identity(ModelEntry(name="7net-l3i5", family="sevennet"))
    assert cache_key(run, other_model) != key


def test_cache_round_trip_and_a_damaged_entry_is_recomputed(trajectory, tmp_path):
    path, _ = trajectory
    (run,) = select_runs([path], FrameSelection(every=2))
    cache = DescriptorCache(tmp_path / "cache")
    values = np.random.default_rng(0).normal(size=(3, 147, 8)).astype(np.float32)
    assert cache.load("ab" * 32) is None
    cache.store("ab" * 32, CachedDescriptors(values, "test", 1.5), run, "m")
    hit = cache.load("ab" * 32)
    np.testing.assert_array_equal(hit.values, values)
    assert (hit.source, hit.compute_time_s) == ("test", 1.5)
    cache.path("ab" * 32).write_bytes(b"not hdf5")
    assert cache.load("ab" * 32) is None
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def _given_descriptors(run, core: np.ndarray, seed: int = 0) -> DescriptorSet:
    """Descriptors that differ between core and shell (and for the Pt atom), as a model's would."""
    rng = np.random.default_rng(seed)
    n_frames, n_atoms = run.trajectory.n_frames, run.trajectory.n_atoms
    values = rng.normal(0.0, 0.3, (n_frames, n_atoms, 16))
    values[:, core, :4] += 3.0
    values[:, run.trajectory.numbers == 78, 4:8] += 6.0
    described = RunDescriptors(run, values.astype(np.float32), "given", 0.0, cached=True)
    return DescriptorSet([described], "given", 0.0, None)


@pytest.mark.slow  # the 3D UMAP map: umap-learn's numba compilation alone takes ~10 s
def test_analysis_separates_core_from_shell_and_writes_labels_per_atom_and_frame(
    trajectory, tmp_path
):
    path, core = trajectory
    small = tmp_path / "Ga55.extxyz"  # a second run of another size shares the embedding
    write(small, [ga_cluster(3, "Ga", 1, seed=i, rattle_A=0.05) for i in range(4)])
    selection = FrameSelection(every=2)
    run, other = select_runs([path, small], selection)
    small_core = np.zeros(55, bool)
    small_core[np.argsort(np.linalg.norm(other.trajectory.positions[0] - 20.0, axis=1))[:13]] = True
    given = _given_descriptors(run, core)
    given_small = _given_descriptors(other, small_core, seed=1)
    described = DescriptorSet([*given.runs, *given_small.runs], "given", 0.0, None)
    settings = ClusterSettings(n_clusters=2, dim=3, reducers=("pca",), map_points=200)
    analysis = analyse(described, settings, selection)
    result = analysis.results["pca"]
    rows = analysis.pooled.slices
    assert (rows["Ga146Pt"], rows["Ga55"]) == (slice(0, 441), slice(441, 551))
    small_labels = result.labels[rows["Ga55"]].reshape(2, 55)
    assert (
        adjusted_rand_score(np.broadcast_to(small_core, (2, 55)).ravel(), small_labels.ravel())
        > 0.9
    )
    labels = result.labels[rows["Ga146Pt"]].reshape(3, 147)
    truth = np.broadcast_to(core, labels.shape)
    assert adjusted_rand_score(truth.ravel(), labels.ravel()) > 0.9
    # label 0 is nearest the surface: the shell; the core is deeper and more coordinated
    shell, inner = result.summaries
    assert shell.mean_depth_A < inner.mean_depth_A
    assert shell.mean_coordination < inner.mean_coordination
    assert inner.mean_coordination == pytest.approx(12.0, abs=0.5)
    assert analysis.map_coords.shape == (200, 3)

    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    for stale in ("labels_umap.csv", "figures/map_3d_umap.png", "figures/pdf_pca_gone.html"):
        (out / stale).write_text("from an earlier run")
    output = write_outputs(analysis, out, plot=True)
    stored = read_cluster_file(output.labels_file)
    labelled, labelled_small = stored.runs
    np.testing.assert_array_equal(labelled.labels["pca"], labels)
    np.testing.assert_array_equal(labelled_small.labels["pca"], small_labels)
    np.testing.assert_array_equal(labelled.frames, [0, 2, 4])
    assert labelled.positions.shape == (3, 147, 3)
    assert stored.settings["n_clusters"] == 2
    assert (out / "labels_pca.csv").read_text().startswith("label")
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"pdf_pca_Ga146Pt.png", "pdf_pca_Ga55.html", "map_3d_pca.png"} <= figures
    assert not {"labels_umap.csv", "map_3d_umap.png", "pdf_pca_gone.html"} & (
        figures | {p.name for p in out.iterdir()}
    )  # an earlier run's outputs that no longer match clusters.h5 are gone
    assert output.report.stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())  # strict JSON: no NaN
    assert summary["reducers"]["pca"]["dimensions"] == 3


def test_a_periodic_run_is_refused_naming_it(tmp_path):
    path = tmp_path / "bulk.extxyz"
    write(path, [ga_bulk(2, seed=i) for i in range(2)])
    with pytest.raises(SelectionError, match="is periodic: analyze cluster reads nanoparticles"):
        select_runs([path], FrameSelection(every=1))


def test_more_clusters_than_atom_frames_is_refused_before_any_child(trajectory, tmp_path):
    path, _ = trajectory
    config = tmp_path / "model_config.yaml"
    config.write_text(SEVENNET)
    refused(
        tmp_path,
        "analyze", "cluster", path, "-m", "7net-0", "-c", config, "--every", 6,
        "--n-clusters", 200, "-o", tmp_path / "out",
        message="--n-clusters 200 is more than the 147 atom-frames selected",
    )  # fmt: skip


def test_an_empty_frame_selection_is_refused_by_the_cli(trajectory, tmp_path):
    path, _ = trajectory
    config = tmp_path / "model_config.yaml"
    config.write_text(SEVENNET)
    refused(
        tmp_path,
        "analyze", "cluster", path, "-m", "7net-0", "-c", config, "--start", 10,
        "-o", tmp_path / "out",
        message="no frame selected from",
    )  # fmt: skip


def test_a_model_without_descriptors_is_refused_naming_those_with(trajectory, tmp_path):
    path, _ = trajectory
    config = tmp_path / "model_config.yaml"
    config.write_text("builtin:\n  models:\n    emt: {}\n")
    result = refused(
        tmp_path,
        "analyze", "cluster", path, "-m", "emt", "-c", config, "-o", tmp_path / "out",
        message="gives no per-atom descriptors",
    )  # fmt: skip
    assert "MACE" in result.output and "SevenNet" in result.output
