"""Figures of the cost benchmark, drawn from its rows (one dict per run, as in its CSV files).

- ``cost_time_per_ps``: compute time per simulated picosecond against the number of atoms, one
  line per model (thesis Figure 4.1, there in minutes per 100 ps).
- ``cost_resources``: CPU use, resident memory, GPU utilisation and GPU memory against the
  number of atoms (thesis Figure 4.2); a GPU panel says whether its figures were the model's
  own processes or the whole device, or why there are none.
- ``cost_batched``: atom-steps per second against the number of systems in one TorchSim batch,
  with the largest batch that ran (and a cross where the next one ran out of memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from scalms.plots._style import (
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    new_figure,
    plotly_layout,
    save_figure,
)

Row = dict[str, Any]
ATOMS = "atoms"
TIME_PER_PS = "compute time per simulated ps [s/ps]"
PANELS = (
    ("cpu_percent_mean", "CPU [% of one core]", "CPU"),
    ("rss_MB_max", "resident memory, peak [MiB]", "RAM"),
    ("gpu_util_percent_mean", "GPU utilisation [%]", "GPU"),
    ("gpu_memory_MB_max", "GPU memory, peak [MiB]", "VRAM"),
)
SCOPE_OF = {"gpu_util_percent_mean": "gpu_util_scope", "gpu_memory_MB_max": "gpu_memory_scope"}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _models(rows: Sequence[Row]) -> list[str]:
    """Models in the order of their first row: each keeps its colour in every figure."""
    return list(dict.fromkeys(str(r["model"]) for r in rows))


def _by_model(rows: Sequence[Row], key: str) -> dict[str, list[Row]]:
    """Rows with a finite ``key`` that ran, grouped by model, sorted by atoms."""
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        if row.get("status") == "ok" and _finite(row.get(key)):
            grouped.setdefault(str(row["model"]), []).append(row)
    return {m: sorted(r, key=lambda r: r["n_atoms"]) for m, r in grouped.items()}


def _scope_text(rows: Sequence[Row], key: str) -> str:
    scopes = {str(r.get(SCOPE_OF[key], "none")) for r in rows}
    if scopes == {"process"}:
        return "the model's processes"
    if "device" in scopes:
        return "whole device (other processes count too)"
    return ""


def time_per_ps_plotly(rows: Sequence[Row]) -> go.Figure:
    """Compute time per simulated ps against atoms, one line per model (log-log)."""
    fig = go.Figure()
    models = _models(rows)
    for model, mine in _by_model(rows, "compute_s_per_ps").items():
        i = models.index(model)
        fig.add_trace(
            go.Scatter(
                x=[r["n_atoms"] for r in mine],
                y=[r["compute_s_per_ps"] for r in mine],
                mode="lines+markers",
                name=f"{model} ({mine[0].get('backend', '')})",
                line={"color": cycle_colour(i)},
            )
        )
    plotly_layout(fig, title="Compute time per simulated time", x_title=ATOMS, y_title=TIME_PER_PS)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def time_per_ps_figure(rows: Sequence[Row]) -> Figure:
    """Static twin of :func:`time_per_ps_plotly`."""
    fig = new_figure(6.0, 4.2)
    ax = fig.add_subplot()
    models = _models(rows)
    for model, mine in _by_model(rows, "compute_s_per_ps").items():
        i = models.index(model)
        ax.plot(
            [r["n_atoms"] for r in mine],
            [r["compute_s_per_ps"] for r in mine],
            marker="o",
            color=cycle_colour(i),
            label=f"{model} ({mine[0].get('backend', '')})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(ATOMS)
    ax.set_ylabel(TIME_PER_PS)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)
    return fig


def resources_plotly(rows: Sequence[Row], gpu_note: str = "") -> go.Figure:
    """The four resource panels against atoms, one line per model."""
    titles = []
    for key, _, short in PANELS:
        scope = _scope_text(rows, key) if key in SCOPE_OF else ""
        titles.append(f"{short}: {scope}" if scope else short)
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.12)
    models = _models(rows)
    for (key, label, _), (row, col) in zip(PANELS, [(1, 1), (1, 2), (2, 1), (2, 2)], strict=True):
        grouped = _by_model(rows, key)
        for model, mine in grouped.items():
            i = models.index(model)
            fig.add_trace(
                go.Scatter(
                    x=[r["n_atoms"] for r in mine],
                    y=[r[key] for r in mine],
                    mode="lines+markers",
                    name=model,
                    legendgroup=model,
                    showlegend=(row, col) == (1, 1),
                    line={"color": cycle_colour(i)},
                ),
                row=row,
                col=col,
            )
        if not grouped and key in SCOPE_OF:
            fig.add_annotation(
                text=f"no GPU readings: {gpu_note or 'none recorded'}",
                showarrow=False,
                xref=f"x{'' if (row, col) == (1, 1) else (row - 1) * 2 + col} domain",
                yref=f"y{'' if (row, col) == (1, 1) else (row - 1) * 2 + col} domain",
                x=0.5,
                y=0.5,
            )
        fig.update_xaxes(title_text=ATOMS, type="log", row=row, col=col)
        fig.update_yaxes(title_text=label, row=row, col=col)
    fig.update_layout(template="plotly_white", title="Resources used during MD", height=700)
    return fig


def resources_figure(rows: Sequence[Row], gpu_note: str = "") -> Figure:
    """Static twin of :func:`resources_plotly`."""
    fig = new_figure(9.0, 7.0)
    axes = fig.subplots(2, 2).ravel()
    models = _models(rows)
    for ax, (key, label, short) in zip(axes, PANELS, strict=True):
        grouped = _by_model(rows, key)
        for model, mine in grouped.items():
            ax.plot(
                [r["n_atoms"] for r in mine],
                [r[key] for r in mine],
                marker="o",
                color=cycle_colour(models.index(model)),
                label=model,
            )
        scope = _scope_text(rows, key) if key in SCOPE_OF else ""
        ax.set_title(f"{short}: {scope}" if scope else short, fontsize=9)
        ax.set_xlabel(ATOMS)
        ax.set_ylabel(label)
        if grouped:
            ax.set_xscale("log")
        if grouped:
            ax.set_ylim(bottom=0.0)
        elif key in SCOPE_OF:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(
                0.5,
                0.5,
                f"no GPU readings:\n{gpu_note or 'none recorded'}",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=8,
                wrap=True,
            )
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(frameon=False)
    return fig


def _batched_groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(f"{row['model']} {row['structure']} ({row['n_atoms']} atoms)", []).append(
            row
        )
    return {k: sorted(v, key=lambda r: r["n_systems"]) for k, v in groups.items()}


def batched_plotly(rows: Sequence[Row]) -> go.Figure:
    """Atom-steps per second against the number of systems in one batch; the largest batch
    that ran is ringed, a batch that ran out of memory is a cross."""
    fig = go.Figure()
    for i, (name, mine) in enumerate(_batched_groups(rows).items()):
        ran = [r for r in mine if r.get("status") == "ok"]
        colour = cycle_colour(i)
        fig.add_trace(
            go.Scatter(
                x=[r["n_systems"] for r in ran],
                y=[r["atom_steps_per_s"] for r in ran],
                mode="lines+markers",
                name=name,
                line={"color": colour},
                legendgroup=name,
            )
        )
        if ran:
            largest = ran[-1]
            fig.add_trace(
                go.Scatter(
                    x=[largest["n_systems"]],
                    y=[largest["atom_steps_per_s"]],
                    mode="markers",
                    name=f"largest that ran: {largest['n_systems']}",
                    legendgroup=name,
                    marker={"symbol": "circle-open", "size": 16, "color": colour},
                )
            )
        failed = [r for r in mine if r.get("status") != "ok"]
        if failed and ran:
            fig.add_trace(
                go.Scatter(
                    x=[r["n_systems"] for r in failed],
                    y=[ran[-1]["atom_steps_per_s"]] * len(failed),
                    mode="markers",
                    name=f"{failed[0].get('status')}",
                    legendgroup=name,
                    marker={"symbol": "x", "size": 12, "color": colour},
                )
            )
    plotly_layout(
        fig,
        title="Throughput of batched MD (TorchSim)",
        x_title="systems in one batch",
        y_title="atom-steps per second",
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def batched_figure(rows: Sequence[Row]) -> Figure:
    """Static twin of :func:`batched_plotly`."""
    fig = new_figure(9.5, 4.2)
    ax = fig.add_subplot()
    for i, (name, mine) in enumerate(_batched_groups(rows).items()):
        ran = [r for r in mine if r.get("status") == "ok"]
        colour = cycle_colour(i)
        if ran:
            ax.plot(
                [r["n_systems"] for r in ran],
                [r["atom_steps_per_s"] for r in ran],
                marker="o",
                color=colour,
                label=f"{name}, largest {ran[-1]['n_systems']}",
            )
            failed = [r["n_systems"] for r in mine if r.get("status") != "ok"]
            if failed:
                ax.scatter(
                    failed,
                    [ran[-1]["atom_steps_per_s"]] * len(failed),
                    marker="x",
                    color=colour,
                    s=60,
                )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("systems in one batch")
    ax.set_ylabel("atom-steps per second")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def save_cost_plots(
    rows: Sequence[Row],
    folder: Path,
    mode: str,
    gpu_note: str = "",
    plotlyjs: PlotlyJs | None = None,
) -> dict[str, Path]:
    """Draw the figures of ``mode`` (``serial`` or ``batched``) from ``rows`` into ``folder``;
    return the HTML page (``plot:<name>``) and the PNG (``png:<name>``) of each."""
    folder = Path(folder)
    js = plotlyjs if plotlyjs is not None else folder / "plotly.min.js"
    written: dict[str, FigureFiles] = {}
    if mode == "serial":
        written["cost_time_per_ps"] = save_figure(
            folder / "cost_time_per_ps",
            time_per_ps_figure(rows),
            time_per_ps_plotly(rows),
            plotlyjs=js,
        )
        written["cost_resources"] = save_figure(
            folder / "cost_resources",
            resources_figure(rows, gpu_note),
            resources_plotly(rows, gpu_note),
            plotlyjs=js,
        )
    else:
        written["cost_batched"] = save_figure(
            folder / "cost_batched", batched_figure(rows), batched_plotly(rows), plotlyjs=js
        )
    return {f"plot:{name}": files.html for name, files in written.items()} | {
        f"png:{name}": files.png for name, files in written.items()
    }
