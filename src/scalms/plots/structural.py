"""Figures of the structural analysis: descriptor maps, labelled structures, per-label profiles.

`embedding_map_*` draws the 3D UMAP projection of the descriptors coloured by cluster label
(thesis Fig 4.10), `labelled_structure_*` one frame's atoms in space coloured the same way with the
solutes marked (Fig 4.11), `distance_by_label_*` each label's distance from the centre of mass,
and `solute_map_*` the environments of every solute of several runs in one shared map. The tables
give the per-label summaries and the solute placements. The per-label PDF needs no figure of its
own: `scalms.plots.pdf` draws a dict such as {"label 0": PairDistribution}.
Everything drawn comes in computed (`scalms.analysis.clustering`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from ase.data import atomic_numbers
from matplotlib.figure import Figure

from scalms.analysis.results import LabelSummary, SolutePlacement
from scalms.plots._style import (
    DISTANCE_FROM_COM,
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    element_colour,
    histogram_density,
    new_figure,
    plotly_layout,
    save_figure,
    shared_edges,
)
from scalms.plots.report import Table

MAP_AXES = ("UMAP 1", "UMAP 2", "UMAP 3")
"""UMAP coordinates have no unit and no meaning of their own (thesis section 4.4)."""
POSITION_AXES = ("x [Å]", "y [Å]", "z [Å]")
DENSITY_LABEL = "density [1/Å]"
HOST_COLOUR = "#c8c8c8"
"""Host points of the solute map: light grey, behind the solutes' colours."""
MARKERS = ("o", "^", "s", "D", "v", "P")
PLOTLY_MARKERS = ("circle", "diamond", "square", "cross", "circle-open", "diamond-open")
"""Groups of the same element (one solute in several runs) differ by marker."""


# ---------------------------------------------------------------- the 3D descriptor map


def embedding_map_figure(
    coords: np.ndarray, labels: np.ndarray, *, title: str | None = None
) -> Figure:
    """Static 3D scatter of the (K, 3) map coordinates, one colour per label."""
    coords, labels = _points_and_labels(coords, labels)
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot(projection="3d")
    size = _marker_size(len(coords))
    for label in np.unique(labels):
        mask = labels == label
        ax.scatter(
            *coords[mask].T,
            s=size,
            color=cycle_colour(int(label)),
            label=f"label {label}",
            depthshade=False,
            linewidths=0,
        )
    _axes_3d(ax, MAP_AXES)
    ax.legend(frameon=False, markerscale=max(1.0, 12.0 / size), loc="upper left")
    ax.set_title(title or f"Descriptor map of {len(coords)} atom-frames")
    return fig


def embedding_map_plotly(
    coords: np.ndarray, labels: np.ndarray, *, title: str | None = None
) -> go.Figure:
    """Interactive twin of :func:`embedding_map_figure`."""
    coords, labels = _points_and_labels(coords, labels)
    fig = go.Figure()
    size = 2 if len(coords) > 5000 else 3
    for label in np.unique(labels):
        mask = labels == label
        fig.add_trace(
            _scatter_3d(coords[mask], f"label {label}", cycle_colour(int(label)), size),
        )
    _layout_3d(fig, title or f"Descriptor map of {len(coords)} atom-frames", MAP_AXES)
    return fig


