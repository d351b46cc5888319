"""The benchmarks' figures and pages: records computed here, drawn by :mod:`scalms.plots`.

The one place in :mod:`scalms.benchmark` that imports the plots (they import nothing of the
benchmark): the cost figures from the rows of the working dir's CSV, the accuracy figures from
:mod:`scalms.benchmark.parity`'s records, and the accuracy benchmark's one-page summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scalms.benchmark.metrics import metrics_row
from scalms.benchmark.parity import parities
from scalms.io.benchmark_accuracy import model_attrs

if TYPE_CHECKING:
    from scalms.benchmark.accuracy import AccuracyReport


def cost_figures(workdir: Path, mode: str, gpu_note: str = "") -> dict[str, Path]:
    """Draw the cost figures of ``mode`` from every row of the working dir's summary CSV (the
    models of earlier runs too) into ``workdir/plots``; return the HTML page and PNG of each."""
    from scalms.benchmark.cost import FILES, read_rows
    from scalms.plots.benchmark_cost import save_cost_plots

    workdir = Path(workdir)
    rows = read_rows(workdir / FILES[mode][0])
    return save_cost_plots(rows, workdir / "plots", mode, gpu_note)


def accuracy_figures(report: AccuracyReport) -> dict[str, Path]:
    """Draw every figure of an analysed accuracy benchmark into ``report.workdir/plots``."""
    from scalms.plots.benchmark_accuracy import save_accuracy_plots

    return save_accuracy_plots(
        report.workdir / "plots",
        parities(report.table),
        report.net_force_rows,
        report.net_force.threshold_eV_per_A,
        report.committee,
    )


def _milli(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{1000 * value:.1f}"


def write_summary(report: AccuracyReport, path: Path) -> Path:
    """One page: every model's errors, per element, the flagged reference frames, the
    committee, and the main figures when they were drawn."""
    from scalms.plots.report import FigureEntry, Table, write_report

    attrs = model_attrs(report.workdir / "benchmark.h5")
    all_metrics = list(report.metrics)
    if report.committee is not None:
        all_metrics.append(report.committee.metrics)
    header = [
        "model",
        "frames",
        "atoms",
        "E MAE (meV/atom)",
        "E MAE offsets removed (meV/atom)",
        "F MAE (meV/Å)",
        "F RMSE (meV/Å)",
        "F R²",
        "|F| MAE (meV/Å)",
        "max F error (meV/Å)",
        "backend",
        "compute (s)",
    ]
    rows = []
    for metrics in sorted(all_metrics, key=lambda m: m.forces.components.mae):
        row = metrics_row(metrics)
        model_attr = attrs.get(metrics.model, {})
        rows.append(
            [
                metrics.model,
                metrics.n_frames,
                metrics.n_atoms,
                _milli(row["energy_mae_eV_per_atom"]),
                _milli(row["energy_aligned_mae_eV_per_atom"]),
                _milli(row["force_mae_eV_per_A"]),
                _milli(row["force_rmse_eV_per_A"]),
                f"{row['force_r2']:.4f}",
                _milli(row["force_magnitude_mae_eV_per_A"]),
                _milli(row["force_max_error_eV_per_A"]),
                model_attr.get("backend", "-"),
                f"{model_attr['compute_time_s']:.2f}" if "compute_time_s" in model_attr else "-",
            ]
        )
    element_rows = [
        [
            m.model,
            symbol,
            e.components.n // 3,
            _milli(e.components.mae),
            _milli(e.components.rmse),
            f"{e.components.r2:.4f}",
            _milli(e.magnitudes.mae),
        ]
        for m in report.metrics
        for symbol, e in m.forces_by_element.items()
    ]
    tables = [
        Table("Models, best force MAE first", header, rows),
        Table(
            "Force errors per element",
            [
                "model",
                "element",
                "atoms",
                "F MAE (meV/Å)",
                "F RMSE (meV/Å)",
                "F R²",
                "|F| MAE (meV/Å)",
            ],
            element_rows,
        ),
    ]
    flagged = report.flagged_frames
    threshold = report.net_force.threshold_eV_per_A
    tables.append(
        Table(
            f"Reference frames whose forces sum to more than {threshold:g} eV/Å "
            f"({len(flagged)} of {len(report.net_force_rows)})",
            ["structure", "frame", "atoms", "|ΣF| (eV/Å)"],
            [
                [r["structure"], r["frame"], r["n_atoms"], f"{r['net_force_eV_per_A']:.4f}"]
                for r in flagged
            ]
            or [["none", "-", "-", "-"]],
        )
    )
    if report.committee is not None:
        c = report.committee
        tables.append(
            Table(
                f"Committee of {', '.join(c.models)}: how its force spread tracks its error",
                ["level", "samples", "Pearson", "Spearman"],
                [
                    [
                        "atom",
                        c.per_atom.n,
                        f"{c.per_atom.pearson:.3f}",
                        f"{c.per_atom.spearman:.3f}",
                    ],
                    [
                        "frame (largest per frame)",
                        c.per_frame.n,
                        f"{c.per_frame.pearson:.3f}",
                        f"{c.per_frame.spearman:.3f}",
                    ],
                ],
            )
        )
    figures = []
    files = report.files
    parity = [(f"{m}/force_parity_pymatviz", f"{m}: force parity") for m in report.table.models]
    for name, caption in [
        *parity,
        ("force_error_distribution", "Force component error distribution of every model"),
        ("reference_net_force", "Net force of the reference per frame"),
        ("committee_spread_vs_error", "Committee force spread against its error"),
    ]:
        if f"png:{name}" in files:
            figures.append(
                FigureEntry(caption, png=files[f"png:{name}"], html=files[f"plot:{name}"])
            )
    parameters = {
        "working directory": str(report.workdir),
        "structures": ", ".join(report.table.structures),
        "frames": len(report.net_force_rows),
        "energy offsets": "per element, least squares over the frames (per model)",
    }
    return write_report(
        path,
        title="Accuracy benchmark",
        parameters=parameters,
        tables=tables,
        figures=figures,
    )
