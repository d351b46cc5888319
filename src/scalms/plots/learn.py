"""Figures and reports of active learning, drawn from the rounds' records.

- ``spread_distributions``: per round, the candidate frames' max force spread under the previous
  committee (before training, dashed) and the new one (after, solid), on shared bins, with the
  selection threshold.
- ``held_out_by_round``: each member's and the committee's force MAE on the fixed held-out set,
  and the committee's mean spread there, against the round.
- ``spread_by_round``: the candidates' mean spread before and after training, per round.
- ``selected_frames``: the picked frames' spread against the temperature they were saved at.
- ``round_report`` / ``learn_report``: one HTML page per round and one across rounds.

Records come in computed (:mod:`scalms.analysis.learning`; only their attributes are read): nothing
here reads a file other than the figures it has just written, or computes more than a mean.
Every figure saver returns None when the records hold nothing it could draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from plotly.subplots import make_subplots

from scalms.plots._style import (
    FIT_COLOUR,
    FigureFiles,
    PlotlyJs,
    cycle_colour,
    new_figure,
    plotly_layout,
    save_figure,
    shared_edges,
)
from scalms.plots.report import FigureEntry, Table, write_report

if TYPE_CHECKING:
    from scalms.analysis.learning import RoundRecord, SelectedFrame

ROUND = "round"
FRAME_SPREAD = "max force spread of a frame [eV/Å]"
CANDIDATES = "candidate frames"
MAE = "held-out force MAE [eV/Å]"
HELD_OUT_SPREAD = "mean held-out force spread [eV/Å]"
MEAN_SPREAD = "mean candidate spread [eV/Å]"
TEMPERATURE = "thermostat temperature when saved [K]"
BEFORE = "before (previous committee)"
AFTER = "after (new committee)"
COMMITTEE_LINE = {"color": FIT_COLOUR, "width": 3.5}
FIGURES = "figures"
PLOTLYJS = "figures/plotly.min.js"
"""One copy of plotly.js serves every figure page of a report folder."""
TRAIN, VALID = "train", "valid"
"""Keys of ``RoundRecord.dataset`` counted in the across-rounds table."""
MISSING = "–"
"""Shown where a round has no such number (round 0 has no candidates), never "nan"."""
LOG_SPAN = 20.0
"""Spreads spanning more than this factor (all positive) are binned and drawn on a log axis."""


def round_colour(round_number: int) -> str:
    """The colour of a round, the same in every figure."""
    return cycle_colour(round_number)


# ---------------------------------------------------------------- spread distributions


def _spread_rounds(records: Sequence[RoundRecord]) -> list[RoundRecord]:
    """Rounds >= 1 with candidate spreads, in round order."""
    return sorted(
        (
            r
            for r in records
            if r.round >= 1 and (r.spread_before_eV_per_A or r.spread_after_eV_per_A)
        ),
        key=lambda r: r.round,
    )


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _spread_edges(rounds: Sequence[RoundRecord], bins: int) -> tuple[np.ndarray, bool]:
    """Bin edges shared by every round and committee, and whether they are logarithmic."""
    values = np.concatenate(
        [_finite(r.spread_before_eV_per_A) for r in rounds]
        + [_finite(r.spread_after_eV_per_A) for r in rounds]
    )
    if values.size and values.min() > 0 and values.max() > LOG_SPAN * values.min():
        return np.geomspace(values.min(), values.max(), bins + 1), True
    return shared_edges([values], bins), False


def _threshold_drawable(threshold_eV_per_A: float | None, log: bool) -> bool:
    """A threshold line exists where one was given and the axis can show it (0 is not on a
    log axis)."""
    return threshold_eV_per_A is not None and (threshold_eV_per_A > 0 or not log)


def _counts(values: Sequence[float], edges: np.ndarray) -> np.ndarray:
    return np.histogram(_finite(values), bins=edges)[0]


def spread_distributions_figure(
    records: Sequence[RoundRecord], threshold_eV_per_A: float | None, *, bins: int = 30
) -> Figure:
    """One panel per round >= 1: how many candidate frames have each max spread, before and
    after training, on bins shared by all panels; the threshold as a dotted vertical line."""
    rounds = _spread_rounds(records)
    if not rounds:
        raise ValueError("no round with candidate spreads to draw")
    edges, log = _spread_edges(rounds, bins)
    ncols = min(len(rounds), 3)
    nrows = math.ceil(len(rounds) / ncols)
    fig = new_figure(4.3 * ncols, 3.2 * nrows)
    # not sharex: a partial last row would leave the panels above it without tick labels
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    low, high = edges[0], edges[-1]
    if _threshold_drawable(threshold_eV_per_A, log):
        low, high = min(low, threshold_eV_per_A), max(high, threshold_eV_per_A)
    pad = 0.03 * (np.log10(high / low) if log else high - low)  # a line at an end stays visible
    low, high = (low / 10**pad, high * 10**pad) if log else (low - pad, high + pad)
    for ax, record in zip(axes, rounds, strict=False):
        colour = round_colour(record.round)
        for values, style, label in (
            (record.spread_before_eV_per_A, "--", BEFORE),
            (record.spread_after_eV_per_A, "-", AFTER),
        ):
            if values:
                ax.stairs(_counts(values, edges), edges, color=colour, linestyle=style, label=label)
        if _threshold_drawable(threshold_eV_per_A, log):
            ax.axvline(
                threshold_eV_per_A,
                color=FIT_COLOUR,
                linestyle=":",
                label=f"threshold {threshold_eV_per_A:g} eV/Å",
            )
        if log:  # labels at 1, 2 and 5 per decade: spreads rarely span many decades
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(low, high)
        ax.set_title(f"round {record.round}: {record.n_candidates} candidates")
        ax.set_xlabel(FRAME_SPREAD)
        ax.set_ylabel(CANDIDATES)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(rounds) :]:
        ax.set_visible(False)
    axes[0].legend(frameon=False, fontsize="small")
    return fig


def spread_distributions_plotly(
    records: Sequence[RoundRecord], threshold_eV_per_A: float | None, *, bins: int = 30
) -> go.Figure:
    """Interactive twin of :func:`spread_distributions_figure`: every round on one axis, a
    legend group per round."""
    rounds = _spread_rounds(records)
    if not rounds:
        raise ValueError("no round with candidate spreads to draw")
    edges, log = _spread_edges(rounds, bins)
    fig = go.Figure()
    top = 0
    for record in rounds:
        for values, dash, label in (
            (record.spread_before_eV_per_A, "dash", BEFORE),
            (record.spread_after_eV_per_A, "solid", AFTER),
        ):
            if not values:
                continue
            counts = _counts(values, edges)
            top = max(top, int(counts.max()))
            fig.add_trace(
                go.Scatter(
                    x=edges,
                    y=np.r_[counts, counts[-1]],
                    mode="lines",
                    line={"shape": "hv", "color": round_colour(record.round), "dash": dash},
                    name=f"round {record.round}, {label}",
                    legendgroup=f"round {record.round}",
                )
            )
    # the threshold as a trace, not a shape: a shape's x on a log axis is taken as log10
    if _threshold_drawable(threshold_eV_per_A, log):
        fig.add_trace(
            go.Scatter(
                x=[threshold_eV_per_A, threshold_eV_per_A],
                y=[0, top],
                mode="lines",
                line={"color": FIT_COLOUR, "dash": "dot"},
                name=f"threshold {threshold_eV_per_A:g} eV/Å",
            )
        )
    plotly_layout(
        fig,
        title="Candidate frames' max force spread, before and after training",
        x_title=FRAME_SPREAD,
        y_title=CANDIDATES,
    )
    if log:
        fig.update_xaxes(type="log")
    return fig


def spread_distributions(
    records: Sequence[RoundRecord],
    threshold_eV_per_A: float | None,
    out: Path,
    *,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles | None:
    """Write `<out>.png` and `<out>.html` of the spread distributions (None: no round >= 1
    has candidate spreads)."""
    if not _spread_rounds(records):
        return None
    return save_figure(
        out,
        spread_distributions_figure(records, threshold_eV_per_A),
        spread_distributions_plotly(records, threshold_eV_per_A),
        plotlyjs=plotlyjs,
    )


# ---------------------------------------------------------------- held-out errors


def _held_out_rounds(records: Sequence[RoundRecord]) -> list[RoundRecord]:
    return sorted((r for r in records if r.held_out is not None), key=lambda r: r.round)


def _member_series(rounds: Sequence[RoundRecord]) -> list[tuple[list[int], list[float], list[str]]]:
    """Per committee slot (member i of each round's committee): rounds, force MAE, model names.

    Members are renamed as they are fine-tuned, so a line follows a slot, not a name.
    """
    slots: list[tuple[list[int], list[float], list[str]]] = []
    for record in rounds:
        errors = record.held_out.member_force_mae_eV_per_A
        names = [n for n in record.committee if n in errors]
        names += [n for n in errors if n not in names]
        for i, name in enumerate(names):
            if i == len(slots):
                slots.append(([], [], []))
            if math.isfinite(errors[name]):
                slots[i][0].append(record.round)
                slots[i][1].append(errors[name])
                slots[i][2].append(name)
    return slots


def _committee_series(rounds: Sequence[RoundRecord], field: str) -> tuple[list[int], list[float]]:
    points = [(r.round, getattr(r.held_out, field)) for r in rounds]
    points = [(x, y) for x, y in points if math.isfinite(y)]
    return [x for x, _ in points], [y for _, y in points]


def held_out_by_round_figure(records: Sequence[RoundRecord]) -> Figure:
    """Left: held-out force MAE per member (thin) and of the committee's mean force (thick)
    against the round; right: the committee's mean force spread on the held-out frames."""
    rounds = _held_out_rounds(records)
    if not rounds:
        raise ValueError("no round with held-out errors to draw")
    fig = new_figure(10.0, 3.8)
    mae_ax, spread_ax = fig.subplots(1, 2, sharex=True)
    for i, (xs, ys, _) in enumerate(_member_series(rounds)):
        mae_ax.plot(
            xs, ys, color=cycle_colour(i), linewidth=1.0, marker="o", ms=3, label=f"member {i + 1}"
        )
    xs, ys = _committee_series(rounds, "committee_force_mae_eV_per_A")
    mae_ax.plot(xs, ys, color=FIT_COLOUR, linewidth=2.8, marker="o", label="committee mean")
    mae_ax.set_ylabel(MAE)
    mae_ax.legend(frameon=False, fontsize="small")
    xs, ys = _committee_series(rounds, "mean_spread_eV_per_A")
    spread_ax.plot(xs, ys, color=FIT_COLOUR, linewidth=2.0, marker="o")
    spread_ax.set_ylabel(HELD_OUT_SPREAD)
    for ax in (mae_ax, spread_ax):
        ax.set_xlabel(ROUND)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    n_frames = rounds[-1].held_out.n_frames
    fig.suptitle(f"The committee on the {n_frames} held-out frames")
    return fig


def held_out_by_round_plotly(records: Sequence[RoundRecord]) -> go.Figure:
    """Interactive twin of :func:`held_out_by_round_figure`; hovering names each member."""
    rounds = _held_out_rounds(records)
    if not rounds:
        raise ValueError("no round with held-out errors to draw")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12)
    for i, (xs, ys, names) in enumerate(_member_series(rounds)):
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                text=names,
                mode="lines+markers",
                line={"color": cycle_colour(i), "width": 1.2},
                name=f"member {i + 1}",
                hovertemplate="%{text}<br>round %{x}<br>MAE %{y:.4g} eV/Å",
            ),
            row=1,
            col=1,
        )
    xs, ys = _committee_series(rounds, "committee_force_mae_eV_per_A")
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines+markers", line=COMMITTEE_LINE, name="committee mean"),
        row=1,
        col=1,
    )
    xs, ys = _committee_series(rounds, "mean_spread_eV_per_A")
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines+markers", line=COMMITTEE_LINE, name="mean spread"),
        row=1,
        col=2,
    )
    plotly_layout(
        fig,
        title=f"The committee on the {rounds[-1].held_out.n_frames} held-out frames",
        x_title=ROUND,
        y_title=MAE,
    )
    fig.update_xaxes(title_text=ROUND, dtick=1, row=1, col=2)
    fig.update_xaxes(dtick=1, row=1, col=1)
    fig.update_yaxes(title_text=HELD_OUT_SPREAD, row=1, col=2)
    return fig


