"""Solute traces: where each traced atom sits between the centre of mass and the surface.

`solute_trace_*` draws one run (the thesis's Fig 4.7): every traced atom's distance from the first
frame's centre of mass over time, its adaptive surface in grey behind it, and beside it the
distribution of both over the final part of the run. `trace_summary_*` draws many runs as a grid
(Fig 4.9): rows are solute elements, columns nanoparticle sizes, each cell the two distributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from plotly.subplots import make_subplots

from scalms.analysis.results import SoluteTrace
from scalms.plots._style import (
    DISTANCE_FROM_COM,
    SURFACE_COLOUR,
    TIME_PS,
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    element_colour,
    final_frames,
    fs_to_ps,
    histogram_density,
    new_figure,
    save_figure,
    shared_edges,
)

DENSITY_LABEL = "density [1/Å]"
"""Histograms are probability densities of distance: they integrate to one."""


def _window_label(final_fraction: float) -> str:
    return "whole run" if final_fraction >= 1.0 else f"last {final_fraction:.0%}"


def _atom_colour(trace: SoluteTrace, j: int) -> str:
    """A lone solute takes its element's colour; several get the qualitative cycle."""
    return element_colour(trace.symbol) if len(trace.indices) == 1 else cycle_colour(j)


def _final_samples(trace: SoluteTrace, final_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Solute distances and surface distances over the final frames, all traced atoms pooled."""
    window = final_frames(len(trace.time_fs), final_fraction)
    return trace.distance_A[window].ravel(), trace.surface_A[window].ravel()


def _trace_histograms(
    trace: SoluteTrace, final_fraction: float, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared bin edges, solute density and surface density over the final frames."""
    solute, surface = _final_samples(trace, final_fraction)
    edges = shared_edges([solute, surface], bins)
    return edges, histogram_density(solute, edges), histogram_density(surface, edges)


def solute_trace_figure(
    trace: SoluteTrace,
    *,
    final_fraction: float = 0.5,
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """Static trace of one run: distances and surfaces against time in ps, histograms beside.

    The main axes hold one grey surface line per traced atom, then one line per traced atom; the
    part of the run the histograms cover is shaded.
    """
    time_ps = fs_to_ps(trace.time_fs)
    window = final_frames(len(time_ps), final_fraction)
    fig = new_figure(8.5, 4.5)
    grid = fig.add_gridspec(1, 2, width_ratios=(4, 1))
    ax = fig.add_subplot(grid[0])
    ax_hist = fig.add_subplot(grid[1], sharey=ax)

    ax.axvspan(time_ps[window][0], time_ps[-1], color="0.94", zorder=0, linewidth=0)
    for j, index in enumerate(trace.indices):
        ax.plot(
            time_ps,
            trace.surface_A[:, j],
            color=SURFACE_COLOUR,
            linewidth=0.7,
            zorder=1,
            label=f"surface at {trace.symbol} {index}",
        )
    atom_lines = [
        ax.plot(
            time_ps,
            trace.distance_A[:, j],
            color=_atom_colour(trace, j),
            linewidth=1.1,
            zorder=2,
            label=f"{trace.symbol} {index}",
        )[0]
        for j, index in enumerate(trace.indices)
    ]
    surface_key = Line2D([], [], color=SURFACE_COLOUR, linewidth=0.7)
    ax.legend(
        [*atom_lines, surface_key],
        [line.get_label() for line in atom_lines] + [f"surface ({trace.n_surface} furthest atoms)"],
        fontsize="small",
        ncols=min(4, 1 + len(atom_lines) // 6),
        loc="lower left",
        frameon=True,
        framealpha=0.8,
    )
    ax.set_xlabel(TIME_PS)
    ax.set_ylabel(DISTANCE_FROM_COM)
    ax.set_xlim(time_ps[0], time_ps[-1])
    ax.set_title(title or f"{trace.symbol} in a {trace.n_atoms}-atom nanoparticle")

    edges, solute, surface = _trace_histograms(trace, final_fraction, bins)
    ax_hist.stairs(
        surface,
        edges,
        orientation="horizontal",
        fill=True,
        color=SURFACE_COLOUR,
        alpha=0.5,
        label="surface",
    )
    ax_hist.stairs(
        solute,
        edges,
        orientation="horizontal",
        fill=True,
        color=element_colour(trace.symbol),
        alpha=0.6,
        label=trace.symbol,
    )
    ax_hist.tick_params(labelleft=False)
    ax_hist.set_xlabel(DENSITY_LABEL)
    ax_hist.set_title(_window_label(final_fraction), fontsize="medium")
    ax.set_ylim(bottom=0.0)
    return fig


def solute_trace_plotly(
    trace: SoluteTrace,
    *,
    final_fraction: float = 0.5,
    bins: int = 40,
    title: str | None = None,
) -> go.Figure:
    """Interactive trace of one run; an atom and its surface toggle together in the legend."""
    time_ps = fs_to_ps(trace.time_fs)
    window = final_frames(len(time_ps), final_fraction)
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, column_widths=[0.8, 0.2], horizontal_spacing=0.02
    )
    fig.add_vrect(
        x0=time_ps[window][0],
        x1=time_ps[-1],
        fillcolor="#eeeeee",
        line_width=0,
        layer="below",
        row=1,
        col=1,
    )
    for j, index in enumerate(trace.indices):
        fig.add_trace(
            go.Scatter(
                x=time_ps,
                y=trace.surface_A[:, j],
                mode="lines",
                name=f"surface at {trace.symbol} {index}",
                legendgroup=str(index),
                showlegend=False,
                line={"color": SURFACE_COLOUR, "width": 1},
            ),
            row=1,
            col=1,
        )
    for j, index in enumerate(trace.indices):
        fig.add_trace(
            go.Scatter(
                x=time_ps,
                y=trace.distance_A[:, j],
                mode="lines",
                name=f"{trace.symbol} {index}",
                legendgroup=str(index),
                line={"color": _atom_colour(trace, j), "width": 1.5},
            ),
            row=1,
            col=1,
        )
    edges, solute, surface = _trace_histograms(trace, final_fraction, bins)
    centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    label = _window_label(final_fraction)
    for name, density, colour in (
        (f"surface, {label}", surface, SURFACE_COLOUR),
        (f"{trace.symbol}, {label}", solute, element_colour(trace.symbol)),
    ):
        fig.add_trace(
            go.Bar(
                x=density,
                y=centres,
                width=widths,
                orientation="h",
                name=name,
                marker={"color": colour},
                opacity=0.6,
            ),
            row=1,
            col=2,
        )
    fig.update_layout(
        template="plotly_white",
        barmode="overlay",
        bargap=0,
        title=title
        or f"{trace.symbol} in a {trace.n_atoms}-atom nanoparticle "
        f"(grey: surface from the {trace.n_surface} furthest atoms)",
    )
    fig.update_xaxes(title_text=TIME_PS, row=1, col=1)
    fig.update_xaxes(title_text=DENSITY_LABEL, row=1, col=2)
    fig.update_yaxes(title_text=DISTANCE_FROM_COM, rangemode="tozero", row=1, col=1)
    return fig


def save_solute_trace(
    stem: str | Path,
    trace: SoluteTrace,
    *,
    final_fraction: float = 0.5,
    bins: int = 40,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of one run's solute trace."""
    options = {"final_fraction": final_fraction, "bins": bins, "title": title}
    return save_figure(
        stem,
        solute_trace_figure(trace, **options),
        solute_trace_plotly(trace, **options),
        plotlyjs=plotlyjs,
    )


def _summary_grid(
    traces: Sequence[SoluteTrace], final_fraction: float
) -> tuple[list[str], list[int], dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]]:
    """Row symbols, column sizes, and per cell the pooled solute and surface distances.

    Runs of the same solute and size (replicas, several models) pool into one cell.
    """
    if not traces:
        raise ValueError("no solute trace to summarise")
    cells: dict[tuple[str, int], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for trace in traces:
        solute, surface = _final_samples(trace, final_fraction)
        pooled = cells.setdefault((trace.symbol, int(trace.n_atoms)), ([], []))
        pooled[0].append(solute)
        pooled[1].append(surface)
    symbols = sorted({symbol for symbol, _ in cells})
    sizes = sorted({size for _, size in cells})
    return (
        symbols,
        sizes,
        {key: (np.concatenate(a), np.concatenate(b)) for key, (a, b) in cells.items()},
    )


def _cell_histograms(
    solute: np.ndarray, surface: np.ndarray, bins: int, max_com_distance_A: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    limits = None if max_com_distance_A is None else (0.0, max_com_distance_A)
    edges = shared_edges([solute, surface], bins, limits)
    return edges, histogram_density(solute, edges), histogram_density(surface, edges)


def trace_summary_figure(
    traces: Sequence[SoluteTrace],
    *,
    final_fraction: float = 0.5,
    max_com_distance_A: float | None = None,
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Static grid: rows solute elements (alphabetical), columns sizes (ascending).

    Each cell overlays the distribution of solute distances from the centre of mass and that of
    the surface over the final frames. With `max_com_distance_A`, every cell spans 0 to it, so
    the columns compare at a glance; otherwise each cell spans its own data.
    """
    symbols, sizes, cells = _summary_grid(traces, final_fraction)
    fig = new_figure(0.6 + 2.3 * len(sizes), 0.8 + 1.8 * len(symbols))
    axes = fig.subplots(len(symbols), len(sizes), squeeze=False)
    for row, symbol in enumerate(symbols):
        for col, size in enumerate(sizes):
            ax = axes[row, col]
            if row == 0:
                ax.set_title(f"{size} atoms", fontsize="medium")
            if (symbol, size) not in cells:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            solute_A, surface_A = cells[symbol, size]
            edges, solute, surface = _cell_histograms(solute_A, surface_A, bins, max_com_distance_A)
            ax.stairs(surface, edges, fill=True, color=SURFACE_COLOUR, alpha=0.5, label="surface")
            ax.stairs(
                solute, edges, fill=True, color=element_colour(symbol), alpha=0.6, label=symbol
            )
            ax.set_xlim(edges[0], edges[-1])
            ax.tick_params(labelleft=False, left=False)
            if col == 0:
                ax.set_ylabel(f"{symbol}\n{DENSITY_LABEL}", fontsize="small")
            if row == len(symbols) - 1:
                ax.set_xlabel("distance from COM [Å]", fontsize="small")
    fig.suptitle(
        title
        or f"Solute distance from the centre of mass ({_window_label(final_fraction)}); "
        "grey: surface"
    )
    return fig


def trace_summary_plotly(
    traces: Sequence[SoluteTrace],
    *,
    final_fraction: float = 0.5,
    max_com_distance_A: float | None = None,
    bins: int = 30,
    title: str | None = None,
) -> go.Figure:
    """Interactive grid with the same cells as :func:`trace_summary_figure`."""
    symbols, sizes, cells = _summary_grid(traces, final_fraction)
    fig = make_subplots(
        rows=len(symbols),
        cols=len(sizes),
        column_titles=[f"{size} atoms" for size in sizes],
        row_titles=symbols,
        horizontal_spacing=0.03,
        vertical_spacing=0.06,
    )
    for row, symbol in enumerate(symbols, start=1):
        for col, size in enumerate(sizes, start=1):
            if (symbol, size) not in cells:
                fig.add_annotation(
                    text="no run",
                    showarrow=False,
                    x=0.5,
                    y=0.5,
                    xref="x domain",
                    yref="y domain",
                    row=row,
                    col=col,
                )
                continue
            solute_A, surface_A = cells[symbol, size]
            edges, solute, surface = _cell_histograms(solute_A, surface_A, bins, max_com_distance_A)
            centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
            for name, density, colour in (
                (f"surface {symbol} {size}", surface, SURFACE_COLOUR),
                (f"{symbol} {size}", solute, element_colour(symbol)),
            ):
                fig.add_trace(
                    go.Bar(
                        x=centres,
                        y=density,
                        width=widths,
                        name=name,
                        showlegend=False,
                        marker={"color": colour},
                        opacity=0.6,
                    ),
                    row=row,
                    col=col,
                )
            fig.update_xaxes(range=[edges[0], edges[-1]], row=row, col=col)
            fig.update_yaxes(showticklabels=False, row=row, col=col)
    for col in range(1, len(sizes) + 1):
        fig.update_xaxes(title_text="distance from COM [Å]", row=len(symbols), col=col)
    fig.update_layout(
        template="plotly_white",
        barmode="overlay",
        bargap=0,
        height=220 * len(symbols) + 120,
        title=title
        or f"Solute distance from the centre of mass ({_window_label(final_fraction)}); "
        "grey: surface",
    )
    return fig


def save_trace_summary(
    stem: str | Path,
    traces: Sequence[SoluteTrace],
    *,
    final_fraction: float = 0.5,
    max_com_distance_A: float | None = None,
    bins: int = 30,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the solute-by-size summary grid."""
    options = {
        "final_fraction": final_fraction,
        "max_com_distance_A": max_com_distance_A,
        "bins": bins,
        "title": title,
    }
    return save_figure(
        stem,
        trace_summary_figure(traces, **options),
        trace_summary_plotly(traces, **options),
        plotlyjs=plotlyjs,
    )
