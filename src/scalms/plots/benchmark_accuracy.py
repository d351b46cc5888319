"""Figures of the accuracy benchmark.

Every figure draws records it is given (:mod:`scalms.benchmark.parity` makes them, with the
statistics of :mod:`scalms.benchmark.metrics`): nothing here reads a file, fits or computes
physics beyond binning for display, and nothing imports the benchmark (the records are described
by the protocols below). The statistics printed on a parity plot are those of the raw data, never
of the bins a density plot draws. Plotly figures carry the exact statistics in ``layout.meta`` as
well, so tests and notebooks can read them back.

- ``<model>/force_parity_pymatviz``: pymatviz's density scatter of every force component
  (HTML), with a matplotlib hexbin twin (PNG); ``<model>/energy_parity_pymatviz`` likewise for
  energies per atom after the fitted per-element offsets.
- ``<model>/force_parity_box``: parity by element with a box plot of the error distribution.
- ``<model>/force_error_vs_magnitude``: per-atom error against the reference's and the model's
  force magnitude, with the mean error in bins.
- ``force_error_distribution``: the component error distribution of every model.
- ``reference_net_force``: the reference's net force per frame against the threshold.
- ``committee_spread_vs_error``: a committee's force spread against its error, per atom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import plotly.graph_objects as go
from ase.data import chemical_symbols
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from scalms.plots._style import (
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

MAX_POINTS = 20_000
"""Points drawn per scatter trace at most (a seeded random subset); statistics use all data."""
FORCE_UNIT = "eV/Å"


class Stats(Protocol):
    """Statistics of raw data that a parity plot prints (:class:`~scalms.benchmark.metrics.
    ErrorStats` is one)."""

    @property
    def n(self) -> int: ...
    @property
    def mae(self) -> float: ...
    @property
    def rmse(self) -> float: ...
    @property
    def r2(self) -> float: ...


class ParityRecord(Protocol):
    """Reference and model values of one quantity, and their statistics."""

    @property
    def reference(self) -> np.ndarray: ...
    @property
    def predicted(self) -> np.ndarray: ...
    @property
    def stats(self) -> Stats: ...


class ModelParityRecord(Protocol):
    """What one model's figures draw (:class:`scalms.benchmark.parity.ModelParity`)."""

    @property
    def model(self) -> str: ...
    @property
    def numbers(self) -> np.ndarray: ...
    @property
    def forces(self) -> ParityRecord: ...
    @property
    def energy(self) -> ParityRecord: ...
    @property
    def force_component_errors(self) -> np.ndarray: ...


class SpreadErrorRecord(Protocol):
    """How a committee's spread tracks its error (:class:`~scalms.benchmark.metrics.
    SpreadErrorRelation`)."""

    @property
    def pearson(self) -> float: ...
    @property
    def spearman(self) -> float: ...
    @property
    def bin_spread(self) -> np.ndarray: ...
    @property
    def bin_error(self) -> np.ndarray: ...


class CommitteeRecord(Protocol):
    """A committee's per-atom spread and error (:class:`scalms.benchmark.accuracy.
    CommitteeResult`)."""

    @property
    def models(self) -> Sequence[str]: ...
    @property
    def spread_eV_per_A(self) -> np.ndarray: ...
    @property
    def error_eV_per_A(self) -> np.ndarray: ...
    @property
    def per_atom(self) -> SpreadErrorRecord: ...


def stats_lines(stats: Stats, unit: str) -> list[str]:
    """The statistics a parity plot shows, computed on the raw data."""
    return [
        f"MAE = {stats.mae:.4f} {unit}",
        f"RMSE = {stats.rmse:.4f} {unit}",
        f"R² = {stats.r2:.4f}",
        f"N = {stats.n}",
    ]


def _stats_meta(stats: Stats) -> dict[str, float]:
    return {"mae": stats.mae, "rmse": stats.rmse, "r2": stats.r2, "n": stats.n}


