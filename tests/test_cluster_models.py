"""`scalms analyze cluster` with SevenNet-0's descriptors, computed by the real child in the
sevennet environment: melted Ga-Pt and Ga-Bi particles (SevenNet-0 MD at 450 K, make demo's size
class), the descriptor cache, and a particle whose core and shell differ."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import write
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from scalms.cli import app
from scalms.io.cluster_files import read_cluster_file
from tests.conftest import REPO, needs_env
from tests.test_cluster import SEVENNET, core_shell_frames

pytestmark = [pytest.mark.sevennet, pytest.mark.slow, needs_env("sevennet")]

DATA = REPO / "tests" / "data" / "cluster"
TINY_MACE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
PT, BI = DATA / "Ga47Pt3_450K.extxyz", DATA / "Ga47Bi3_450K.extxyz"
runner = CliRunner()


def cluster(*args) -> str:
    result = runner.invoke(app, ["analyze", "cluster", *map(str, args)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """Pt and Bi particles in one shared embedding, descriptors computed (cache empty)."""
    folder = tmp_path_factory.mktemp("cluster")
    config = folder / "model_config.yaml"
    config.write_text(SEVENNET)
    cache = folder / "cache"
    output = cluster(
        PT, BI, "-m", "7net-0", "-c", config, "--every", 3, "--device", "cpu",
        "--cache-dir", cache, "-o", folder / "first",
    )  # fmt: skip
    summary = json.loads((folder / "first" / "summary.json").read_text())
    return folder, config, cache, output, summary


def test_descriptors_are_computed_once_then_cached(first):
    _, _, cache, output, summary = first
    assert summary["descriptors"]["cache_hits"] == 0
    assert summary["descriptors"]["computed_time_s"] > 0
    assert summary["descriptor_width"] == 128
    assert "reduce_input_to_hidden" in summary["descriptor_source"]
    assert len(list(cache.rglob("*.h5"))) == 2
    assert "2 run(s) computed" in output


def test_labels_are_stored_per_atom_and_frame_for_each_reducer(first):
    folder, *_ = first
    stored = read_cluster_file(folder / "first" / "clusters.h5")
    assert [run.name for run in stored.runs] == ["Ga47Pt3_450K", "Ga47Bi3_450K"]
    for run in stored.runs:
        assert run.frames.tolist() == list(range(0, 30, 3))
        for reducer in ("pca", "umap"):
            labels = run.labels[reducer]
            assert labels.shape == (10, 50)
            assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert stored.embeddings["pca"].shape == (1000, 10)
    assert stored.map_coords.shape == (1000, 3)
    for name in ("report.html", "labels_pca.csv", "solutes_umap.csv"):
        assert (folder / "first" / name).stat().st_size > 0
    pngs = {p.name for p in (folder / "first" / "figures").glob("*.png")}
    assert {"map_3d_umap.png", "solutes_umap.png", "pdf_pca_Ga47Pt3_450K.png"} <= pngs
    assert "structure_umap_Ga47Bi3_450K.png" in pngs and "distance_pca_Ga47Pt3_450K.png" in pngs


def test_sevennet_descriptors_set_pt_apart_or_surface_from_core(first):
    """Pt gets a cluster of its own, or the Ga clusters differ in coordination and depth."""
    *_, summary = first
    for reducer, result in summary["reducers"].items():
        labels = result["labels"]
        pt_cluster = any(s["element_fractions"].get("Pt", 0) > 0.5 for s in labels)
        ga = [s for s in labels if s["element_fractions"].get("Ga", 0) > 0.5]
        coordination = [s["mean_coordination"] for s in ga]
        depth = [s["mean_depth_A"] for s in ga]
        separated = max(coordination) - min(coordination) > 1.0 and max(depth) - min(depth) > 1.0
        assert pt_cluster or separated, (reducer, labels)


def test_solutes_are_placed_in_the_shared_map_with_their_trace_depth(first):
    *_, output, summary = first
    for reducer in ("pca", "umap"):
        placed = {(p["source"], p["element"]): p for p in summary["reducers"][reducer]["solutes"]}
        assert set(placed) == {("Ga47Pt3_450K", "Pt"), ("Ga47Bi3_450K", "Bi")}
        for placement in placed.values():
            assert 0.0 <= placement["neighbour_surface_fraction"] <= 1.0
            assert sum(placement["label_fractions"].values()) == pytest.approx(1.0)
            assert placement["n_points"] == 30  # 3 solute atoms x 10 frames
        # Bi sits nearer the surface than Pt in space (its trace)
        pt, bi = placed[("Ga47Pt3_450K", "Pt")], placed[("Ga47Bi3_450K", "Bi")]
        assert bi["mean_depth_A"] < pt["mean_depth_A"]
    # ... and in descriptor space: its Ga neighbours lie further towards the surface cluster
    pca = {p["element"]: p for p in summary["reducers"]["pca"]["solutes"]}
    assert pca["Bi"]["neighbour_surface_coordinate"] > pca["Pt"]["neighbour_surface_coordinate"]
    assert "Solutes in the shared" in output


def test_other_reduction_settings_recompute_no_descriptor_and_a_seed_repeats(first):
    folder, config, cache, *_ = first
    again = [
        PT, BI, "-m", "7net-0", "-c", config, "--every", 3, "--device", "cpu",
        "--cache-dir", cache, "--reducer", "pca", "--dim", 5, "--n-clusters", 3, "--no-plot",
    ]  # fmt: skip
    output = cluster(*again, "-o", folder / "second")
    summary = json.loads((folder / "second" / "summary.json").read_text())
    assert summary["descriptors"]["cache_hits"] == 2
    assert summary["descriptors"]["computed_time_s"] == 0
    assert "all 2 runs from the cache" in output
    assert not (folder / "second" / "work").exists()  # no child was started
    cluster(*again, "-o", folder / "third")
    second = read_cluster_file(folder / "second" / "clusters.h5")
    third = read_cluster_file(folder / "third" / "clusters.h5")
    for a, b in zip(second.runs, third.runs, strict=True):
        np.testing.assert_array_equal(a.labels["pca"], b.labels["pca"])
        assert a.labels["pca"].max() == 2


def test_core_and_shell_of_a_gallium_particle_fall_in_different_clusters(tmp_path):
    """A rattled Ga147 icosahedron: every cluster holds core atoms only or shell atoms only, so
    core against shell is recovered (adjusted Rand index > 0.9) from SevenNet-0's descriptors
    alone (one element: no species to tell them apart). Four clusters, as the thesis used: the
    shell's vertices and the core's centre are environments of their own."""
    frames, core = core_shell_frames(2)
    path = tmp_path / "Ga147.extxyz"
    write(path, frames)
    config = tmp_path / "model_config.yaml"
    config.write_text(SEVENNET)
    cluster(
        path, "-m", "7net-0", "-c", config, "--every", 1, "--dim", 5, "--reducer", "pca",
        "--device", "cpu", "--cache-dir", tmp_path / "cache", "-o", tmp_path / "out", "--no-plot",
    )  # fmt: skip
    (run,) = read_cluster_file(tmp_path / "out" / "clusters.h5").runs
    labels = run.labels["pca"]
    truth = np.broadcast_to(core, labels.shape)
    in_core = {int(k): truth[labels == k].mean() for k in np.unique(labels)}
    assert all(share in (0.0, 1.0) for share in in_core.values()), in_core
    recovered = np.vectorize(lambda k: in_core[int(k)] > 0.5)(labels)
    assert adjusted_rand_score(truth.ravel(), recovered.ravel()) > 0.9


def test_a_damaged_cache_entry_is_computed_again_and_the_other_is_read(first, tmp_path):
    _, config, cache, *_ = first
    entries = sorted(cache.rglob("*.h5"))
    damaged = tmp_path / "cache"
    for entry in entries:
        target = damaged / entry.relative_to(cache)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.read_bytes())
    next(damaged.rglob("*.h5")).write_bytes(b"not an HDF5 file")
    output = cluster(
        PT, BI, "-m", "7net-0", "-c", config, "--every", 3, "--device", "cpu",
        "--cache-dir", damaged, "--reducer", "pca", "--no-plot", "-o", tmp_path / "out",
    )  # fmt: skip
    assert "1 run(s) computed" in output and "1 from the cache" in output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(run["cached"] for run in summary["runs"]) == [False, True]
    assert all("sevenn" in run["versions"] for run in summary["runs"])


@pytest.mark.mace
@needs_env("mace")
def test_an_element_the_model_lacks_is_refused_with_exit_2_and_nothing_cached(tmp_path):
    """mace-tiny-GaPt knows Ga and Pt only: the Au run is refused by the child in one line."""
    config = tmp_path / "model_config.yaml"
    config.write_text(f"MACE:\n  models:\n    mace-tiny-GaPt:\n      model_path: {TINY_MACE}\n")
    result = runner.invoke(
        app,
        ["analyze", "cluster", str(DATA / "Ga47Au3_450K.extxyz"), "-m", "mace-tiny-GaPt",
         "-c", str(config), "--every", "10", "--device", "cpu",
         "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "does not know element(s)" in " ".join(result.output.split())
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.h5"))
