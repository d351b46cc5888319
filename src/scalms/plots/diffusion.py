"""Mean squared displacement with its linear fit, and the table of diffusion constants."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scalms.analysis.results import DiffusionFit, MeanSquaredDisplacement
from scalms.plots._style import (
    FIT_COLOUR,
    FigureFiles,
    PlotlyJs,
    element_colour,
    fs_to_ps,
    new_figure,
    plotly_layout,
    save_figure,
    scientific,
)
from scalms.plots.report import Table

if TYPE_CHECKING:  # drawing libraries load when a figure is drawn, not for the table
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

LAG_LABEL = "lag time [ps]"
MSD_LABEL = "MSD [Å²]"
TABLE_UNIT = 1e-6
"""Diffusion tables are in 10⁻⁶ cm²/s, the unit of the thesis's Table 4.1."""
SELECTION_COLOUR = "#404040"
"""Colour of a selection that is not one element ("all", "Ga+Pt")."""


def fit_line_ps(fit: DiffusionFit) -> tuple[np.ndarray, np.ndarray]:
    """End points of the fitted line over its window: lag in ps and MSD in Å²."""
    lag_fs = np.array([fit.fit_start_fs, fit.fit_end_fs], dtype=float)
    return fs_to_ps(lag_fs), fit.slope_A2_per_fs * lag_fs + fit.intercept_A2


def _method_text(msd: MeanSquaredDisplacement) -> str:
    if msd.method == "fft":
        return "all time origins (FFT)"
    return f"time origins every {msd.origin_stride} frames"


def _drift_text(msd: MeanSquaredDisplacement) -> str:
    return "centre-of-mass drift removed" if msd.drift_removed else "centre-of-mass drift kept"


def _title(msd: MeanSquaredDisplacement, title: str | None) -> str:
    return (
        title or f"{msd.symbol}: mean squared displacement, {_method_text(msd)}, {_drift_text(msd)}"
    )


def selection_colour(symbol: str) -> str:
    """An element's colour, or one neutral colour for "all" and mixed selections."""
    from ase.data import atomic_numbers

    return element_colour(symbol) if symbol in atomic_numbers else SELECTION_COLOUR


def fit_label_mathtext(fit: DiffusionFit) -> str:
    """Legend text of a fit for matplotlib: D in cm²/s in scientific notation, and R²."""
    mantissa, exponent = scientific(fit.D_cm2_per_s)
    return rf"fit: $D = {mantissa}\times10^{{{exponent}}}$ cm²/s, $R^2 = {fit.r2:.3f}$"


def fit_label_html(fit: DiffusionFit) -> str:
    """Legend text of a fit for plotly (HTML superscripts)."""
    mantissa, exponent = scientific(fit.D_cm2_per_s)
    return f"fit: D = {mantissa}×10<sup>{exponent}</sup> cm²/s, R² = {fit.r2:.3f}"


def msd_figure(msd: MeanSquaredDisplacement, *, title: str | None = None) -> Figure:
    """Static MSD against lag time in ps: per atom thin, the mean bold, the fit dashed.

    Lines in order: one per traced atom, the mean, the fit over its window (shaded).
    """
    from matplotlib.lines import Line2D

    colour = selection_colour(msd.symbol)
    lag_ps = fs_to_ps(msd.lag_fs)
    fig = new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    fit_x, fit_y = fit_line_ps(msd.fit)
    ax.axvspan(fit_x[0], fit_x[1], color="0.93", zorder=0, linewidth=0)
    for j, index in enumerate(msd.indices):
        ax.plot(
            lag_ps,
            msd.per_atom_A2[j],
            color=colour,
            linewidth=0.6,
            alpha=0.35,
            label=f"{msd.symbol} {index}",
        )
    (mean,) = ax.plot(
        lag_ps,
        msd.msd_A2,
        color=colour,
        linewidth=2.2,
        label=f"mean of {len(msd.indices)} {msd.symbol}",
    )
    (fit,) = ax.plot(
        fit_x,
        fit_y,
        color=FIT_COLOUR,
        linestyle="--",
        linewidth=1.5,
        label=fit_label_mathtext(msd.fit),
    )
    handles = [mean, fit]
    if len(msd.indices) > 1:
        handles.insert(0, Line2D([], [], color=colour, linewidth=0.6, alpha=0.5, label="per atom"))
    ax.legend(handles=handles, loc="upper left", frameon=False)
    ax.set_xlabel(LAG_LABEL)
    ax.set_ylabel(MSD_LABEL)
    ax.set_xlim(0.0, lag_ps[-1])
    ax.set_ylim(bottom=0.0)
    ax.set_title(_title(msd, title), fontsize="medium")
    return fig


def msd_plotly(msd: MeanSquaredDisplacement, *, title: str | None = None) -> go.Figure:
    """Interactive twin of :func:`msd_figure`, traces in the same order."""
    import plotly.graph_objects as go

    colour = selection_colour(msd.symbol)
    lag_ps = fs_to_ps(msd.lag_fs)
    fit_x, fit_y = fit_line_ps(msd.fit)
    fig = go.Figure()
    fig.add_vrect(x0=fit_x[0], x1=fit_x[1], fillcolor="#eeeeee", line_width=0, layer="below")
    for j, index in enumerate(msd.indices):
        fig.add_trace(
            go.Scatter(
                x=lag_ps,
                y=msd.per_atom_A2[j],
                mode="lines",
                name=f"{msd.symbol} {index}",
                legendgroup="per atom",
                legendgrouptitle={"text": "per atom"},
                line={"color": colour, "width": 1},
                opacity=0.4,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=lag_ps,
            y=msd.msd_A2,
            mode="lines",
            name=f"mean of {len(msd.indices)} {msd.symbol}",
            line={"color": colour, "width": 3},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fit_x,
            y=fit_y,
            mode="lines",
            name=fit_label_html(msd.fit),
            line={"color": FIT_COLOUR, "width": 2, "dash": "dash"},
        )
    )
    plotly_layout(fig, title=_title(msd, title), x_title=LAG_LABEL, y_title=MSD_LABEL)
    return fig


def save_msd(
    stem: str | Path,
    msd: MeanSquaredDisplacement,
    *,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the MSD and its fit."""
    return save_figure(
        stem, msd_figure(msd, title=title), msd_plotly(msd, title=title), plotlyjs=plotlyjs
    )


def _three_figures(value: float) -> str:
    """`value` to three significant figures, keeping trailing zeros (7.10, 10.5, 0.512)."""
    if value == 0 or not np.isfinite(value):
        return f"{value:.2f}"
    decimals = max(0, 2 - int(np.floor(np.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def diffusion_table(
    D_cm2_per_s: Mapping[tuple[str, int], float], *, caption: str | None = None
) -> Table:
    """Diffusion constants as a report table: a row per size, a column per solute.

    Keys are (solute symbol, atoms in the nanoparticle); values in cm²/s, shown in 10⁻⁶ cm²/s.
    A combination without a run shows "–".
    """
    symbols = sorted({symbol for symbol, _ in D_cm2_per_s})
    sizes = sorted({size for _, size in D_cm2_per_s})
    rows = [
        [str(size)]
        + [
            _three_figures(D_cm2_per_s[symbol, size] / TABLE_UNIT)
            if (symbol, size) in D_cm2_per_s
            else "–"
            for symbol in symbols
        ]
        for size in sizes
    ]
    return Table(
        caption=caption or "Diffusion constants of the solutes in 10⁻⁶ cm²/s",
        header=["Atoms / solute", *symbols],
        rows=rows,
    )