def held_out_by_round(
    records: Sequence[RoundRecord], out: Path, *, plotlyjs: PlotlyJs = "inline"
) -> FigureFiles | None:
    """Write `<out>.png` and `<out>.html` of the held-out errors (None: no held-out record)."""
    if not _held_out_rounds(records):
        return None
    return save_figure(
        out, held_out_by_round_figure(records), held_out_by_round_plotly(records), plotlyjs=plotlyjs
    )


# ---------------------------------------------------------------- mean spread per round


def _mean_spreads(records: Sequence[RoundRecord]) -> dict[str, tuple[list[int], list[float]]]:
    """BEFORE / AFTER -> (rounds, mean candidate spread), finite values only."""
    series: dict[str, tuple[list[int], list[float]]] = {BEFORE: ([], []), AFTER: ([], [])}
    for record in _spread_rounds(records):
        for label, value in (
            (BEFORE, record.mean_spread_before),
            (AFTER, record.mean_spread_after),
        ):
            if math.isfinite(value):
                series[label][0].append(record.round)
                series[label][1].append(value)
    return series


SPREAD_STYLE = {BEFORE: ("--", "dash", cycle_colour(0)), AFTER: ("-", "solid", FIT_COLOUR)}


def spread_by_round_figure(records: Sequence[RoundRecord]) -> Figure:
    """The candidates' mean max spread per round: under the committee that ran the MD (before)
    and under the one trained on the round's labels (after)."""
    series = _mean_spreads(records)
    if not any(xs for xs, _ in series.values()):
        raise ValueError("no round with candidate spreads to draw")
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for label, (xs, ys) in series.items():
        style, _, colour = SPREAD_STYLE[label]
        ax.plot(xs, ys, linestyle=style, marker="o", color=colour, label=label)
    ax.set_xlabel(ROUND)
    ax.set_ylabel(MEAN_SPREAD)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title("Mean spread on each round's candidates")
    return fig


