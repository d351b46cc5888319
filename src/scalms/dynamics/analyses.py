"""The analyses of an MD run, from its results file to records, figures and tables on disk.

The physics is in ``scalms.analysis`` (pure functions) and the drawing in ``scalms.plots``; this
module chooses what to run for each (model, structure), stores each record as JSON, and writes
``index.json`` listing the figures and tables the report shows. A run that cannot take an
analysis (no atom of the element, no forces saved) gets a note; the others go on.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalms.errors import ScalmsError

if TYPE_CHECKING:
    from scalms.io.foreign import FrameTiming

MSD_METHODS = ("fft", "direct")
PDF_MODES = ("shell", "pair-fraction")


@dataclass(frozen=True)
class AnalysisRequest:
    """Which analyses to run and how; the defaults follow the thesis (n = 5, 1 ps lag)."""

    pdf: bool = False
    partial_pdf: tuple[str, ...] = ()
    trace: str | None = None
    surface_elements: tuple[str, ...] = ()
    surface_atoms: int = 5
    net_force: bool = False
    diffusion: tuple[str, ...] = ()  # elements or "all": one MSD record per selection
    msd_method: str = "fft"
    msd_max_lag_fs: float = 1000.0
    msd_origin_stride: int = 2
    msd_fit_fs: tuple[float, float] | None = None
    msd_remove_drift: bool = True  # subtract the centre of mass's displacement (all atoms)
    pdf_r_max_A: float = 10.0
    pdf_bins: int = 200
    pdf_mode: str = "shell"
    pdf_precision: str | None = None  # distances in float64 or float32; None: float64 on a CPU
    final_fraction: float = 0.5
    thermo: bool = True
    device: str = "cpu"  # torch device for the heavy analyses (PDF, MSD, trace)

    def __post_init__(self) -> None:
        from scalms.analysis import parse_pair
        from scalms.analysis._common import ALL_ATOMS, element_number
        from scalms.analysis.pdf import PRECISIONS

        problems = []
        for pair in self.partial_pdf:
            try:
                parse_pair(pair)
            except ValueError as err:
                problems.append(str(err))
        if self.trace is not None:
            try:
                element_number(self.trace)
            except ValueError as err:
                problems.append(f"--trace: {err}")
        for selection in self.diffusion:
            if selection != ALL_ATOMS:
                try:
                    element_number(selection)
                except ValueError as err:
                    problems.append(f"--diffusion: {err} (or '{ALL_ATOMS}' for every atom)")
        if len(set(self.diffusion)) != len(self.diffusion):
            problems.append(f"--diffusion names a selection twice: {', '.join(self.diffusion)}")
        for element in self.surface_elements:
            try:
                element_number(element)
            except ValueError as err:
                problems.append(f"--surface-element: {err}")
        if self.msd_method not in MSD_METHODS:
            problems.append(f"unknown MSD method '{self.msd_method}'; use fft or direct")
        if self.pdf_mode not in PDF_MODES:
            problems.append(f"unknown PDF mode '{self.pdf_mode}'; use one of {PDF_MODES}")
        if self.pdf_precision not in (None, *PRECISIONS):
            problems.append(f"unknown PDF precision '{self.pdf_precision}': use {PRECISIONS}")
        if self.surface_atoms < 1:
            problems.append("--surface-atoms must be at least 1")
        if not 0 < self.final_fraction <= 1:
            problems.append("the final fraction must be in (0, 1]")
        if self.msd_fit_fs is not None and not 0 <= self.msd_fit_fs[0] < self.msd_fit_fs[1]:
            problems.append(f"the MSD fit window {self.msd_fit_fs} fs must be 0 <= start < end")
        if problems:
            raise ScalmsError("; ".join(problems))

    @classmethod
    def from_options(cls, **options: Any) -> AnalysisRequest:
        """From CLI options, where lists may be None."""
        for name in ("partial_pdf", "surface_elements", "diffusion"):
            value = options.get(name) or ()
            # one element as a plain string: what requests saved before selections were lists
            options[name] = (value,) if isinstance(value, str) else tuple(value)
        if options.get("msd_fit_fs") is not None:
            options["msd_fit_fs"] = tuple(options["msd_fit_fs"])
        return cls(**options)

    def any(self) -> bool:
        return bool(self.pdf or self.partial_pdf or self.trace or self.net_force or self.diffusion)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisRequest:
        known = {f.name for f in fields(cls)}
        return cls.from_options(**{k: v for k, v in data.items() if k in known})


@dataclass
class AnalysisOutput:
    """What was written: figures and tables for the report, and notes on what was skipped."""

    figures: list[dict[str, str]] = field(default_factory=list)  # caption, png, html
    tables: list[dict[str, Any]] = field(default_factory=list)  # caption, header, rows
    notes: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        path = folder / "index.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> AnalysisOutput:
        path = folder / "index.json"
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))


def run_analyses(
    results: Path | list[Path],
    request: AnalysisRequest,
    out_dir: Path,
    *,
    plot: bool = True,
    models: list[str] | None = None,
    structures: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    timing: FrameTiming | None = None,
) -> AnalysisOutput:
    """Run ``request`` on every run of ``results`` (results or trajectory files).

    Runs of several files pool into the summaries (the trace summary across sizes, the table of
    diffusion coefficients), which is how runs of separate working dirs are compared. Trajectory
    files of other codes (any format ASE reads) are read whole, their time between frames from
    the file or ``timing``. Every input is opened, and the selection checked, before anything is
    written.
    """
    from scalms import analysis
    from scalms.devices import check_device, check_gpu, gpu_visible
    from scalms.io.analysis_files import save_record
    from scalms.io.results import open_runs

    check_device(request.device)
    check_gpu(request.device)
    if request.device == "auto":
        request = replace(request, device="cuda" if gpu_visible() else "cpu")
    paths = [Path(results)] if isinstance(results, str | Path) else [Path(p) for p in results]
    timed = [name for name, wanted in _TIMED if getattr(request, wanted)]
    run_sets = [
        open_runs(path, timing, need_time=" and ".join(timed) if timed else None) for path in paths
    ]
    if not any(_picked(run, models, structures) for runs in run_sets for run in runs):
        known = ", ".join(f"{r.model}/{r.structure}" for runs in run_sets for r in runs)
        raise ScalmsError(
            f"no run matches models {models or 'any'}, structures {structures or 'any'} "
            f"(runs: {known})"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "plotly.min.js"  # one copy of plotly.js serves every page of the tree
    output = AnalysisOutput()
    traces, diffusion_rows, net_forces = [], [], {}
    pdf_kwargs = {
        "r_max_A": request.pdf_r_max_A,
        "n_bins": request.pdf_bins,
        "mode": request.pdf_mode,
        "device": request.device,
        "precision": request.pdf_precision,
    }
    for ref, trajectory in _selected(paths, run_sets, models, structures):
        run_dir = out_dir / ref[0] / ref[1]
        name = f"{ref[0]} / {ref[1]}"
        if progress:
            progress(name)

        def attempt(what: str, compute: Callable[[], Any], name=name):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                try:
                    result = compute()
                except (ValueError, ScalmsError) as err:
                    output.notes.append(f"{name}: {what} skipped: {err}")
                    return None
            # Analyses warn when they had to adapt a request (a lag clipped to the run's length).
            output.notes.extend(
                f"{name}: {what}: {w.message}"
                for w in caught
                if issubclass(w.category, UserWarning)
            )
            return result

        if trajectory.n_frames < 2:
            output.notes.append(f"{name}: {trajectory.n_frames} frame(s), nothing to analyse")
            continue
        pdfs = []
        if request.pdf:
            pdfs.append(attempt("PDF", lambda t=trajectory: analysis.pdf_of(t, **pdf_kwargs)))
        for pair in request.partial_pdf:
            pdfs.append(
                attempt(
                    f"partial PDF {pair}",
                    lambda t=trajectory, p=pair: analysis.pdf_of(t, p, **pdf_kwargs),
                )
            )
        pdfs = [p for p in pdfs if p is not None]
        for pdf in pdfs:
            save_record(pdf, run_dir / f"pdf_{pdf.label}.json")
        if pdfs and plot:
            from scalms.plots.pdf import save_pair_distribution

            files = save_pair_distribution(run_dir / "pdf", pdfs, title=f"PDF: {name}", plotlyjs=js)
            _figure(output, out_dir, f"Pair distribution functions, {name}", files)
        if request.trace:
            trace = attempt(
                f"trace of {request.trace}",
                lambda t=trajectory: analysis.trace_of(
                    t,
                    request.trace,
                    n_surface=request.surface_atoms,
                    surface_elements=request.surface_elements,
                    device=request.device,
                ),
            )
            if trace is not None:
                save_record(trace, run_dir / f"trace_{trace.symbol}.json")
                traces.append((ref[0], trace))
                if plot:
                    from scalms.plots.trace import save_solute_trace

                    files = save_solute_trace(
                        run_dir / f"trace_{trace.symbol}",
                        trace,
                        final_fraction=request.final_fraction,
                        title=f"{trace.symbol} trace: {name}",
                        plotlyjs=js,
                    )
                    _figure(output, out_dir, f"{trace.symbol} trace, {name}", files)
        for selection in request.diffusion:
            msd = attempt(
                f"diffusion of {selection}",
                lambda t=trajectory, selection=selection: analysis.msd_of(
                    t,
                    selection,
                    remove_drift=request.msd_remove_drift,
                    method=request.msd_method,
                    max_lag_fs=request.msd_max_lag_fs,
                    origin_stride=request.msd_origin_stride,
                    fit_start_fs=request.msd_fit_fs[0] if request.msd_fit_fs else None,
                    fit_end_fs=request.msd_fit_fs[1] if request.msd_fit_fs else None,
                    device=request.device,
                ),
            )
            if msd is not None:
                save_record(msd, run_dir / f"msd_{msd.symbol}.json")
                diffusion_rows.append((ref, trajectory.n_atoms, msd))
                if plot:
                    from scalms.plots.diffusion import save_msd

                    files = save_msd(
                        run_dir / f"msd_{msd.symbol}",
                        msd,
                        title=f"{msd.symbol} MSD: {name}",
                        plotlyjs=js,
                    )
                    _figure(
                        output, out_dir, f"{msd.symbol} mean squared displacement, {name}", files
                    )
        if request.net_force:
            force = attempt("net force", lambda t=trajectory: analysis.net_force_of(t))
            if force is not None:
                save_record(force, run_dir / "net_force.json")
                net_forces.setdefault(ref[0], {})[ref[1]] = force
        if request.thermo and plot:
            from scalms.plots.thermo import save_thermo

            files = attempt(
                "energy plot",
                lambda t=trajectory, d=run_dir, n=name: save_thermo(
                    d / "thermo", t, title=f"Energies: {n}", plotlyjs=js
                ),
            )
            if files is not None:
                _figure(output, out_dir, f"Energy and temperature, {name}", files)
    if plot:
        _summary_figures(output, out_dir, request, traces, net_forces, js)
    if diffusion_rows:
        _diffusion_tables(output, out_dir, diffusion_rows)
    output.save(out_dir)
    return output


_TIMED = (("the MSD", "diffusion"), ("the trace", "trace"), ("the net force", "net_force"))
"""Analyses whose records run against time, so that need the time between frames."""


def _picked(run, models, structures) -> bool:
    return (not models or run.model in models) and (not structures or run.structure in structures)


def _selected(paths, run_sets, models, structures):
    """(model, structure) and trajectory of each chosen run, read one at a time."""
    seen = set()
    for path, runs in zip(paths, run_sets, strict=True):
        for run in runs:
            if not _picked(run, models, structures):
                continue
            ref = (run.model, run.structure)
            if ref in seen:  # the same model and structure in two files: keep both apart
                ref = (run.model, f"{path.stem}_{run.structure}")
            seen.add(ref)
            yield ref, runs.read(run)


def _figure(output: AnalysisOutput, out_dir: Path, caption: str, files) -> None:
    output.figures.append(
        {
            "caption": caption,
            "png": str(Path(files.png).relative_to(out_dir)),
            "html": str(Path(files.html).relative_to(out_dir)),
        }
    )


def _summary_figures(output, out_dir, request, traces, net_forces, js) -> None:
    from scalms.plots.net_force import save_net_force
    from scalms.plots.trace import save_trace_summary

    for model in sorted({model for model, _ in traces}):
        mine = [trace for m, trace in traces if m == model]
        files = save_trace_summary(
            out_dir / model / "trace_summary",
            mine,
            final_fraction=request.final_fraction,
            title=f"Solute traces across sizes: {model}",
            plotlyjs=js,
        )
        _figure(output, out_dir, f"Solute trace summary, {model}", files)
    for model, forces in net_forces.items():
        files = save_net_force(
            out_dir / model / "net_force", forces, title=f"Net force: {model}", plotlyjs=js
        )
        _figure(output, out_dir, f"Net force per frame, {model}", files)


def _diffusion_tables(output, out_dir, rows) -> None:
    """One CSV of every fit, and the thesis's table (solute x size) per model for the report."""
    from scalms.plots.diffusion import diffusion_table

    header = [
        "model",
        "structure",
        "n_atoms",
        "element",
        "n_traced",
        "method",
        "centre_of_mass_drift",
        "D_cm2_per_s",
        "r2",
        "fit_start_fs",
        "fit_end_fs",
    ]
    table_rows = []
    with open(out_dir / "diffusion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for (model, structure), n_atoms, msd in rows:
            fit = msd.fit
            row = [
                model,
                structure,
                n_atoms,
                msd.symbol,
                len(msd.indices),
                msd.method,
                "removed" if msd.drift_removed else "kept",
                f"{fit.D_cm2_per_s:.6e}",
                f"{fit.r2:.4f}",
                f"{fit.fit_start_fs:g}",
                f"{fit.fit_end_fs:g}",
            ]
            writer.writerow(row)
            table_rows.append(row)
    output.tables.append(
        {
            "caption": "Diffusion coefficients (fit of the atom-averaged MSD)",
            "header": header,
            "rows": table_rows,
        }
    )
    for model in sorted({ref[0] for ref, _, _ in rows}):
        # Replicas of one solute and size (several structures) are averaged, as in a table of
        # the thesis's kind there is one cell per solute and size.
        pooled: dict[tuple[str, int], list[float]] = {}
        for ref, n, msd in rows:
            if ref[0] == model:
                pooled.setdefault((msd.symbol, n), []).append(msd.fit.D_cm2_per_s)
        values = {key: sum(v) / len(v) for key, v in pooled.items()}
        table = diffusion_table(values, caption=f"Diffusion coefficients, 10⁻⁶ cm²/s: {model}")
        output.tables.append(
            {"caption": table.caption, "header": list(table.header), "rows": list(table.rows)}
        )
