"""Pair distribution functions, full and partial, of one or several models on shared axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go
from matplotlib.figure import Figure

from scalms.analysis.results import PDF_MODES, PairDistribution
from scalms.plots._style import (
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    new_figure,
    plotly_layout,
    save_figure,
)

PDF_Y_LABELS = {
    "shell": "g(r) per shell volume [1/Å³]",
    "pair-fraction": "pair fraction per bin",
}
"""The y-axis title of each normalisation mode: a figure always says which one it shows."""
R_LABEL = "r [Å]"

PairDistributions = PairDistribution | Sequence[PairDistribution] | Mapping[str, PairDistribution]
"""One curve, curves named by their own labels ("all", "Ga-Pt"), or curves named by the caller
(e.g. "mace-omat Ga-Pt")."""


def _named(pdfs: PairDistributions) -> tuple[list[tuple[str, PairDistribution]], str]:
    """The curves with their legend names, and the one normalisation mode they share."""
    if isinstance(pdfs, PairDistribution):
        named = [(pdfs.label, pdfs)]
    elif isinstance(pdfs, Mapping):
        named = list(pdfs.items())
    else:
        named = [(pdf.label, pdf) for pdf in pdfs]
    if not named:
        raise ValueError("no pair distribution to plot")
    modes = {pdf.mode for _, pdf in named}
    if len(modes) > 1:
        raise ValueError(f"cannot overlay PDF modes {sorted(modes)} on one axis; plot them apart")
    (mode,) = modes
    if mode not in PDF_MODES:
        raise ValueError(f"unknown PDF mode {mode!r}; expected one of {PDF_MODES}")
    return named, mode


def _colours(named, colours: Mapping[str, str] | None) -> list[str]:
    """Each curve's colour: the caller's for its name (labels keep theirs across figures where
    some runs lack a label), else the house cycle by position."""
    colours = colours or {}
    return [colours.get(name, cycle_colour(i)) for i, (name, _) in enumerate(named)]


def pair_distribution_figure(
    pdfs: PairDistributions,
    *,
    title: str | None = None,
    colours: Mapping[str, str] | None = None,
) -> Figure:
    """Static figure: one line per pair distribution, r in Å, y titled by the mode."""
    named, mode = _named(pdfs)
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    for colour, (name, pdf) in zip(_colours(named, colours), named, strict=True):
        ax.plot(pdf.r_A, pdf.g, color=colour, linewidth=1.5, label=name)
    ax.set_xlabel(R_LABEL)
    ax.set_ylabel(PDF_Y_LABELS[mode])
    ax.set_xlim(0.0, max(pdf.r_max_A for _, pdf in named))
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return fig


def pair_distribution_plotly(
    pdfs: PairDistributions,
    *,
    title: str | None = None,
    colours: Mapping[str, str] | None = None,
) -> go.Figure:
    """Interactive figure with the same curves and names as :func:`pair_distribution_figure`."""
    named, mode = _named(pdfs)
    fig = go.Figure()
    for colour, (name, pdf) in zip(_colours(named, colours), named, strict=True):
        fig.add_trace(
            go.Scatter(
                x=pdf.r_A,
                y=pdf.g,
                mode="lines",
                name=name,
                line={"color": colour, "width": 2},
            )
        )
    plotly_layout(fig, title=title, x_title=R_LABEL, y_title=PDF_Y_LABELS[mode])
    return fig


def save_pair_distribution(
    stem: str | Path,
    pdfs: PairDistributions,
    *,
    title: str | None = None,
    colours: Mapping[str, str] | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the pair distributions."""
    return save_figure(
        stem,
        pair_distribution_figure(pdfs, title=title, colours=colours),
        pair_distribution_plotly(pdfs, title=title, colours=colours),
        plotlyjs=plotlyjs,
    )
