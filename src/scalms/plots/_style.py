"""The shared look of every figure: element colours, units on axes, and writing PNG + HTML.

Matplotlib figures are built with `matplotlib.figure.Figure` and never registered with pyplot, so
they hold no global state and are freed as soon as the caller drops them: hundreds of plots in one
process do not accumulate. Plotly figures are the interactive twins of the same data.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from ase.data import atomic_numbers
from ase.data.colors import jmol_colors

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

# The solutes of the thesis and gallium get hand-picked colours that stay readable on white and
# apart from the grey of the surface (jmol's Pt and Ag are themselves grey). Other elements take
# jmol's colour, darkened where it is too pale to see.
ELEMENT_COLOURS: dict[str, str] = {
    "Ga": "#c0504d",
    "Pt": "#1f4e9c",
    "Pd": "#00897b",
    "Ag": "#6b8e23",
    "Au": "#d4a017",
    "Bi": "#8e44ad",
}
SURFACE_COLOUR = "#9e9e9e"
"""The adaptive surface, in every figure that shows one."""
FIT_COLOUR = "#000000"
# tab10 without its grey, which would read as a surface.
CYCLE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)

DPI = 150
PlotlyJs = Literal["inline", "directory"] | Path
"""Where an HTML page finds plotly.js: see :func:`save_figure`."""

TIME_PS = "time [ps]"
DISTANCE_FROM_COM = "distance from centre of mass [Å]"


def element_colour(symbol: str) -> str:
    """Hex colour of an element, the same in every figure."""
    if symbol in ELEMENT_COLOURS:
        return ELEMENT_COLOURS[symbol]
    from matplotlib.colors import to_hex  # matplotlib only where a figure is drawn

    red, green, blue = jmol_colors[atomic_numbers[symbol]]
    hue, lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
    return to_hex(colorsys.hls_to_rgb(hue, min(lightness, 0.45), saturation))


def cycle_colour(i: int) -> str:
    """The i-th colour of the qualitative cycle used for atoms, runs and models."""
    return CYCLE[i % len(CYCLE)]


def fs_to_ps(time_fs: np.ndarray | float) -> np.ndarray:
    """Femtoseconds (how trajectories store time) to picoseconds (how figures show it)."""
    return np.asarray(time_fs, dtype=float) / 1000.0


def final_frames(n_frames: int, final_fraction: float) -> slice:
    """The last `final_fraction` of `n_frames` frames (at least one); 0.5 is the second half."""
    if not 0.0 < final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in (0, 1], got {final_fraction}")
    start = min(int(np.floor(n_frames * (1.0 - final_fraction))), n_frames - 1)
    return slice(max(start, 0), None)


def histogram_density(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Probability density of `samples` over the bins `edges` (zeros when there are none)."""
    samples = np.asarray(samples, dtype=float).ravel()
    if samples.size == 0:
        return np.zeros(len(edges) - 1)
    counts, _ = np.histogram(samples, bins=edges)
    total = counts.sum()
    if total == 0:
        return np.zeros(len(edges) - 1)
    return counts / (total * np.diff(edges))


def shared_edges(
    arrays: Sequence[np.ndarray], bins: int, limits: tuple[float, float] | None = None
) -> np.ndarray:
    """`bins` equal bins spanning `limits`, or all finite values of `arrays` when None."""
    if limits is None:
        values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
        values = values[np.isfinite(values)]
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    else:
        low, high = limits
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def scientific(value: float, digits: int = 3) -> tuple[str, int]:
    """Mantissa (as text, `digits` significant figures) and exponent of `value`."""
    if value == 0 or not np.isfinite(value):
        return (f"{value:.{digits - 1}f}", 0)
    exponent = int(np.floor(np.log10(abs(value))))
    mantissa = value / 10.0**exponent
    if round(abs(mantissa), digits - 1) >= 10.0:  # 9.999 rounds up to the next decade
        exponent += 1
        mantissa /= 10.0
    return (f"{mantissa:.{digits - 1}f}", exponent)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A pyplot-free figure with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def plotly_layout(fig: go.Figure, *, title: str | None, x_title: str, y_title: str) -> None:
    """The common plotly look: white template, axis titles with units, legend on the right."""
    fig.update_layout(
        template="plotly_white",
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        hovermode="closest",
    )


@dataclass(frozen=True)
class FigureFiles:
    """Where one figure was written: the static PNG and the interactive HTML."""

    png: Path
    html: Path


def shared_plotlyjs(path: str | Path) -> Path:
    """Write plotly.js (of the installed plotly) to `path`, unless that version is already there."""
    from plotly.offline import get_plotlyjs

    path = Path(path)
    if path.suffix != ".js":
        raise ValueError(f"plotly.js must be written to a .js file, got {path}")
    code = get_plotlyjs()
    banner = code[:200]  # names the plotly.js version
    if path.exists():
        with path.open(encoding="utf-8") as handle:
            if handle.read(len(banner)) == banner:
                return path
    from scalms.files import atomic_write_text

    return atomic_write_text(path, code)


def _plotlyjs_source(plotlyjs: PlotlyJs, html: Path) -> bool | str:
    """The `include_plotlyjs` argument of plotly's `write_html` for a page at `html`."""
    if plotlyjs == "inline":
        return True
    if plotlyjs == "directory":
        return "directory"
    library = shared_plotlyjs(plotlyjs).resolve()
    try:
        return Path(os.path.relpath(library, html.parent.resolve())).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return library.as_uri()


def save_figure(
    stem: str | Path,
    figure: Figure,
    interactive: go.Figure,
    *,
    dpi: int = DPI,
    plotlyjs: PlotlyJs = "inline",
) -> FigureFiles:
    """Write `figure` to `<stem>.png` and `interactive` to `<stem>.html`, creating folders.

    Where the page finds plotly.js (no page assumes internet access):
    "inline" puts it in the page, which then works alone (about 5 MB per page);
    "directory" writes plotly.min.js once beside the pages;
    a path to a .js file writes it there once and links each page to it relatively, so one
    copy serves a whole tree of figures (move the tree, not single pages).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.parent / f"{stem.name}.png"
    html = stem.parent / f"{stem.name}.html"
    figure.savefig(png, dpi=dpi)
    interactive.write_html(
        html,
        include_plotlyjs=_plotlyjs_source(plotlyjs, html),
        full_html=True,
        config={"displaylogo": False},
    )
    return FigureFiles(png=png, html=html)