def save_embedding_map(
    stem: str | Path,
    coords: np.ndarray,
    labels: np.ndarray,
    *,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the descriptor map."""
    return save_figure(
        stem,
        embedding_map_figure(coords, labels, title=title),
        embedding_map_plotly(coords, labels, title=title),
        plotlyjs=plotlyjs,
    )


# ---------------------------------------------------------------- one labelled frame


def labelled_structure_figure(
    positions: np.ndarray,
    labels: np.ndarray,
    symbols: Sequence[str],
    *,
    title: str | None = None,
    host: str | None = None,
) -> Figure:
    """Static 3D view of one frame's (N, 3) positions in Å, coloured by label.

    Solute atoms (every element but `host`; None: the most common element) are drawn larger,
    as diamonds outlined in black, so they stand out whatever their label.
    """
    positions, labels, solute = _structure(positions, labels, symbols, host)
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot(projection="3d")
    for label in np.unique(labels):
        mask = labels == label
        colour = cycle_colour(int(label))
        host_atoms = mask & ~solute
        ax.scatter(
            *positions[host_atoms].T,
            s=30,
            color=colour,
            label=f"label {label}",
            edgecolors="none",
            depthshade=True,
        )
        if (mask & solute).any():
            ax.scatter(
                *positions[mask & solute].T,
                s=110,
                color=colour,
                marker="D",
                edgecolors="black",
                linewidths=1.2,
                depthshade=False,
            )
    if solute.any():  # one legend key for the marking, whatever the solutes' labels
        ax.scatter(
            [],
            [],
            [],
            s=110,
            marker="D",
            facecolors="white",
            edgecolors="black",
            label=f"solute ({', '.join(_solute_names(symbols, solute))})",
        )
    _axes_3d(ax, POSITION_AXES)
    ax.set_aspect("equal")
    ax.legend(frameon=False, loc="upper left")
    ax.set_title(title or f"Cluster labels of {len(positions)} atoms")
    return fig


def labelled_structure_plotly(
    positions: np.ndarray,
    labels: np.ndarray,
    symbols: Sequence[str],
    *,
    title: str | None = None,
    host: str | None = None,
) -> go.Figure:
    """Interactive twin of :func:`labelled_structure_figure`; hovering names the element."""
    positions, labels, solute = _structure(positions, labels, symbols, host)
    names = np.asarray(symbols, dtype=str)
    fig = go.Figure()
    for label in np.unique(labels):
        mask = labels == label
        colour = cycle_colour(int(label))
        for is_solute in (False, True):
            chosen = mask & (solute if is_solute else ~solute)
            if not chosen.any():
                continue
            trace = _scatter_3d(
                positions[chosen],
                f"label {label}" + (" (solute)" if is_solute else ""),
                colour,
                9 if is_solute else 5,
                symbol="diamond" if is_solute else "circle",
            )
            trace.text = names[chosen]
            trace.hovertemplate = "%{text}<br>x %{x:.2f} Å<br>y %{y:.2f} Å<br>z %{z:.2f} Å"
            if is_solute:
                trace.marker.line = {"color": "black", "width": 2}
            fig.add_trace(trace)
    _layout_3d(fig, title or f"Cluster labels of {len(positions)} atoms", POSITION_AXES)
    fig.update_scenes(aspectmode="data")  # Å on every axis alike
    return fig


def save_labelled_structure(
    stem: str | Path,
    positions: np.ndarray,
    labels: np.ndarray,
    symbols: Sequence[str],
    *,
    title: str | None = None,
    host: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the labelled frame."""
    return save_figure(
        stem,
        labelled_structure_figure(positions, labels, symbols, title=title, host=host),
        labelled_structure_plotly(positions, labels, symbols, title=title, host=host),
        plotlyjs=plotlyjs,
    )


# ---------------------------------------------------------------- distance from the centre


def distance_by_label_figure(
    distance_A: np.ndarray, labels: np.ndarray, *, title: str | None = None, bins: int = 40
) -> Figure:
    """Each label's distribution of distance from the centre of mass (Å), on shared bins.

    Every curve is a probability density (it integrates to one), so small labels stay visible.
    """
    edges, densities = _distance_densities(distance_A, labels, bins)
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    for label, density in densities.items():
        ax.stairs(density, edges, color=cycle_colour(label), linewidth=1.5, label=f"label {label}")
    ax.set_xlabel(DISTANCE_FROM_COM)
    ax.set_ylabel(DENSITY_LABEL)
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(frameon=False)
    ax.set_title(title or "Distance from the centre of mass by label")
    return fig


def distance_by_label_plotly(
    distance_A: np.ndarray, labels: np.ndarray, *, title: str | None = None, bins: int = 40
) -> go.Figure:
    """Interactive twin of :func:`distance_by_label_figure`."""
    edges, densities = _distance_densities(distance_A, labels, bins)
    fig = go.Figure()
    for label, density in densities.items():
        fig.add_trace(
            go.Scatter(
                x=edges,
                y=np.r_[density, density[-1]],
                mode="lines",
                line={"shape": "hv", "color": cycle_colour(label), "width": 2},
                name=f"label {label}",
            )
        )
    plotly_layout(
        fig,
        title=title or "Distance from the centre of mass by label",
        x_title=DISTANCE_FROM_COM,
        y_title=DENSITY_LABEL,
    )
    return fig


def save_distance_by_label(
    stem: str | Path,
    distance_A: np.ndarray,
    labels: np.ndarray,
    *,
    title: str | None = None,
    bins: int = 40,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the per-label distance distributions."""
    return save_figure(
        stem,
        distance_by_label_figure(distance_A, labels, title=title, bins=bins),
        distance_by_label_plotly(distance_A, labels, title=title, bins=bins),
        plotlyjs=plotlyjs,
    )


# ---------------------------------------------------------------- solutes in the shared map


def solute_map_figure(
    coords: np.ndarray, groups: Mapping[str, np.ndarray], *, title: str | None = None
) -> Figure:
    """Static 3D map of the (K, 3) coordinates with each named group of points drawn apart.

    `groups` maps a legend name to a (K,) boolean mask. A name starting with "host" is drawn
    small and grey, underneath; a name starting with an element symbol ("Pt (Ga47Pt3)") takes
    that element's colour, a repeated element another marker; other names take the cycle.
    """
    coords, styles = _solute_groups(coords, groups)
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot(projection="3d")
    for name, mask, style in styles:
        ax.scatter(
            *coords[mask].T,
            s=3 if style["host"] else 22,
            color=style["colour"],
            marker=MARKERS[style["repeat"] % len(MARKERS)],
            label=name,
            depthshade=False,
            linewidths=0,
            alpha=0.35 if style["host"] else 1.0,
        )
    _axes_3d(ax, MAP_AXES)
    ax.legend(frameon=False, loc="upper left", markerscale=1.5)
    ax.set_title(title or "Solute environments in the shared descriptor map")
    return fig


def solute_map_plotly(
    coords: np.ndarray, groups: Mapping[str, np.ndarray], *, title: str | None = None
) -> go.Figure:
    """Interactive twin of :func:`solute_map_figure`."""
    coords, styles = _solute_groups(coords, groups)
    fig = go.Figure()
    for name, mask, style in styles:
        trace = _scatter_3d(
            coords[mask],
            name,
            style["colour"],
            2 if style["host"] else 5,
            symbol=PLOTLY_MARKERS[style["repeat"] % len(PLOTLY_MARKERS)],
        )
        if style["host"]:
            trace.marker.opacity = 0.35
        fig.add_trace(trace)
    _layout_3d(fig, title or "Solute environments in the shared descriptor map", MAP_AXES)
    return fig


def save_solute_map(
    stem: str | Path,
    coords: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the shared solute map."""
    return save_figure(
        stem,
        solute_map_figure(coords, groups, title=title),
        solute_map_plotly(coords, groups, title=title),
        plotlyjs=plotlyjs,
    )


# ---------------------------------------------------------------- tables


def label_table(summaries: Sequence[LabelSummary], *, caption: str | None = None) -> Table:
    """The per-label summaries as a report table, one row per label."""
    rows = [
        [
            s.label,
            s.n_points,
            f"{s.fraction:.3f}",
            _shares(s.element_fractions),
            f"{s.mean_coordination:.2f}",
            f"{s.mean_depth_A:.2f}",
            f"{s.mean_distance_from_centre_A:.2f}",
        ]
        for s in summaries
    ]
    return Table(
        caption=caption or "What each cluster label holds (depth below the adaptive surface)",
        header=[
            "label",
            "atom-frames",
            "fraction",
            "elements",
            "mean coordination",
            "mean depth [Å]",
            "mean distance from centre [Å]",
        ],
        rows=rows,
    )


def solute_table(placements: Sequence[SolutePlacement], *, caption: str | None = None) -> Table:
    """The solute placements as a report table, one row per (run, element).

    Distances are in the units of the reduced descriptors, not Å. The neighbours' coordinate is
    their mean place between the host's bulk centroid (0) and surface centroid (1).
    """
    rows = [
        [
            p.source,
            p.element,
            p.n_points,
            _shares(p.label_fractions),
            f"{p.distance_to_surface:.3g}",
            f"{p.distance_to_bulk:.3g}",
            f"{p.spread:.3g}",
            f"{p.neighbour_surface_coordinate:.2f}",
            f"{100 * p.neighbour_surface_fraction:.0f}%",
            f"{p.mean_depth_A:.2f}",
        ]
        for p in placements
    ]
    return Table(
        caption=caption or "Solute environments against the host's surface and bulk labels",
        header=[
            "run",
            "element",
            "atom-frames",
            "label fractions",
            "distance to surface",
            "distance to bulk",
            "spread",
            "neighbours: surface coordinate",
            "neighbours labelled surface",
            "mean depth [Å]",
        ],
        rows=rows,
    )


# ---------------------------------------------------------------- helpers


def _points_and_labels(coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) float coordinates and (K,) int labels, or a ValueError naming the mismatch."""
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels).astype(int)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"a 3D map needs (points, 3) coordinates, got {coords.shape}")
    if labels.shape != (len(coords),):
        raise ValueError(f"labels need one entry per point ({len(coords)}), got {labels.shape}")
    if len(coords) == 0:
        raise ValueError("no points to draw")
    return coords, labels


def _structure(positions, labels, symbols, host: str | None):
    """Positions, labels and the solute mask of one frame, checked to agree in length."""
    positions, labels = _points_and_labels(positions, labels)
    names = np.asarray(symbols, dtype=str)
    if names.shape != labels.shape:
        raise ValueError(f"symbols need one entry per atom ({len(labels)}), got {names.shape}")
    if host is None:
        elements, counts = np.unique(names, return_counts=True)
        host = str(elements[np.argmax(counts)])
    return positions, labels, names != host


def _solute_names(symbols: Sequence[str], solute: np.ndarray) -> list[str]:
    return sorted(set(np.asarray(symbols, dtype=str)[solute].tolist()))


def _distance_densities(
    distance_A: np.ndarray, labels: np.ndarray, bins: int
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Shared bin edges over all distances, and each label's probability density on them."""
    distance_A = np.asarray(distance_A, dtype=float).ravel()
    labels = np.asarray(labels).astype(int).ravel()
    if distance_A.shape != labels.shape:
        raise ValueError(
            f"distances and labels need the same length, got {distance_A.size} and {labels.size}"
        )
    present = np.unique(labels)
    top = float(distance_A.max()) if distance_A.size else 1.0
    edges = shared_edges([distance_A], bins, limits=(0.0, top))  # distances start at the centre
    densities = {int(k): histogram_density(distance_A[labels == k], edges) for k in present}
    return edges, densities


def _solute_groups(coords: np.ndarray, groups: Mapping[str, np.ndarray]):
    """Coordinates, and (name, mask, style) per group with host groups first (drawn below)."""
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"a 3D map needs (points, 3) coordinates, got {coords.shape}")
    if not groups:
        raise ValueError("no groups of points to draw")
    styles = []
    seen: dict[str, int] = {}
    for i, (name, mask) in enumerate(groups.items()):
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(coords),):
            raise ValueError(
                f"group {name!r} needs a boolean mask over the {len(coords)} points, "
                f"got dtype {mask.dtype} and shape {mask.shape}"
            )
        first = name.split()[0] if name.split() else ""
        host = first.lower() == "host"
        element = first if first in atomic_numbers and first != "X" else None
        key = "host" if host else (element or name)
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        colour = HOST_COLOUR if host else element_colour(element) if element else cycle_colour(i)
        styles.append((name, mask, {"host": host, "colour": colour, "repeat": repeat}))
    styles.sort(key=lambda entry: not entry[2]["host"])  # stable: solutes keep their order
    return coords, styles