def spread_by_round_plotly(records: Sequence[RoundRecord]) -> go.Figure:
    """Interactive twin of :func:`spread_by_round_figure`."""
    series = _mean_spreads(records)
    if not any(xs for xs, _ in series.values()):
        raise ValueError("no round with candidate spreads to draw")
    fig = go.Figure()
    for label, (xs, ys) in series.items():
        _, dash, colour = SPREAD_STYLE[label]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                line={"color": colour, "dash": dash},
                name=label,
            )
        )
    plotly_layout(
        fig, title="Mean spread on each round's candidates", x_title=ROUND, y_title=MEAN_SPREAD
    )
    fig.update_xaxes(dtick=1)
    return fig


def spread_by_round(
    records: Sequence[RoundRecord], out: Path, *, plotlyjs: PlotlyJs = "inline"
) -> FigureFiles | None:
    """Write `<out>.png` and `<out>.html` of the mean spreads (None: no candidate spreads)."""
    if not any(xs for xs, _ in _mean_spreads(records).values()):
        return None
    return save_figure(
        out, spread_by_round_figure(records), spread_by_round_plotly(records), plotlyjs=plotlyjs
    )


# ---------------------------------------------------------------- the picked frames


def _picked(records: Sequence[RoundRecord]) -> list[tuple[int, list[SelectedFrame]]]:
    """(round, its picked frames) for every round that picked any, in round order."""
    return [
        (r.round, list(r.selected)) for r in sorted(records, key=lambda r: r.round) if r.selected
    ]


