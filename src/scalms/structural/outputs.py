"""What ``scalms analyze cluster`` leaves in its folder: the labels file (``clusters.h5``), the
summary (``summary.json``), one CSV table per reducer, the figures and ``report.html``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scalms.files import atomic_write_json, atomic_write_text
from scalms.io.cluster_files import ClusterFile, RunLabels, write_cluster_file
from scalms.plots.report import Table
from scalms.structural.cluster import ClusterAnalysis, settings_record


@dataclass(frozen=True)
class ClusterOutput:
    """What ``scalms analyze cluster`` wrote."""

    analysis: ClusterAnalysis
    out: Path
    labels_file: Path
    summary: Path
    report: Path | None
    figures: list[Path]


PLOTLYJS = "figures/plotly.min.js"
"""One copy of plotly.js serves every page of the folder."""


def labels_file_data(analysis: ClusterAnalysis) -> ClusterFile:
    pooled = analysis.pooled
    runs = []
    for item in analysis.descriptors.runs:
        run, traj = item.run, item.run.trajectory
        rows = pooled.slices[run.name]
        shape = (traj.n_frames, traj.n_atoms)
        runs.append(
            RunLabels(
                name=run.name,
                path=str(run.path),
                frames=run.frames,
                numbers=traj.numbers,
                positions=traj.positions,
                coordination=pooled.coordination[rows].reshape(shape),
                depth_A=pooled.depth_A[rows].reshape(shape),
                distance_A=pooled.distance_A[rows].reshape(shape),
                labels={k: r.labels[rows].reshape(shape) for k, r in analysis.results.items()},
            )
        )
    settings = settings_record(analysis.settings, analysis.selection)
    settings["runs"] = [run.name for run in analysis.runs]
    return ClusterFile(
        model=analysis.descriptors.model,
        source=analysis.descriptors.source,
        width=analysis.descriptors.runs[0].width,
        settings=settings,
        runs=runs,
        embeddings={k: r.embedding for k, r in analysis.results.items()},
        map_indices=analysis.map_indices,
        map_coords=analysis.map_coords,
    )


def summary_record(analysis: ClusterAnalysis) -> dict:
    """Settings, descriptor cost and cache use, timings, and per reducer the label summaries and
    solute placements: what a script or a later session reads without opening HDF5."""
    described = analysis.descriptors
    n_points = analysis.pooled.n_points
    computed = [d for d in described.runs if not d.cached]
    per_atom_frame = (
        sum(d.compute_time_s for d in computed) / sum(d.run.n_atom_frames for d in computed)
        if computed
        else None
    )
    return {
        "settings": settings_record(analysis.settings, analysis.selection),
        "model": described.model,
        "descriptor_source": described.source,
        "descriptor_width": described.runs[0].width,
        "runs": [
            {
                "name": d.run.name,
                "path": str(d.run.path),
                "frames": len(d.run.frames),
                "atoms": d.run.trajectory.n_atoms,
                "complete": d.run.trajectory.complete,
                "cached": d.cached,
                "versions": json.loads(d.versions),
            }
            for d in described.runs
        ],
        "notes": described.notes,
        "atom_frames": n_points,
        "descriptors": {
            "cache_hits": described.cache_hits,
            "computed_runs": len(computed),
            "computed_time_s": described.computed_time_s,
            "seconds_per_atom_frame": per_atom_frame,
            "wall_s": described.wall_s,
        },
        "timings_s": {
            **{f"{k}_reduce": r.reduce_s for k, r in analysis.results.items()},
            **{f"{k}_cluster": r.cluster_s for k, r in analysis.results.items()},
            "map_3d": analysis.map_s,
        },
        "reducers": {
            reducer: {
                "dimensions": int(result.embedding.shape[1]),
                "surface_label": result.surface_label,
                "bulk_label": result.bulk_label,
                "labels": [asdict(s) for s in result.summaries],
                "solutes": [asdict(p) for p in result.placements],
            }
            for reducer, result in analysis.results.items()
        },
    }


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    return buffer.getvalue()


def write_outputs(
    analysis: ClusterAnalysis,
    out: Path,
    *,
    plot: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ClusterOutput:
    """Write the labels file and summary, then (``plot``) the tables, figures and report."""
    from scalms.plots.structural import label_table, solute_table

    say = progress or (lambda _: None)
    out = Path(out)
    say("writing clusters.h5")
    labels_file = write_cluster_file(out / "clusters.h5", labels_file_data(analysis))
    summary = atomic_write_json(out / "summary.json", _json_safe(summary_record(analysis)))
    written = {labels_file, summary}
    tables = []
    for reducer, result in analysis.results.items():
        table = label_table(result.summaries)
        tables.append(Table(f"{reducer.upper()}: {table.caption}", table.header, table.rows))
        written.add(atomic_write_text(out / f"labels_{reducer}.csv", _csv(table)))
        if result.placements:
            solutes = solute_table(result.placements)
            tables.append(
                Table(f"{reducer.upper()}: {solutes.caption}", solutes.header, solutes.rows)
            )
            written.add(atomic_write_text(out / f"solutes_{reducer}.csv", _csv(solutes)))
    figures, report = [], None
    if plot:
        say("figures")
        entries = _figures(analysis, out)
        figures = [e.png for e in entries if e.png is not None]
        report = _report(analysis, out, tables, entries)
        written |= {report, *figures, *(e.html for e in entries if e.html is not None)}
    _remove_stale(out, written)
    return ClusterOutput(analysis, out, labels_file, summary, report, figures)


OUTPUT_PATTERNS = (
    "labels_*.csv",
    "solutes_*.csv",
    "report.html",
    "figures/*.png",
    "figures/*.html",
)
"""What this command writes in its folder: an earlier run's files that this one did not write
again (another reducer, a run now left out, a report with --no-plot) would not match
clusters.h5, so they go."""


def _remove_stale(out: Path, written: set[Path]) -> None:
    keep = {path.resolve() for path in written}
    for pattern in OUTPUT_PATTERNS:
        for path in out.glob(pattern):
            if path.resolve() not in keep:
                path.unlink(missing_ok=True)


def _json_safe(value):
    """``value`` with NaN and infinities as None: JSON has no NaN, and strict readers refuse it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _figures(analysis: ClusterAnalysis, out: Path) -> list:
    from scalms.plots._style import cycle_colour
    from scalms.plots.pdf import save_pair_distribution
    from scalms.plots.report import FigureEntry
    from scalms.plots.structural import (
        save_distance_by_label,
        save_embedding_map,
        save_labelled_structure,
        save_solute_map,
    )

    folder = out / "figures"
    js = out / PLOTLYJS
    pooled = analysis.pooled
    entries = []

    def add(files, caption):
        entries.append(FigureEntry(caption, png=files.png, html=files.html))

    model = analysis.descriptors.model
    for reducer, result in analysis.results.items():
        name = reducer.upper()
        map_labels = result.labels[analysis.map_indices]
        add(
            save_embedding_map(
                folder / f"map_3d_{reducer}",
                analysis.map_coords,
                map_labels,
                title=f"{model} descriptors, 3D UMAP; labels from {name}",
                plotlyjs=js,
            ),
            f"3D UMAP of the descriptors, coloured by the {name} labels (label 0 nearest the "
            "surface).",
        )
        for run in analysis.runs:
            traj = run.trajectory
            rows = pooled.slices[run.name]
            labels = result.labels[rows].reshape(traj.n_frames, traj.n_atoms)
            add(
                save_labelled_structure(
                    folder / f"structure_{reducer}_{run.name}",
                    traj.positions[-1],
                    labels[-1],
                    np.asarray(traj.symbols),
                    host=analysis.settings.host,
                    title=f"{run.name}, frame {int(run.frames[-1])}: {name} labels",
                    plotlyjs=js,
                ),
                f"{run.name}: the last described frame, atoms coloured by {name} label.",
            )
            add(
                save_distance_by_label(
                    folder / f"distance_{reducer}_{run.name}",
                    pooled.distance_A[rows],
                    result.labels[rows],
                    title=f"{run.name}: distance from the centre of mass per {name} label",
                    plotlyjs=js,
                ),
                f"{run.name}: distance from the centre of mass of each label's atoms.",
            )
            curves = analysis.pdfs.get(reducer, {}).get(run.name)
            if curves:
                add(
                    save_pair_distribution(
                        folder / f"pdf_{reducer}_{run.name}",
                        curves,
                        title=f"{run.name}: PDF of each {name} label (all atoms as neighbours)",
                        colours={k: cycle_colour(int(k.split()[-1])) for k in curves},
                        plotlyjs=js,
                    ),
                    f"{run.name}: pair distribution of each label's atoms against all atoms.",
                )
        if result.placements:
            groups = _solute_groups(analysis, reducer)
            add(
                save_solute_map(
                    folder / f"solutes_{reducer}",
                    analysis.map_coords,
                    groups,
                    title=f"Solute environments in one shared map ({model})",
                    plotlyjs=js,
                ),
                "Every run's solute atom-frames in the shared 3D map; host atoms in grey.",
            )
    return entries


