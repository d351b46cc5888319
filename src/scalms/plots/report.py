"""One self-contained HTML page per workflow: its parameters, its tables and its figures.

Static figures are embedded as base64 PNG, so the page still shows them after it is moved or
mailed; an interactive page written next to it is linked by a path relative to the report.
A figure given as a plotly object is embedded live, with plotly.js included once for the page.
All text is escaped. No template engine: the page is small enough to write by hand.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from scalms import __version__
from scalms.files import atomic_write_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 64rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: 0.3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.95rem; color: #444; margin-top: 0.3rem; }
footer { margin-top: 3rem; font-size: 0.85rem; color: #777; }
"""


@dataclass(frozen=True)
class Table:
    """A table of the report: every row has one cell per header entry."""

    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class FigureEntry:
    """A figure of the report: a PNG to embed, an interactive page to link, or both.

    `interactive` embeds a plotly figure in the page itself (plotly.js then adds about 5 MB).
    """

    caption: str
    png: Path | None = None
    html: Path | None = None
    interactive: go.Figure | None = field(default=None, compare=False)


def _text(value: Any) -> str:
    """Escaped text of a cell or parameter value; dicts and lists as JSON."""
    if isinstance(value, Mapping | list | tuple):
        value = json.dumps(value, default=str)
    return html.escape(str(value))


def _relative_href(target: Path, page: Path) -> str:
    """A link from the report at `page` to `target`, relative so both can move together."""
    try:
        relative = os.path.relpath(Path(target).resolve(), page.resolve().parent)
    except ValueError:  # another drive on Windows: no relative path exists
        return html.escape(Path(target).resolve().as_uri(), quote=True)
    return html.escape(quote(Path(relative).as_posix()), quote=True)


def _table_html(table: Table, number: int | None) -> str:
    """The table; numbered "Table n" unless `number` is None."""
    width = len(table.header)
    for i, row in enumerate(table.rows):
        if len(row) != width:
            raise ValueError(
                f"table {table.caption!r}: row {i} has {len(row)} cells for {width} columns"
            )
    prefix = "" if number is None else f"Table {number}: "
    head = "".join(f"<th>{_text(cell)}</th>" for cell in table.header)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    return (
        f"<table>\n<caption>{prefix}{_text(table.caption)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    )


def _figure_html(entry: FigureEntry, number: int, page: Path) -> str:
    parts = ["<figure>"]
    if entry.png is not None:
        data = base64.b64encode(Path(entry.png).read_bytes()).decode("ascii")
        alt = html.escape(entry.caption, quote=True)
        parts.append(f'<img src="data:image/png;base64,{data}" alt="{alt}">')
    if entry.interactive is not None:
        parts.append(
            entry.interactive.to_html(
                full_html=False,
                include_plotlyjs=False,
                config={"displaylogo": False},
                default_height="480px",  # a div in a page of no fixed height needs its own
            )
        )
    caption = f"Figure {number}: {_text(entry.caption)}"
    if entry.html is not None:
        caption += f' (<a href="{_relative_href(entry.html, page)}">interactive</a>)'
    parts.append(f"<figcaption>{caption}</figcaption>\n</figure>")
    return "\n".join(parts)


def write_report(
    path: str | Path,
    *,
    title: str,
    parameters: Mapping[str, Any],
    tables: Sequence[Table] = (),
    figures: Sequence[FigureEntry] = (),
) -> Path:
    """Write the report page to `path` and return it.

    The page is written to a temporary file next to `path` and moved into place when complete,
    so a failure never leaves half a report behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head_script = ""
    if any(entry.interactive is not None for entry in figures):
        from plotly.offline import get_plotlyjs

        head_script = f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
    parameter_rows = [[name, value] for name, value in parameters.items()]
    sections = [
        f"<h1>{_text(title)}</h1>",
        "<h2>Parameters</h2>",
        _table_html(Table("Run parameters", ["parameter", "value"], parameter_rows), None)
        if parameter_rows
        else "<p>No parameters recorded.</p>",
    ]
    if tables:
        sections.append("<h2>Tables</h2>")
        sections += [_table_html(table, i) for i, table in enumerate(tables, start=1)]
    if figures:
        sections.append("<h2>Figures</h2>")
        sections += [_figure_html(entry, i, path) for i, entry in enumerate(figures, start=1)]
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_text(title)}</title>\n<style>{_CSS}</style>\n{head_script}</head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<footer>Written by scalms {_text(__version__)} on {_text(stamp)}.</footer>\n"
        "</body>\n</html>\n"
    )
    return atomic_write_text(path, page)
