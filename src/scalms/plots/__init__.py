"""Every figure of the dynamics workflow, and the HTML report that gathers them.

Each figure comes as a matplotlib `Figure` (`*_figure`, for PNG), a plotly figure (`*_plotly`,
for interactive HTML), and a `save_*` writing both as `<stem>.png` and `<stem>.html`. Nothing
here computes physics: the records of `scalms.analysis.results` come in already computed.

Names are imported lazily, so `from scalms.plots import write_report` does not pay for
matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ELEMENT_COLOURS": "_style",
    "FigureFiles": "_style",
    "element_colour": "_style",
    "save_figure": "_style",
    "pair_distribution_figure": "pdf",
    "pair_distribution_plotly": "pdf",
    "save_pair_distribution": "pdf",
    "solute_trace_figure": "trace",
    "solute_trace_plotly": "trace",
    "save_solute_trace": "trace",
    "trace_summary_figure": "trace",
    "trace_summary_plotly": "trace",
    "save_trace_summary": "trace",
    "msd_figure": "diffusion",
    "msd_plotly": "diffusion",
    "save_msd": "diffusion",
    "diffusion_table": "diffusion",
    "net_force_figure": "net_force",
    "net_force_plotly": "net_force",
    "save_net_force": "net_force",
    "thermo_figure": "thermo",
    "thermo_plotly": "thermo",
    "save_thermo": "thermo",
    "embedding_map_figure": "structural",
    "embedding_map_plotly": "structural",
    "save_embedding_map": "structural",
    "labelled_structure_figure": "structural",
    "labelled_structure_plotly": "structural",
    "save_labelled_structure": "structural",
    "distance_by_label_figure": "structural",
    "distance_by_label_plotly": "structural",
    "save_distance_by_label": "structural",
    "solute_map_figure": "structural",
    "solute_map_plotly": "structural",
    "save_solute_map": "structural",
    "label_table": "structural",
    "solute_table": "structural",
    "FigureEntry": "report",
    "Table": "report",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