def _thresholds(records: Sequence[RoundRecord]) -> list[float]:
    return sorted(
        {r.selection.threshold_eV_per_A for r in records if r.selection is not None and r.selected}
    )


def _largest(picked: list[tuple[int, list[SelectedFrame]]]) -> int:
    return max(max(s.n_atoms for s in frames) for _, frames in picked)


def selected_frames_figure(records: Sequence[RoundRecord]) -> Figure:
    """The picked frames' max spread against the temperature they were saved at; one colour
    per round, marker area proportional to the frame's number of atoms; dotted: thresholds."""
    picked = _picked(records)
    if not picked:
        raise ValueError("no picked frames to draw")
    largest = _largest(picked)
    fig = new_figure(6.5, 4.3)
    ax = fig.add_subplot()
    for round_number, frames in picked:
        ax.scatter(
            [s.temperature_K for s in frames],
            [s.max_spread_eV_per_A for s in frames],
            s=[90.0 * s.n_atoms / largest for s in frames],
            color=round_colour(round_number),
            alpha=0.8,
            edgecolors="none",
            label=f"round {round_number}",
        )
    for threshold in _thresholds(records):
        ax.axhline(threshold, color=FIT_COLOUR, linestyle=":", linewidth=1.0)
    ax.set_xlabel(TEMPERATURE)
    ax.set_ylabel(FRAME_SPREAD)
    legend = ax.legend(frameon=False, fontsize="small")
    for handle in legend.legend_handles:  # one size in the legend: area is atoms, not round
        handle.set_sizes([40.0])
    ax.set_title(f"Frames picked for labelling (area: atoms, largest {largest})")
    return fig