def _subset(n: int, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` points, the same every time."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def _parity_data(reference: np.ndarray, predicted: np.ndarray):
    """Both flattened, and axis limits holding both."""
    reference = np.asarray(reference, dtype=float).ravel()
    predicted = np.asarray(predicted, dtype=float).ravel()
    return reference, predicted, _limits(reference, predicted)


def parity_pymatviz(
    reference: np.ndarray,
    predicted: np.ndarray,
    stats: Stats,
    *,
    x_title: str,
    y_title: str,
    unit: str,
    title: str,
) -> go.Figure:
    """pymatviz's density scatter of ``predicted`` against ``reference`` (binned above 1000
    points), annotated with ``stats``, the statistics of the raw data."""
    import pymatviz as pmv

    reference, predicted, (low, high) = _parity_data(reference, predicted)
    try:
        fig = pmv.density_scatter(
            x=reference,
            y=predicted,
            xlabel=x_title,
            ylabel=y_title,
            stats=False,  # pymatviz's own box would not say what data it was computed on
            best_fit_line=False,
            identity_line=False,  # pymatviz finds the axis range through kaleido: drawn below
        )
    except np.linalg.LinAlgError:
        # pymatviz colours points by a Gaussian KDE, singular for a handful of points (a
        # test set of two frames): plain points then, nothing to estimate a density from
        fig = go.Figure(go.Scatter(x=reference, y=predicted, mode="markers", showlegend=False))
        fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            name="y = x",
            showlegend=False,
            line={"color": "black", "dash": "dash", "width": 1},
        )
    )
    fig.add_annotation(
        text="<br>".join(stats_lines(stats, unit)) + "<br>(raw data, not bins)",
        xref="paper",
        yref="paper",
        x=0.02,
        y=0.98,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        align="left",
        bgcolor="rgba(255,255,255,0.8)",
        name="raw statistics",
    )
    fig.update_layout(title=title, template="plotly_white", meta={"stats": _stats_meta(stats)})
    return fig


def parity_hexbin(
    reference: np.ndarray,
    predicted: np.ndarray,
    stats: Stats,
    *,
    x_title: str,
    y_title: str,
    unit: str,
    title: str,
) -> Figure:
    """Static twin of :func:`parity_pymatviz`: a log-density hexbin with the raw statistics."""
    reference, predicted, (low, high) = _parity_data(reference, predicted)
    fig = new_figure(5.2, 4.6)
    ax = fig.add_subplot()
    cells = ax.hexbin(
        reference,
        predicted,
        gridsize=60,
        bins="log",
        mincnt=1,
        cmap="viridis",
        extent=(low, high, low, high),
    )
    fig.colorbar(cells, ax=ax, label="points per cell")
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(x_title)
    ax.set_ylabel(y_title)
    ax.set_title(title)
    ax.text(
        0.03,
        0.97,
        "\n".join(stats_lines(stats, unit)),
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#ccc"},
    )
    return fig


def _box_stats(values: np.ndarray) -> dict[str, float]:
    """Quartiles and Tukey fences (1.5 IQR, clipped to the data) of ``values``."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    return {
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "lowerfence": float(inside.min()),
        "upperfence": float(inside.max()),
        "mean": float(values.mean()),
    }


def _by_element(numbers: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [(chemical_symbols[z], numbers == z) for z in np.unique(numbers)]


def parity_box_plotly(
    reference: np.ndarray, predicted: np.ndarray, numbers: np.ndarray, stats: Stats, *, model: str
) -> go.Figure:
    """Force parity by element (components), and a box plot of the component errors of each
    element and of all atoms; box statistics come from every value. ``stats``: of all
    components, for the title."""
    reference = np.asarray(reference, dtype=float).reshape(-1, 3)
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], horizontal_spacing=0.1)
    for symbol, mask in _by_element(numbers):
        x, y = reference[mask].ravel(), predicted[mask].ravel()
        keep = _subset(x.size)
        shown = "" if keep.size == x.size else f" ({keep.size} of {x.size} shown)"
        fig.add_trace(
            go.Scattergl(
                x=x[keep],
                y=y[keep],
                mode="markers",
                name=f"{symbol}{shown}",
                marker={"color": element_colour(symbol), "size": 4, "opacity": 0.6},
                legendgroup=symbol,
            ),
            row=1,
            col=1,
        )
    low, high = _limits(reference, predicted)
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            name="y = x",
            line={"color": "black", "dash": "dash", "width": 1},
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    groups = [*_by_element(numbers), ("all", np.ones(len(numbers), dtype=bool))]
    for symbol, mask in groups:
        errors = (predicted[mask] - reference[mask]).ravel()
        colour = "#444444" if symbol == "all" else element_colour(symbol)
        fig.add_trace(
            go.Box(
                x=[symbol],
                name=f"{symbol} error",
                marker_color=colour,
                showlegend=False,
                **{k: [v] for k, v in _box_stats(errors).items()},
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text=f"reference force component [{FORCE_UNIT}]", row=1, col=1)
    fig.update_yaxes(title_text=f"{model} force component [{FORCE_UNIT}]", row=1, col=1)
    fig.update_yaxes(title_text=f"error (model - reference) [{FORCE_UNIT}]", row=1, col=2)
    fig.update_layout(
        template="plotly_white",
        title=f"{model}: force parity, MAE {stats.mae:.4f} {FORCE_UNIT}, R² {stats.r2:.4f}",
        meta={"stats": _stats_meta(stats)},
    )
    return fig


def parity_box_figure(
    reference: np.ndarray, predicted: np.ndarray, numbers: np.ndarray, stats: Stats, *, model: str
) -> Figure:
    """Static twin of :func:`parity_box_plotly`."""
    reference = np.asarray(reference, dtype=float).reshape(-1, 3)
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    fig = new_figure(8.0, 4.2)
    grid = fig.add_gridspec(1, 2, width_ratios=[3, 1])
    ax = fig.add_subplot(grid[0])
    for symbol, mask in _by_element(numbers):
        x, y = reference[mask].ravel(), predicted[mask].ravel()
        keep = _subset(x.size)
        ax.scatter(x[keep], y[keep], s=4, alpha=0.5, color=element_colour(symbol), label=symbol)
    low, high = _limits(reference, predicted)
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"reference force component [{FORCE_UNIT}]")
    ax.set_ylabel(f"{model} force component [{FORCE_UNIT}]")
    ax.set_title(f"{model}: MAE {stats.mae:.4f} {FORCE_UNIT}, R² {stats.r2:.4f}", fontsize=10)
    ax.legend(frameon=False, markerscale=3)
    box = fig.add_subplot(grid[1])
    groups = [*_by_element(numbers), ("all", np.ones(len(numbers), dtype=bool))]
    box.boxplot(
        [(predicted[m] - reference[m]).ravel() for _, m in groups],
        tick_labels=[s for s, _ in groups],
        showfliers=False,
    )
    box.axhline(0.0, color="black", linewidth=0.6)
    box.set_ylabel(f"error [{FORCE_UNIT}]")
    return fig


def _binned_mean(x: np.ndarray, y: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Centres of equal-width bins of ``x`` and the mean ``y`` in each non-empty bin."""
    edges = shared_edges([x], bins)
    index = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
    sums = np.bincount(index, weights=y, minlength=bins)
    counts = np.bincount(index, minlength=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    filled = counts > 0
    return centres[filled], sums[filled] / counts[filled]


def _error_vs_magnitude_data(reference: np.ndarray, predicted: np.ndarray):
    reference = np.asarray(reference, dtype=float).reshape(-1, 3)
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    error = np.linalg.norm(predicted - reference, axis=1)
    return (
        ("reference", np.linalg.norm(reference, axis=1)),
        ("predicted", np.linalg.norm(predicted, axis=1)),
    ), error


def error_vs_magnitude_plotly(
    reference: np.ndarray, predicted: np.ndarray, numbers: np.ndarray, *, model: str
) -> go.Figure:
    """Per-atom error |F_model - F_ref| against |F_ref| (left) and |F_model| (right), by
    element, with the mean error in 20 bins of magnitude."""
    magnitudes, error = _error_vs_magnitude_data(reference, predicted)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06)
    for col, (which, magnitude) in enumerate(magnitudes, start=1):
        for symbol, mask in _by_element(numbers):
            keep = _subset(int(mask.sum()))
            fig.add_trace(
                go.Scattergl(
                    x=magnitude[mask][keep],
                    y=error[mask][keep],
                    mode="markers",
                    name=symbol,
                    legendgroup=symbol,
                    showlegend=col == 1,
                    marker={"color": element_colour(symbol), "size": 4, "opacity": 0.5},
                ),
                row=1,
                col=col,
            )
        centres, means = _binned_mean(magnitude, error)
        fig.add_trace(
            go.Scatter(
                x=centres,
                y=means,
                mode="lines+markers",
                name="binned mean",
                line={"color": "black"},
                showlegend=col == 1,
                legendgroup="mean",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=f"|F| {which} [{FORCE_UNIT}]", row=1, col=col)
    fig.update_yaxes(title_text=f"|F_model - F_ref| [{FORCE_UNIT}]", row=1, col=1)
    fig.update_layout(template="plotly_white", title=f"{model}: force error against magnitude")
    return fig


def error_vs_magnitude_figure(
    reference: np.ndarray, predicted: np.ndarray, numbers: np.ndarray, *, model: str
) -> Figure:
    """Static twin of :func:`error_vs_magnitude_plotly`."""
    magnitudes, error = _error_vs_magnitude_data(reference, predicted)
    fig = new_figure(8.0, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (which, magnitude) in zip(axes, magnitudes, strict=True):
        for symbol, mask in _by_element(numbers):
            keep = _subset(int(mask.sum()))
            ax.scatter(
                magnitude[mask][keep],
                error[mask][keep],
                s=4,
                alpha=0.4,
                color=element_colour(symbol),
                label=symbol,
            )
        centres, means = _binned_mean(magnitude, error)
        ax.plot(centres, means, color="black", marker="o", markersize=3, label="binned mean")
        ax.set_xlabel(f"|F| {which} [{FORCE_UNIT}]")
    axes[0].set_ylabel(f"|F_model - F_ref| [{FORCE_UNIT}]")
    axes[0].legend(frameon=False, markerscale=3)
    fig.suptitle(f"{model}: force error against magnitude", fontsize=10)
    return fig


def error_distribution_plotly(errors: Mapping[str, np.ndarray], bins: int = 80) -> go.Figure:
    """Probability density of the force component errors (model -> errors, eV/Å) of every model
    (shared bins)."""
    edges = shared_edges(list(errors.values()), bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    fig = go.Figure()
    for i, (model, values) in enumerate(errors.items()):
        fig.add_trace(
            go.Scatter(
                x=centres,
                y=histogram_density(values, edges),
                mode="lines",
                name=model,
                line={"color": cycle_colour(i), "shape": "hvh"},
            )
        )
    plotly_layout(
        fig,
        title="Force component error of each model",
        x_title=f"model - reference [{FORCE_UNIT}]",
        y_title=f"probability density [1/({FORCE_UNIT})]",
    )
    return fig


def error_distribution_figure(errors: Mapping[str, np.ndarray], bins: int = 80) -> Figure:
    """Static twin of :func:`error_distribution_plotly`."""
    edges = shared_edges(list(errors.values()), bins)
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    for i, (model, values) in enumerate(errors.items()):
        ax.stairs(histogram_density(values, edges), edges, color=cycle_colour(i), label=model)
    ax.set_xlabel(f"model - reference [{FORCE_UNIT}]")
    ax.set_ylabel(f"probability density [1/({FORCE_UNIT})]")
    ax.legend(frameon=False)
    return fig


def _frame_labels(rows: list[dict]) -> list[str]:
    return [f"{row['structure']}:{row['frame']}" for row in rows]


def net_force_plotly(rows: list[dict], threshold_eV_per_A: float) -> go.Figure:
    """The reference's net force per frame; frames above the threshold in red."""
    labels = _frame_labels(rows)
    values = [row["net_force_eV_per_A"] for row in rows]
    colours = ["#d62728" if row["flagged"] else "#1f77b4" for row in rows]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=colours, name="|ΣF| reference"))
    fig.add_hline(y=threshold_eV_per_A, line_dash="dash", annotation_text="threshold")
    plotly_layout(
        fig,
        title=f"Reference net force per frame ({sum(r['flagged'] for r in rows)} flagged)",
        x_title="structure:frame",
        y_title=f"|ΣF| [{FORCE_UNIT}]",
    )
    return fig


def net_force_figure(rows: list[dict], threshold_eV_per_A: float) -> Figure:
    """Static twin of :func:`net_force_plotly`."""
    values = np.array([row["net_force_eV_per_A"] for row in rows])
    colours = ["#d62728" if row["flagged"] else "#1f77b4" for row in rows]
    fig = new_figure(max(4.0, min(12.0, 0.25 * len(rows) + 3)), 3.8)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(rows)), values, color=colours)
    ax.axhline(threshold_eV_per_A, color="black", linestyle="--", linewidth=0.8, label="threshold")
    if len(rows) <= 40:
        ax.set_xticks(np.arange(len(rows)), _frame_labels(rows), rotation=90, fontsize=7)
    else:
        ax.set_xlabel("frame")
    ax.set_ylabel(f"|ΣF| reference [{FORCE_UNIT}]")
    ax.legend(frameon=False)
    return fig


def committee_plotly(
    spread: np.ndarray, error: np.ndarray, relation: SpreadErrorRecord, models: Sequence[str]
) -> go.Figure:
    """Per-atom committee spread against the error of the committee mean, with binned means."""
    keep = _subset(spread.size)
    fig = go.Figure()
    fig.add_trace(
        go.Scattergl(
            x=spread[keep],
            y=error[keep],
            mode="markers",
            name="atoms",
            marker={"size": 4, "opacity": 0.5, "color": "#1f77b4"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=relation.bin_spread,
            y=relation.bin_error,
            mode="lines+markers",
            name="mean error in equal-count bins",
            line={"color": "black"},
        )
    )
    top = float(max(spread.max(), error.max()))
    fig.add_trace(
        go.Scatter(x=[0, top], y=[0, top], mode="lines", name="y = x", line={"dash": "dash"})
    )
    plotly_layout(
        fig,
        title=(
            f"Committee of {', '.join(models)}: Pearson {relation.pearson:.3f}, "
            f"Spearman {relation.spearman:.3f}"
        ),
        x_title=f"force spread [{FORCE_UNIT}]",
        y_title=f"|F_mean - F_ref| [{FORCE_UNIT}]",
    )
    fig.update_layout(meta={"pearson": relation.pearson, "spearman": relation.spearman})
    return fig


def committee_figure(
    spread: np.ndarray, error: np.ndarray, relation: SpreadErrorRecord, models: Sequence[str]
) -> Figure:
    """Static twin of :func:`committee_plotly`."""
    keep = _subset(spread.size)
    fig = new_figure(5.5, 4.2)
    ax = fig.add_subplot()
    ax.scatter(spread[keep], error[keep], s=4, alpha=0.4, label="atoms")
    ax.plot(relation.bin_spread, relation.bin_error, color="black", marker="o", label="binned mean")
    top = float(max(spread.max(), error.max()))
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="y = x")
    ax.set_xlabel(f"force spread [{FORCE_UNIT}]")
    ax.set_ylabel(f"|F_mean - F_ref| [{FORCE_UNIT}]")
    ax.set_title(
        f"{', '.join(models)}\nPearson {relation.pearson:.3f}, Spearman {relation.spearman:.3f}",
        fontsize=9,
    )
    ax.legend(frameon=False)
    return fig


def save_accuracy_plots(
    folder: Path,
    parities: Sequence[ModelParityRecord],
    net_force_rows: list[dict],
    threshold_eV_per_A: float,
    committee: CommitteeRecord | None = None,
    plotlyjs: PlotlyJs | None = None,
) -> dict[str, Path]:
    """Write every figure under ``folder``; return the HTML page (``plot:<name>``) and the PNG
    (``png:<name>``) of each.

    ``parities``: one record per model; ``net_force_rows``: the reference's net force per frame
    (``structure``, ``frame``, ``net_force_eV_per_A``, ``flagged``). plotly.js is written once to
    ``folder/plotly.min.js`` and every page links to it.
    """
    folder = Path(folder)
    js = plotlyjs if plotlyjs is not None else folder / "plotly.min.js"
    written: dict[str, FigureFiles] = {}
    for parity in parities:
        model, forces, energy = parity.model, parity.forces, parity.energy
        ref, pred, numbers = forces.reference, forces.predicted, parity.numbers
        common = {"x_title": f"reference force component [{FORCE_UNIT}]", "unit": FORCE_UNIT}
        title = f"{model}: forces"
        y_title = f"{model} force component [{FORCE_UNIT}]"
        written[f"{model}/force_parity_pymatviz"] = save_figure(
            folder / model / "force_parity_pymatviz",
            parity_hexbin(ref, pred, forces.stats, y_title=y_title, title=title, **common),
            parity_pymatviz(ref, pred, forces.stats, y_title=y_title, title=title, **common),
            plotlyjs=js,
        )
        labels = {
            "x_title": "reference energy - per-element fit [eV/atom]",
            "y_title": f"{model} energy (offsets removed) - same fit [eV/atom]",
            "unit": "eV/atom",
            "title": f"{model}: energy per atom",
        }
        x, y = energy.reference, energy.predicted
        written[f"{model}/energy_parity_pymatviz"] = save_figure(
            folder / model / "energy_parity_pymatviz",
            parity_hexbin(x, y, energy.stats, **labels),
            parity_pymatviz(x, y, energy.stats, **labels),
            plotlyjs=js,
        )
        written[f"{model}/force_parity_box"] = save_figure(
            folder / model / "force_parity_box",
            parity_box_figure(ref, pred, numbers, forces.stats, model=model),
            parity_box_plotly(ref, pred, numbers, forces.stats, model=model),
            plotlyjs=js,
        )
        written[f"{model}/force_error_vs_magnitude"] = save_figure(
            folder / model / "force_error_vs_magnitude",
            error_vs_magnitude_figure(ref, pred, numbers, model=model),
            error_vs_magnitude_plotly(ref, pred, numbers, model=model),
            plotlyjs=js,
        )
    errors = {p.model: p.force_component_errors for p in parities}
    written["force_error_distribution"] = save_figure(
        folder / "force_error_distribution",
        error_distribution_figure(errors),
        error_distribution_plotly(errors),
        plotlyjs=js,
    )
    written["reference_net_force"] = save_figure(
        folder / "reference_net_force",
        net_force_figure(net_force_rows, threshold_eV_per_A),
        net_force_plotly(net_force_rows, threshold_eV_per_A),
        plotlyjs=js,
    )
    if committee is not None:
        args = (committee.spread_eV_per_A, committee.error_eV_per_A, committee.per_atom)
        written["committee_spread_vs_error"] = save_figure(
            folder / "committee_spread_vs_error",
            committee_figure(*args, committee.models),
            committee_plotly(*args, committee.models),
            plotlyjs=js,
        )
    report_figures = {f"plot:{name}": files.html for name, files in written.items()}
    report_figures.update({f"png:{name}": files.png for name, files in written.items()})
    return report_figures
