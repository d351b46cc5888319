"""Training curves in the layout of the thesis's Figure 4.5: validation loss, force RMSE and
energy RMSE against the epoch, one line per head; the training split, where a trainer logs it,
dashed in the same colour."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scalms.plots._style import DPI, cycle_colour, new_figure


class CurvePoint(Protocol):
    """What a curve point needs (``scalms.training.curves.EpochRecord`` has it; plots import no
    section): a head's metrics for one split after ``epoch`` epochs, None where not logged."""

    @property
    def epoch(self) -> int: ...
    @property
    def head(self) -> str: ...
    @property
    def split(self) -> str: ...
    @property
    def loss(self) -> float | None: ...
    @property
    def rmse_forces_meV_per_A(self) -> float | None: ...
    @property
    def rmse_energy_meV_per_atom(self) -> float | None: ...


CURVE_PANELS = (
    ("loss", "loss (trainer's own)"),
    ("rmse_forces_meV_per_A", "force RMSE [meV/Å]"),
    ("rmse_energy_meV_per_atom", "energy RMSE [meV/atom]"),
)
"""CurvePoint field and axis title of each panel, left to right."""
EPOCH = "epoch"
VALID, TRAIN = "valid", "train"
SPLIT_STYLE = {VALID: "-", TRAIN: "--"}


def _series(
    records: Sequence[CurvePoint], head: str, split: str, field: str
) -> tuple[list[int], list[float]]:
    points = sorted(
        (r.epoch, value)
        for r in records
        if r.head == head and r.split == split and (value := getattr(r, field)) is not None
    )
    return [p[0] for p in points], [p[1] for p in points]


def training_curves_figure(records: Sequence[CurvePoint], title: str | None = None) -> Figure:
    """Three panels (loss, force RMSE in meV/Å, energy RMSE in meV/atom) against the epochs
    completed; a line per head and split, validation solid, training dashed. An axis whose
    values are all positive and span more than a decade is logarithmic."""
    if not records:
        raise ValueError("no training records to plot")
    heads = list(dict.fromkeys(r.head for r in records))
    fig = new_figure(12.0, 3.6)
    axes = fig.subplots(1, len(CURVE_PANELS), sharex=True)
    for ax, (field, label) in zip(axes, CURVE_PANELS, strict=True):
        values: list[float] = []
        for i, head in enumerate(heads):
            for split, style in SPLIT_STYLE.items():
                epochs, ys = _series(records, head, split, field)
                if not epochs:
                    continue
                values += ys
                ax.plot(
                    epochs,
                    ys,
                    linestyle=style,
                    marker="o" if len(epochs) < 30 else None,
                    markersize=3,
                    color=cycle_colour(i),
                    label=head if split == VALID else f"{head} ({split})",
                )
        if values and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
        ax.set_xlabel(EPOCH)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def save_training_curves(
    path: Path | str, records: Sequence[CurvePoint], title: str | None = None
) -> Path:
    """Write :func:`training_curves_figure` to ``path`` (PNG), atomically."""
    from scalms.files import atomic_path

    path = Path(path)
    figure = training_curves_figure(records, title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format=path.suffix.lstrip(".") or "png")
    return path
