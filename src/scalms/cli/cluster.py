"""``scalms analyze cluster``: cluster per-atom MLIP descriptors of trajectories."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors
from scalms.cli.types import (
    DEFAULT_CONFIG,
    POSITIVE,
    DeviceOption,
    ModelConfigOption,
    PlotOption,
    SurfaceAtomsOption,
    TimeoutOption,
)


class Reducer(StrEnum):
    pca = "pca"
    umap = "umap"
    both = "both"


TrajectoriesArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Results files (MD_dynamics_results.h5), trajectory files (.h5md), or any "
        "trajectory ASE reads; several (e.g. one per solute) share one embedding."
    ),
]


@user_errors
def cluster(
    trajectories: TrajectoriesArgument,
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Model whose descriptors are used (MACE, SevenNet)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder. Default: clusters/ beside the first file."
        ),
    ] = None,
    every: Annotated[int, typer.Option(help="Describe every Nth saved frame.", min=1)] = 10,
    start: Annotated[int, typer.Option(help="First saved frame described.", min=0)] = 0,
    stop: Annotated[
        int | None, typer.Option(help="Saved frame to stop before. Default: the end.", min=0)
    ] = None,
    structure: Annotated[
        list[str] | None,
        typer.Option("--structure", "-s", help="Only these runs of a results file."),
    ] = None,
    n_clusters: Annotated[int, typer.Option(help="Clusters (bisecting k-means).", min=2)] = 4,
    dim: Annotated[int, typer.Option(help="Dimensions after reduction.", min=1)] = 10,
    reducer: Annotated[
        Reducer, typer.Option(help="pca, umap, or both (one labelling each).")
    ] = Reducer.both,
    umap_neighbors: Annotated[int, typer.Option(help="UMAP n_neighbors.", min=2)] = 15,
    umap_min_dist: Annotated[float, typer.Option(help="UMAP min_dist.", min=0.0)] = 0.1,
    seed: Annotated[
        int, typer.Option(help="Seed of UMAP and k-means: same seed, same labels.")
    ] = 0,
    host: Annotated[str, typer.Option(help="Host element; the others are solutes.")] = "Ga",
    coordination_cutoff_A: Annotated[
        float,
        typer.Option(
            "--coordination-cutoff-A",
            help="Neighbours within this distance count for coordination, Å.",
            click_type=POSITIVE,
        ),
    ] = 3.7,
    surface_atoms: SurfaceAtomsOption = 5,
    map_points: Annotated[
        int, typer.Option(help="Atom-frames drawn in the 3D maps (a seeded sample beyond).", min=10)
    ] = 20_000,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute descriptors even when cached.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Descriptor cache. Default: $SCALMS_CACHE_DIR or ~/.cache/scalms/descriptors."
        ),
    ] = None,
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    device: DeviceOption = "auto",
    timeout: TimeoutOption = None,
    plot: PlotOption = True,
) -> None:
    """Cluster the per-atom descriptors of TRAJECTORIES: reduce (PCA/UMAP), label (bisecting
    k-means), read each label (elements, coordination, depth, PDF) and place the solutes of
    every run in one shared map.

    Descriptors are computed in the model's own environment and cached: rerunning with other
    reduction or clustering settings computes none. Writes clusters.h5 (a label per atom and
    frame), summary.json, CSV tables, figures and report.html.
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.config import load_config
    from scalms.structural.cache import DescriptorCache
    from scalms.structural.cluster import REDUCER_CHOICES, ClusterSettings
    from scalms.structural.run import cluster_trajectories
    from scalms.structural.selection import FrameSelection

    terminate_like_ctrl_c()
    console = make_console()
    (entry,) = load_config(model_config).select([model])
    settings = ClusterSettings(
        n_clusters=n_clusters,
        dim=dim,
        reducers=REDUCER_CHOICES[reducer.value],
        umap_neighbors=umap_neighbors,
        umap_min_dist=umap_min_dist,
        seed=seed,
        coordination_cutoff_A=coordination_cutoff_A,
        n_surface=surface_atoms,
        host=host,
        map_points=map_points,
    )
    selection = FrameSelection(every=every, start=start, stop=stop)
    out = out or trajectories[0].parent / "clusters"
    with ModelProgress(console) as progress, console.status("") as status:
        output = cluster_trajectories(
            trajectories,
            entry,
            out,
            settings=settings,
            selection=selection,
            structures=structure,
            cache=DescriptorCache(cache_dir),
            use_cache=not no_cache,
            device=device,
            plot=plot,
            reporter=progress,
            timeout_s=timeout,
            progress=status.update,
        )
    print_summary(console, output)


def print_summary(console, output) -> None:
    from rich.table import Table

    described = output.analysis.descriptors
    cached = described.cache_hits
    if cached == len(described.runs):
        how = f"all {cached} runs from the cache (descriptor time 0 s)"
    else:
        how = (
            f"{len(described.runs) - cached} run(s) computed in {described.computed_time_s:.1f} s"
            f" ({1e3 * described.computed_time_s / max(1, described.n_atom_frames):.2f} ms per "
            f"atom-frame), {cached} from the cache"
        )
    console.print(
        f"descriptors: {described.source}, width {described.runs[0].width}, "
        f"{described.n_atom_frames} atom-frames; {how}"
    )
    for reducer, result in output.analysis.results.items():
        dims = result.embedding.shape[1]
        table = Table(title=f"{reducer.upper()} to {dims} dimensions: labels (0 nearest surface)")
        for column in ("label", "atom-frames", "elements", "coordination", "depth (Å)"):
            table.add_column(column, justify="left" if column == "elements" else "right")
        for s in result.summaries:
            elements = ", ".join(
                f"{el} {100 * f:.0f}%"
                for el, f in sorted(s.element_fractions.items(), key=lambda kv: -kv[1])
                if f >= 0.005
            )
            table.add_row(
                str(s.label),
                f"{s.n_points} ({100 * s.fraction:.0f}%)",
                elements,
                f"{s.mean_coordination:.2f}",
                f"{s.mean_depth_A:.2f}",
            )
        console.print(table)
        if result.placements:
            table = Table(title=f"Solutes in the shared {reducer.upper()} embedding")
            columns = ("run", "solute", "spread", "neighbours' surface coordinate",
                       "neighbours labelled surface", "depth (Å)")  # fmt: skip
            for column in columns:
                table.add_column(column, justify="right")
            for p in result.placements:
                table.add_row(
                    p.source,
                    p.element,
                    f"{p.spread:.2f}",
                    _number(p.neighbour_surface_coordinate, "{:.2f}"),
                    _number(100 * p.neighbour_surface_fraction, "{:.0f}%"),
                    f"{p.mean_depth_A:.2f}",
                )
            console.print(table)
    for note in described.notes:
        console.print(f"[yellow]note[/]: {note}")
    incomplete = [d.run.name for d in described.runs if not d.run.trajectory.complete]
    if incomplete:
        console.print(f"[yellow]note[/]: incomplete runs, described as far as saved: {incomplete}")
    where = output.report or output.summary
    console.print(f"labels: {output.labels_file}; report: {where}")


def _number(value: float, form: str) -> str:
    """``value`` in ``form``, or a dash where it is undefined (a solute without host neighbours)."""
    return form.format(value) if value == value else "–"
