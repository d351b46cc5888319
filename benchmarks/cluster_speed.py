"""Reduction and clustering of 100,000 atom-frames of width-128 descriptors, step by step.

Target (issue 13): `scalms analyze cluster` reduces and clusters 100,000 atom-frames in under a
minute on two cores, with PCA and with UMAP (to --dim 10, --clusters 4), the 3D map included.

The descriptors are synthetic but shaped like an MLIP's: five anisotropic Gaussian blobs of
different sizes (38, 27, 18, 10 and 5 % of the atom-frames, plus 2 % uniform noise) in a
12-dimensional latent space, mixed linearly into 128 channels of different scales, with
independent noise on every channel. Five environments into four clusters, as the thesis did, so
at least two blobs must share a label.

Paths, each timed step by step in this process (standardise, reduce, bisecting k-means, 3D map):
- "pca": PCA to --dim;
- "umap": the default, UMAP learnt on `UMAP_FIT_POINTS` atom-frames and the others placed on it
  with `UMAP.transform`;
- variants, timed for the reduction only and compared by their labels: UMAP fitted on all
  atom-frames (the reference the fast path is measured against), on 10,000, PCA to 50 first,
  and the default unseeded (umap-learn then uses every core but is not reproducible).
Agreement is the adjusted Rand index of the labels: against the reference, and against the
blob each atom-frame was drawn from (noise excluded). Importing umap and numba's first
compilations are timed apart ("umap warm-up"): a first run in a fresh process pays them once.

Usage: .venv/bin/python benchmarks/cluster_speed.py [--points 100000] [--width 128]
       [--dim 10] [--clusters 4] [--no-variants]
Writes benchmarks/results/cluster_speed.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _machine import cpu_description

from scalms.analysis import clustering
from scalms.analysis.clustering import bisecting_kmeans, embedding_map, standardise

OUT = Path(__file__).parent / "results" / "cluster_speed.json"
LATENT_DIM = 12
BLOB_FRACTIONS = (0.38, 0.27, 0.18, 0.10, 0.05)
NOISE_FRACTION = 0.02
TARGET_S = 60.0


def synthetic_descriptors(
    n_points: int, width: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(M, width) float32 descriptors and the blob of each (-1: noise), shuffled."""
    rng = np.random.default_rng(seed)
    counts = [round(f * n_points) for f in BLOB_FRACTIONS]
    counts.append(n_points - sum(counts))  # the noise takes the rest
    centres = rng.normal(0.0, 2.5, (len(BLOB_FRACTIONS), LATENT_DIM))
    latent, blob = [], []
    for b, (centre, count) in enumerate(zip(centres, counts[:-1], strict=True)):
        axes = np.linalg.qr(rng.normal(size=(LATENT_DIM, LATENT_DIM)))[0]
        scales = rng.uniform(0.2, 1.2, LATENT_DIM) * (0.6 + 0.8 * rng.random())
        latent.append(centre + (rng.normal(size=(count, LATENT_DIM)) * scales) @ axes.T)
        blob.append(np.full(count, b))
    low, high = centres.min(axis=0) - 3.0, centres.max(axis=0) + 3.0
    latent.append(rng.uniform(low, high, (counts[-1], LATENT_DIM)))
    blob.append(np.full(counts[-1], -1))
    latent, blob = np.vstack(latent), np.concatenate(blob)
    mixing = rng.normal(size=(LATENT_DIM, width)) / np.sqrt(LATENT_DIM)
    channel_scale = rng.lognormal(0.0, 1.0, width)  # channels of very different magnitudes
    descriptors = (latent @ mixing + rng.normal(0.0, 0.3, (n_points, width))) * channel_scale
    order = rng.permutation(n_points)
    return descriptors[order].astype(np.float32), blob[order]


