"""Figures of the DFT reference data, drawn from records (no files read, no physics here).

- :func:`net_force_vs_cutoff`: the CP2K net-force study. |ΣF| of each system against the
  plane-wave cutoff on a log axis, with the 0.05 eV/Å line forces should stay under (thesis
  Appendix B: CP2K data above it misled the MLIPs trained on it), and the wall time beside it.
- :func:`recompute_figure`: the DFT-settings benchmark (``scalms hpc recompute``). |ΔF| of each
  setting against the reference setting (linear, from zero), and each setting's net force (log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalms.plots._style import cycle_colour, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NET_FORCE_LIMIT_EV_PER_A = 0.05
"""The net force a consistent DFT frame stays under (the issue's bar for CP2K defaults)."""
NET_FORCE = "net force |ΣF| [eV/Å]"
CUTOFF = "plane-wave cutoff [Ry]"

Record = Mapping[str, Any]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _write_png(figure: Figure, path: Path | str, dpi: int = 150) -> Path:
    from scalms.files import atomic_path

    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


def net_force_vs_cutoff_figure(records: Sequence[Record]) -> Figure:
    """|ΣF| (log) against the cutoff, one line per ``system``, and the wall time per frame.

    Each record: ``system`` (e.g. "Ga4"), ``cutoff_Ry``, ``net_force_eV_per_A`` and optionally
    ``wall_s``; several records of one (system, cutoff), e.g. rattled frames, are drawn as
    points around their mean line. Without any wall time the figure has one panel.
    """
    if not records:
        raise ValueError("no net-force records to plot")
    systems = list(dict.fromkeys(str(r["system"]) for r in records))
    with_time = any(_finite(r.get("wall_s")) for r in records)
    fig = new_figure(10.0 if with_time else 6.0, 4.0)
    axes = fig.subplots(1, 2) if with_time else [fig.add_subplot()]
    for i, system in enumerate(systems):
        mine = [r for r in records if str(r["system"]) == system]
        cutoffs = sorted({float(r["cutoff_Ry"]) for r in mine})
        colour = cycle_colour(i)
        for ax, key in zip(axes, ("net_force_eV_per_A", "wall_s"), strict=False):
            points = [(float(r["cutoff_Ry"]), float(r[key])) for r in mine if _finite(r.get(key))]
            if not points:
                continue
            ax.scatter(*zip(*points, strict=True), color=colour, s=14, alpha=0.5)
            means = [
                (c, sum(v for x, v in points if x == c) / sum(1 for x, _ in points if x == c))
                for c in cutoffs
                if any(x == c for x, _ in points)
            ]
            ax.plot(*zip(*means, strict=True), color=colour, marker="o", label=system)
    net = axes[0]
    net.axhline(NET_FORCE_LIMIT_EV_PER_A, color="black", linestyle="--", linewidth=1.0)
    net.annotate(
        f"{NET_FORCE_LIMIT_EV_PER_A} eV/Å",
        (1.0, NET_FORCE_LIMIT_EV_PER_A),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 4),
        textcoords="offset points",
        ha="right",
        fontsize=8,
    )
    net.set_yscale("log", nonpositive="mask")
    net.set_xlabel(CUTOFF)
    net.set_ylabel(NET_FORCE)
    net.set_title("net force against cutoff")
    net.legend(frameon=False)
    if with_time:
        axes[1].set_ylim(bottom=0.0)
        axes[1].set_xlabel(CUTOFF)
        axes[1].set_ylabel("wall time per single point [s]")
        axes[1].set_title("cost against cutoff")
    return fig


def net_force_vs_cutoff(records: Sequence[Record], path: Path | str) -> Path:
    """Write :func:`net_force_vs_cutoff_figure` as a PNG at ``path`` (atomically)."""
    return _write_png(net_force_vs_cutoff_figure(records), path)


def recompute_figure(
    differences: Sequence[Any], summaries: Sequence[Any], labels: Sequence[str]
) -> Figure:
    """Left: RMS and max |ΔF| of each setting against the reference setting (and against the
    file's own reference where there is one); right: mean and max net force per setting.
    ``labels`` name the settings of ``summaries`` on the axes, in their order."""
    if not summaries:
        raise ValueError("no recompute rows to plot")
    names = [s.setting for s in summaries]
    x = range(len(names))
    fig = new_figure(max(6.0, 1.2 * len(names) + 4.0), 4.0)
    left, right = fig.subplots(1, 2)
    againsts = list(dict.fromkeys(d.against for d in differences))
    for k, against in enumerate(againsts):
        mine = {d.setting: d for d in differences if d.against == against}
        where = [i for i, name in enumerate(names) if name in mine]
        colour = cycle_colour(k)
        title = labels[names.index(against)] if against in names else against
        left.plot(
            where,
            [mine[names[i]].force_rms_eV_per_A for i in where],
            marker="o",
            color=colour,
            label=f"RMS vs {title}",
        )
        left.plot(
            where,
            [mine[names[i]].force_max_eV_per_A for i in where],
            marker="^",
            linestyle=":",
            color=colour,
            label=f"max vs {title}",
        )
    left.set_ylim(bottom=0.0)  # linear: the reference sits at zero against itself
    left.set_ylabel("|ΔF| [eV/Å]")
    left.set_title("forces against the reference")
    if againsts:
        left.legend(frameon=False, fontsize=8)
    right.plot(x, [s.net_force_mean_eV_per_A for s in summaries], marker="o", label="mean")
    right.plot(x, [s.net_force_max_eV_per_A for s in summaries], marker="^", label="max")
    right.axhline(NET_FORCE_LIMIT_EV_PER_A, color="black", linestyle="--", linewidth=1.0)
    right.set_yscale("log", nonpositive="mask")
    right.set_ylabel(NET_FORCE)
    right.set_title("net force per setting")
    right.legend(frameon=False, fontsize=8)
    ticks = [
        f"{label}\n(reference)" if name in againsts else label
        for name, label in zip(names, labels, strict=True)
    ]
    for ax in (left, right):
        ax.set_xticks(list(x), ticks, rotation=30, ha="right", fontsize=8)
    return fig


def save_recompute_figure(
    differences: Sequence[Any],
    summaries: Sequence[Any],
    labels: Sequence[str],
    path: Path | str,
) -> Path:
    """Write :func:`recompute_figure` as a PNG at ``path`` (atomically)."""
    return _write_png(recompute_figure(differences, summaries, labels), path)
