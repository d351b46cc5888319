"""Thermodynamic observables of one run over time: potential and kinetic energy, temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from scalms.plots._style import (
    TIME_PS,
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    fs_to_ps,
    new_figure,
    save_figure,
)
from scalms.trajectory import Trajectory

THERMO_PANELS = (
    ("potential_energy", "potential energy [eV]"),
    ("kinetic_energy", "kinetic energy [eV]"),
    ("temperature_K", "temperature [K]"),
)
"""Trajectory field and axis title of each panel, top to bottom."""


def thermo_panels(trajectory: Trajectory) -> list[tuple[str, str, np.ndarray]]:
    """(field, axis title, values) of every observable the run saved; the others are skipped."""
    panels = [
        (name, label, np.asarray(getattr(trajectory, name)))
        for name, label in THERMO_PANELS
        if getattr(trajectory, name) is not None
    ]
    if not panels:
        raise ValueError(
            "the trajectory saved no potential energy, kinetic energy or temperature to plot"
        )
    return panels


def _default_title(trajectory: Trajectory) -> str | None:
    parts = [part for part in (trajectory.model, trajectory.structure) if part]
    return " on ".join(parts) or None


def thermo_figure(trajectory: Trajectory, *, title: str | None = None) -> Figure:
    """Static figure: one panel per saved observable against time in ps, x shared."""
    panels = thermo_panels(trajectory)
    time_ps = fs_to_ps(trajectory.time_fs)
    fig = new_figure(7.0, 0.6 + 2.0 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, (_, label, values)) in enumerate(zip(axes, panels, strict=True)):
        ax.plot(time_ps, values, color=cycle_colour(i), linewidth=1.0)
        ax.set_ylabel(label)
    axes[-1].set_xlabel(TIME_PS)
    axes[-1].set_xlim(time_ps[0], time_ps[-1])
    if title := title or _default_title(trajectory):
        fig.suptitle(title)
    return fig


def thermo_plotly(trajectory: Trajectory, *, title: str | None = None) -> go.Figure:
    """Interactive twin of :func:`thermo_figure`: one trace per panel, named by its field."""
    panels = thermo_panels(trajectory)
    time_ps = fs_to_ps(trajectory.time_fs)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for i, (name, label, values) in enumerate(panels):
        fig.add_trace(
            go.Scatter(
                x=time_ps,
                y=values,
                mode="lines",
                name=name,
                line={"color": cycle_colour(i), "width": 1.5},
            ),
            row=i + 1,
            col=1,
        )
        fig.update_yaxes(title_text=label, row=i + 1, col=1)
    fig.update_xaxes(title_text=TIME_PS, row=len(panels), col=1)
    fig.update_layout(
        template="plotly_white",
        showlegend=False,
        height=200 * len(panels) + 120,
        title=title or _default_title(trajectory),
    )
    return fig


def save_thermo(
    stem: str | Path,
    trajectory: Trajectory,
    *,
    title: str | None = None,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `<stem>.png` and `<stem>.html` of the run's energies and temperature."""
    return save_figure(
        stem,
        thermo_figure(trajectory, title=title),
        thermo_plotly(trajectory, title=title),
        plotlyjs=plotlyjs,
    )