def selected_frames_plotly(records: Sequence[RoundRecord]) -> go.Figure:
    """Interactive twin of :func:`selected_frames_figure`; hovering tells where a frame is from."""
    picked = _picked(records)
    if not picked:
        raise ValueError("no picked frames to draw")
    largest = _largest(picked)
    fig = go.Figure()
    for round_number, frames in picked:
        fig.add_trace(
            go.Scatter(
                x=[s.temperature_K for s in frames],
                y=[s.max_spread_eV_per_A for s in frames],
                mode="markers",
                marker={
                    "color": round_colour(round_number),
                    "size": [5.0 + 13.0 * math.sqrt(s.n_atoms / largest) for s in frames],
                    "opacity": 0.8,
                },
                text=[
                    f"{s.structure}, MD frame {s.md_frame} ({s.time_fs:g} fs), "
                    f"{s.n_atoms} atoms, candidate {s.candidate}"
                    for s in frames
                ],
                hovertemplate="%{text}<br>%{x:g} K<br>spread %{y:.4g} eV/Å",
                name=f"round {round_number}",
            )
        )
    for threshold in _thresholds(records):
        fig.add_hline(y=threshold, line_dash="dot", line_color=FIT_COLOUR)
    plotly_layout(
        fig, title="Frames picked for labelling", x_title=TEMPERATURE, y_title=FRAME_SPREAD
    )
    return fig


def selected_frames(
    records: Sequence[RoundRecord], out: Path, *, plotlyjs: PlotlyJs = "inline"
) -> FigureFiles | None:
    """Write `<out>.png` and `<out>.html` of the picked frames (None: nothing was picked)."""
    if not _picked(records):
        return None
    return save_figure(
        out, selected_frames_figure(records), selected_frames_plotly(records), plotlyjs=plotlyjs
    )


# ---------------------------------------------------------------- reports


