"""Net force per frame: the sum of all atomic forces, near zero for a conservative model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
from matplotlib.figure import Figure

from scalms.analysis.results import NetForce
from scalms.plots._style import (
    TIME_PS,
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    fs_to_ps,
    new_figure,
    plotly_layout,
    save_figure,
)

NET_FORCE_LABEL = "net force |ΣF| [eV/Å]"
NetForces = NetForce | Mapping[str, NetForce]
"""One run, or runs named by the caller (model names, say)."""


def _named(forces: NetForces) -> list[tuple[str, NetForce]]:
    named = [("net force", forces)] if isinstance(forces, NetForce) else list(forces.items())
    if not named:
        raise ValueError("no net force to plot")
    return named


def net_force_figure(forces: NetForces, *, log_y: bool = False, title: str | None = None) -> Figure:
    """Static figure: one line of |ΣF| per run against time in ps (frames of zero force are
    left out on a log axis)."""
    named = _named(forces)
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    for i, (name, force) in enumerate(named):
        ax.plot(
            fs_to_ps(force.time_fs),
            force.magnitude_eV_per_A,
            color=cycle_colour(i),
            linewidth=1.0,
            label=name,
        )
    if log_y:
        ax.set_yscale("log", nonpositive="mask")
    else:
        ax.set_ylim(bottom=0.0)
    ax.set_xlabel(TIME_PS)
    ax.set_ylabel(NET_FORCE_LABEL)
    if len(named) > 1:
        ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return fig


def net_force_plotly(
    forces: NetForces, *, log_y: bool = False, title: str | None = None
) -> go.Figure:
    """Interactive twin of :func:`net_force_figure`."""
    fig = go.Figure()
    for i, (name, force) in enumerate(_named(forces)):
        fig.add_trace(
            go.Scatter(
                x=fs_to_ps(force.time_fs),
                y=force.magnitude_eV_per_A,
                mode="lines",
                name=name,
                line={"color": cycle_colour(i), "width": 1.5},
            )
        )
    plotly_layout(fig, title=title, x_title=TIME_PS, y_title=NET_FORCE_LABEL)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def save_net_force(
    stem: str | Path,
    forces: NetForces,
    *,
    log_y: bool = False,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the net force per frame."""
    return save_figure(
        stem,
        net_force_figure(forces, log_y=log_y, title=title),
        net_force_plotly(forces, log_y=log_y, title=title),
        plotlyjs=plotlyjs,
    )