def _shares(fractions: Mapping) -> str:
    """{"Ga": 0.98, "Pt": 0.02} as "Ga 0.98, Pt 0.02"."""
    return ", ".join(f"{key} {value:.2f}" for key, value in fractions.items())


def _marker_size(n_points: int) -> float:
    """Points of a scatter in pt²: smaller as they crowd, so dense maps keep their shape."""
    return float(np.clip(4000.0 / max(n_points, 1), 0.5, 12.0))


def _scatter_3d(
    points: np.ndarray, name: str, colour: str, size: float, *, symbol: str = "circle"
) -> go.Scatter3d:
    return go.Scatter3d(
        x=points[:, 0],
        y=points[:, 1],
        z=points[:, 2],
        mode="markers",
        name=name,
        marker={"color": colour, "size": size, "symbol": symbol},
    )


def _axes_3d(ax, titles: Sequence[str]) -> None:
    ax.set_xlabel(titles[0])
    ax.set_ylabel(titles[1])
    ax.set_zlabel(titles[2])


def _layout_3d(fig: go.Figure, title: str, titles: Sequence[str]) -> None:
    """The plotly look of a 3D figure: white template, axis titles, legend markers enlarged."""
    fig.update_layout(
        template="plotly_white",
        title=title,
        scene={"xaxis_title": titles[0], "yaxis_title": titles[1], "zaxis_title": titles[2]},
        legend={"itemsizing": "constant"},
    )