def timed(function, *args, **kwargs):
    """(result, seconds of wall time) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def warm_up_umap(width: int, dim: int) -> float:
    """Seconds to import umap and compile its fit and transform on a small set.

    Above 4,096 points umap-learn finds neighbours with pynndescent instead of exact distances,
    so the warm-up fits 5,000 to compile that path too.
    """
    start = time.perf_counter()
    values = np.random.default_rng(1).normal(size=(6000, width))
    clustering._umap(values, dim, 0, 15, 0.1, fit_points=5000)
    return time.perf_counter() - start


def run_path(name, values, descriptors, reduce, n_clusters, seed, with_map) -> dict:
    """Time one path's steps; the standardisation is shared, measured once by the caller."""
    embedding, reduce_s = timed(reduce, values)
    labels, kmeans_s = timed(bisecting_kmeans, embedding, n_clusters, seed=seed)
    steps = {"reduce": reduce_s, "bisecting k-means": kmeans_s}
    if with_map:
        _, steps["3D map"] = timed(embedding_map, descriptors, seed=seed)
    return {"path": name, "steps": steps, "labels": labels}


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-variants", action="store_true", help="skip the slow comparisons")
    args = parser.parse_args()
    dim, seed, fit = args.dim, args.seed, clustering.UMAP_FIT_POINTS
    load_start = os.getloadavg()[0]
    print(f"{args.points} atom-frames x {args.width}, load average {load_start:.2f}", flush=True)

    descriptors, blob = synthetic_descriptors(args.points, args.width, seed)
    warm_s = warm_up_umap(args.width, dim)
    print(f"  umap warm-up (import + numba compilation): {warm_s:.1f} s", flush=True)
    values, standardise_s = timed(standardise, descriptors)

    def umap_reduction(fit_points, umap_seed=seed):
        return lambda v: clustering._umap(v, dim, umap_seed, 15, 0.1, fit_points)

    def pca_then_umap(v):
        return clustering._umap(clustering._pca(v, 50, seed), dim, seed, 15, 0.1, None)

    paths = [
        ("pca", lambda v: clustering._pca(v, dim, seed), True),
        (f"umap (default: fit {fit:,} + transform)", umap_reduction(fit), True),
    ]
    if not args.no_variants:
        paths += [
            ("umap fit all (reference)", umap_reduction(None), False),
            ("umap fit 10,000 + transform", umap_reduction(10_000), False),
            ("PCA 50, then umap fit all", pca_then_umap, False),
            (f"umap fit {fit:,} + transform, unseeded", umap_reduction(fit, None), False),
        ]
    results = []
    for name, reduce, with_map in paths:
        result = run_path(name, values, descriptors, reduce, args.clusters, seed, with_map)
        result["steps"] = {"standardise": standardise_s, **result["steps"]}
        result["total_s"] = sum(result["steps"].values())
        results.append(result)
        print(f"  {name}: {result['total_s']:.1f} s {result['steps']}", flush=True)

    reference = next((r for r in results if "reference" in r["path"]), None)
    blobs = blob >= 0
    rows = []
    for result in results:
        labels = result["labels"]
        rows.append(
            {
                "path": result["path"],
                "seconds": {step: round(s, 2) for step, s in result["steps"].items()},
                "total_s": round(result["total_s"], 2),
                "ari_vs_reference": None
                if reference is None
                else round(adjusted_rand(reference["labels"], labels), 3),
                "ari_vs_blobs": round(adjusted_rand(blob[blobs], labels[blobs]), 3),
            }
        )
    load_end = os.getloadavg()[0]
    report = {
        "machine": cpu_description(),
        "load_average": {"start": round(load_start, 2), "end": round(load_end, 2)},
        "points": args.points,
        "width": args.width,
        "dim": dim,
        "clusters": args.clusters,
        "umap_fit_points": fit,
        "umap_warm_up_s": round(warm_s, 2),
        "target_s": TARGET_S,
        "note": "3D map: UMAP of a 20,000-point subsample (embedding_map); variants time the "
        "reduction and k-means only; the UMAP warm-up is paid once per process, not included",
        "paths": rows,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nMachine: {report['machine']}; load {load_start:.2f} at start, {load_end:.2f} at end")
    print(f"UMAP warm-up (once per process): {warm_s:.1f} s\n")
    print(
        "| path | standardise | reduce | k-means | 3D map | total s | ARI vs full UMAP "
        "| ARI vs blobs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        s = row["seconds"]
        mapped = f"{s['3D map']:.1f}" if "3D map" in s else "–"
        print(
            f"| {row['path']} | {s['standardise']:.2f} | {s['reduce']:.1f} | "
            f"{s['bisecting k-means']:.1f} | {mapped} | {row['total_s']:.1f} | "
            f"{row['ari_vs_reference']} | {row['ari_vs_blobs']} |"
        )


if __name__ == "__main__":
    main()