def _number(value: float | None, digits: int = 4) -> str:
    """`digits` significant figures; MISSING for None and for non-finite values."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{digits}g}"


PICK_HEADER = [
    "candidate",
    "structure",
    "MD frame",
    "time [fs]",
    "T [K]",
    "atoms",
    "max spread [eV/Å]",
    "distance to nearest earlier pick",
]


def _pick_row(frame: SelectedFrame, first: bool) -> list[Any]:
    """The table row of a picked frame; its distance is missing for the first pick, and for
    every pick of a round selected without descriptors (no minimum distance)."""
    return [
        frame.candidate,
        frame.structure,
        frame.md_frame,
        _number(frame.time_fs, 6),
        _number(frame.temperature_K, 6),
        frame.n_atoms,
        _number(frame.max_spread_eV_per_A),
        _number(frame.min_distance, 3) + (" (first pick)" if first else ""),
    ]


def _why(record: RoundRecord, threshold_eV_per_A: float) -> str:
    """How the picks were chosen, for the picked-frames caption."""
    selection = record.selection
    if selection is None:
        return f"max spread above {threshold_eV_per_A:g} eV/Å, largest first"
    return (
        f"max spread above {selection.threshold_eV_per_A:g} eV/Å, largest first, each at least "
        f"{selection.min_distance:g} from every earlier pick in descriptor space (RMS per "
        f"component, in the candidates' standard deviations), at most {selection.max_count}"
    )


def _held_out_table(record: RoundRecord) -> Table:
    held = record.held_out
    rows = [
        [
            name,
            _number(mae),
            MISSING,
            _number(held.member_energy_mae_eV_per_atom.get(name)),
        ]
        for name, mae in held.member_force_mae_eV_per_A.items()
    ]
    rows.append(
        [
            "committee (mean force)",
            _number(held.committee_force_mae_eV_per_A),
            _number(held.committee_force_rmse_eV_per_A),
            MISSING,
        ]
    )
    return Table(
        caption=f"Errors on the {held.n_frames} held-out frames after round {record.round} "
        f"(committee mean spread there: {_number(held.mean_spread_eV_per_A)} eV/Å)",
        header=["model", "force MAE [eV/Å]", "force RMSE [eV/Å]", "energy MAE [eV/atom]"],
        rows=rows,
    )


def _steps_text(wall_s: Mapping[str, float]) -> str:
    return ", ".join(f"{step} {seconds:.1f} s" for step, seconds in wall_s.items())


def round_report(
    record: RoundRecord,
    threshold_eV_per_A: float,
    out_dir: Path,
    *,
    plotlyjs: PlotlyJs | None = None,
) -> Path:
    """Write `out_dir/report.html` for one round: its spread figure and picked frames, the
    selection counts, the dataset and the held-out errors; figures go to `out_dir/figures/`.

    `plotlyjs` (default: one copy in `out_dir/figures/`) lets every round share one copy.
    """
    out_dir = Path(out_dir)
    js = plotlyjs if plotlyjs is not None else out_dir / PLOTLYJS
    figures = []
    spread = spread_distributions(
        [record], threshold_eV_per_A, out_dir / FIGURES / "spread", plotlyjs=js
    )
    if spread is not None:
        figures.append(
            FigureEntry(
                f"Round {record.round}: the candidates' max force spread under the previous "
                "committee (dashed) and the new one (solid); dotted: the selection threshold.",
                png=spread.png,
                html=spread.html,
            )
        )
    picks = selected_frames([record], out_dir / FIGURES / "selected", plotlyjs=js)
    if picks is not None:
        figures.append(
            FigureEntry(
                f"Round {record.round}: the picked frames' spread against their temperature.",
                png=picks.png,
                html=picks.html,
            )
        )
    tables = []
    if record.round >= 1:
        tables.append(
            Table(
                caption=f"Frames picked for labelling: {_why(record, threshold_eV_per_A)}"
                + ("" if record.selected else " (none picked)"),
                header=PICK_HEADER,
                rows=[_pick_row(frame, i == 0) for i, frame in enumerate(record.selected)],
            )
        )
        selection = record.selection
        tables.append(
            Table(
                caption="Selection counts",
                header=["candidates", "above threshold", "too close", "picked", "limit"],
                rows=[
                    [
                        record.n_candidates,
                        selection.above_threshold if selection else MISSING,
                        selection.too_close if selection else MISSING,
                        len(selection.picked) if selection else len(record.selected),
                        selection.max_count if selection else MISSING,
                    ]
                ],
            )
        )
    if record.dataset:
        tables.append(
            Table(
                caption=f"Dataset after round {record.round}",
                header=["set", "frames"],
                rows=[[name, count] for name, count in record.dataset.items()],
            )
        )
    if record.held_out is not None:
        tables.append(_held_out_table(record))
    parameters: dict[str, Any] = {
        "round": record.round,
        "committee": ", ".join(record.committee),
        "spread threshold": f"{threshold_eV_per_A:g} eV/Å",
    }
    if record.selection is not None:
        parameters["minimum descriptor distance"] = f"{record.selection.min_distance:g}"
        parameters["most frames picked per round"] = record.selection.max_count
    if record.round >= 1:
        parameters["labelled"] = f"{record.labelled} ({record.labelled_now} computed now)"
        parameters["mean candidate spread before"] = f"{_number(record.mean_spread_before)} eV/Å"
        parameters["mean candidate spread after"] = f"{_number(record.mean_spread_after)} eV/Å"
    if record.stopped:
        parameters["stopped"] = record.stopped
    if record.wall_s:
        parameters["step times"] = _steps_text(record.wall_s)
    return write_report(
        out_dir / "report.html",
        title=f"Active learning: round {record.round}",
        parameters=parameters,
        tables=tables,
        figures=figures,
    )


def _round_row(record: RoundRecord) -> list[Any]:
    selection = record.selection
    later = record.round >= 1
    return [
        record.round,
        ", ".join(record.committee),
        record.n_candidates if later else MISSING,
        selection.above_threshold if selection else MISSING,
        len(record.selected) if later else MISSING,
        f"{record.labelled} ({record.labelled_now})" if later else MISSING,
        record.dataset.get(TRAIN, MISSING),
        record.dataset.get(VALID, MISSING),
        _number(record.held_out.committee_force_mae_eV_per_A) if record.held_out else MISSING,
        _number(record.mean_spread_before),
        _number(record.mean_spread_after),
        record.stopped or "",
    ]


def learn_report(
    records: Sequence[RoundRecord],
    settings: Mapping[str, Any],
    registered: Sequence[str],
    out_dir: Path,
    *,
    plotlyjs: PlotlyJs | None = None,
) -> Path:
    """Write `out_dir/report.html` across rounds: the four figures (in `out_dir/figures/`), a
    row per round, every picked frame, the settings, and the final committee as registered in
    model_config.yaml (`registered`; empty: none registered yet)."""
    out_dir = Path(out_dir)
    records = sorted(records, key=lambda r: r.round)
    js = plotlyjs if plotlyjs is not None else out_dir / PLOTLYJS
    folder = out_dir / FIGURES
    selections = [r.selection for r in records if r.selection is not None]
    threshold = selections[-1].threshold_eV_per_A if selections else None  # the latest in force
    figures = []
    for files, caption in (
        (
            spread_distributions(records, threshold, folder / "spread", plotlyjs=js),
            "Each round's candidates: max force spread under the committee that ran the MD "
            "(dashed) and under the committee trained on the round's labels (solid).",
        ),
        (
            held_out_by_round(records, folder / "held_out", plotlyjs=js),
            "Held-out force MAE per member (thin) and of the committee's mean force (thick), and "
            "the committee's mean spread on the held-out frames, by round.",
        ),
        (
            spread_by_round(records, folder / "spread_by_round", plotlyjs=js),
            "Mean max spread on each round's candidates, before and after training.",
        ),
        (
            selected_frames(records, folder / "selected", plotlyjs=js),
            "Every picked frame's spread against the temperature it was saved at; marker area "
            "by number of atoms, colour by round.",
        ),
    ):
        if files is not None:
            figures.append(FigureEntry(caption, png=files.png, html=files.html))
    rounds = Table(
        caption="Rounds (labelled: all, and in brackets those computed in this run)",
        header=[
            "round",
            "committee",
            "candidates",
            "above threshold",
            "picked",
            "labelled (computed now)",
            "train frames",
            "valid frames",
            "held-out force MAE, committee [eV/Å]",
            "mean spread before [eV/Å]",
            "mean spread after [eV/Å]",
            "stopped",
        ],
        rows=[_round_row(r) for r in records],
    )
    picked = Table(
        caption="Every frame picked for labelling",
        header=["round", *PICK_HEADER],
        rows=[[r.round, *_pick_row(s, i == 0)] for r in records for i, s in enumerate(r.selected)],
    )
    final = Table(
        caption="Final committee, registered in model_config.yaml",
        header=["model"],
        rows=[[name] for name in registered] or [["none registered in model_config.yaml yet"]],
    )
    tables = [rounds, final] + ([picked] if picked.rows else [])
    last = records[-1].round if records else 0
    return write_report(
        out_dir / "report.html",
        title=f"Active learning: rounds 0 to {last}",
        parameters=dict(settings),
        tables=tables,
        figures=figures,
    )