def _solute_groups(analysis: ClusterAnalysis, reducer: str) -> dict[str, np.ndarray]:
    """Legend name -> mask over the map's points: host atoms, then each run's solutes."""
    host = analysis.settings.host
    symbols = analysis.pooled.symbols[analysis.map_indices]
    sources = analysis.pooled.sources[analysis.map_indices]
    groups = {f"host {host}": symbols == host}
    for placement in analysis.results[reducer].placements:
        mask = (symbols == placement.element) & (sources == placement.source)
        if mask.any():
            groups[f"{placement.element} ({placement.source})"] = mask
    return groups


def _report(analysis: ClusterAnalysis, out: Path, tables: list[Table], entries: list) -> Path:
    from scalms.plots.report import write_report

    described = analysis.descriptors
    settings = analysis.settings
    parameters = {
        "model": described.model,
        "descriptors": f"{described.source} (width {described.runs[0].width})",
        "runs": ", ".join(f"{d.run.name} ({len(d.run.frames)} frames)" for d in described.runs),
        "frames": analysis.selection.describe(),
        "atom-frames": analysis.pooled.n_points,
        "descriptor cache": f"{described.cache_hits} of {len(described.runs)} runs from the cache",
        "reduction": ", ".join(
            f"{k} to {r.embedding.shape[1]} dimensions" for k, r in analysis.results.items()
        )
        + f" (asked: {settings.dim}; UMAP: {settings.umap_neighbors} neighbours, "
        f"min_dist {settings.umap_min_dist})",
        "clustering": f"bisecting k-means, {settings.n_clusters} clusters, seed {settings.seed}",
        "coordination cutoff": f"{settings.coordination_cutoff_A} Å",
        "surface": f"{settings.n_surface} furthest {settings.host} atoms along each atom",
    }
    incomplete = [d.run.name for d in described.runs if not d.run.trajectory.complete]
    if incomplete:
        parameters["incomplete runs"] = ", ".join(incomplete) + " (described as far as saved)"
    if described.notes:
        parameters["notes"] = "; ".join(described.notes)
    return write_report(
        out / "report.html",
        title=f"Structural analysis: {described.model} descriptors",
        parameters=parameters,
        tables=tables,
        figures=entries,
    )
