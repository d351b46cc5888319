"""The accuracy benchmark: every model recomputes every reference frame; errors, plots, summary.

The parent's side of ``scalms benchmark accuracy``. Models run through the same path as
``scalms static`` (:func:`scalms.evaluate.run_static`: one child per model in its own
environment, TorchSim batches with ASE as the fallback); each model's predictions are copied into
the benchmark store as soon as its child finishes, so a failed or interrupted model leaves the
others' results. The analysis (:func:`analyse`) reads the store through the flat table, and can
run again on its own (``scalms benchmark analyze``).

Working directory::

    benchmark.h5               the store (scalms.io.benchmark_accuracy): reference + predictions
    benchmark_flat.h5          flat table made from it, made again when models change
    runs/static.h5             the latest ``scalms static`` results file; runs/static_runs/<model>/
                               holds each child's task, log and own result
    reference/                 copies of the reference files (--copy-reference)
    metrics.csv                one row per model (and the committee), units in the column names
    metrics_by_element.csv     force errors per model and element
    reference_net_force.csv    the reference's net force per frame, flagged above the threshold
    committee.json, committee_frames.csv   with --committee
    plots/                     figures (PNG + HTML); summary.html: every model on one page
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from scalms.benchmark.metrics import (
    ModelMetrics,
    NetForceCheck,
    SpreadErrorRelation,
    aligned_energies,
    committee_of,
    element_rows,
    metrics_row,
    model_metrics,
    net_force_check,
    spread_vs_error,
)
from scalms.benchmark.reference import read_reference
from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.files import WorkDirLock, atomic_path, atomic_write_json
from scalms.io.benchmark_accuracy import (
    FlatTable,
    add_model_from_static,
    flat_is_current,
    models_of,
    open_store,
    read_flat,
    same_reference,
    structures_of,
    write_flat,
    write_reference,
)
from scalms.workers.fanout import ModelOutcome, Reporter

STORE = "benchmark.h5"
FLAT = "benchmark_flat.h5"
DEFAULT_NET_FORCE_THRESHOLD = 0.1
"""eV/Å: a frame whose reference forces sum to more than this is flagged."""


@dataclass
class AccuracyRun:
    """What a benchmark run did: each model's outcome and which models were stored."""

    workdir: Path
    outcomes: list[ModelOutcome]
    stored: list[str]

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]


def run_accuracy(
    references: list[Path],
    entries: list[ModelEntry],
    workdir: Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    max_batch_atoms: int | None = None,
    timeout_s: float | None = None,
    copy_reference: bool = False,
    energy_key: str | None = None,
    forces_key: str | None = None,
    overwrite: bool = False,
    committee: list[str] | None = None,
    reporter: Reporter | None = None,
) -> AccuracyRun:
    """Evaluate every frame of ``references`` with each model and store the predictions.

    The reference files are checked first (every frame needs an energy and forces), and the
    ``committee`` to be analysed afterwards, so that no model runs for a request that would fail.
    A working directory keeps one reference set: running again with the same files adds models
    (or replaces a model's earlier results); other reference files need ``overwrite``. The
    working directory is locked for the run: a second command on it is refused.
    """
    from scalms.devices import check_device

    if backend not in ("auto", "torchsim", "ase"):
        raise ScalmsError(f"unknown backend '{backend}' for a benchmark; use auto, torchsim or ase")
    check_device(device)
    if not entries:
        raise ScalmsError("no models selected")
    check_committee(committee)
    structures = read_reference(references, energy_key, forces_key)
    workdir = Path(workdir)
    with WorkDirLock(workdir, "scalms benchmark accuracy"):
        return _run_locked(
            structures,
            entries,
            workdir,
            backend=backend,
            device=device,
            seed=seed,
            max_batch_atoms=max_batch_atoms,
            timeout_s=timeout_s,
            copy_reference=copy_reference,
            overwrite=overwrite,
            committee=committee,
            reporter=reporter,
        )


def check_committee(names: list[str] | None, available: list[str] | None = None) -> None:
    """Refuse a committee of fewer than two different models, or of models not ``available``
    (when given): both are known before any model runs."""
    if not names:
        return
    if len(set(names)) < 2:
        raise ScalmsError("a committee needs at least two different models (repeat --committee)")
    unknown = [n for n in dict.fromkeys(names) if available is not None and n not in available]
    if unknown:
        raise ScalmsError(
            f"committee model(s) {', '.join(unknown)} neither run now nor in this benchmark "
            f"(models: {', '.join(available or []) or 'none'}); run them first"
        )


def _run_locked(
    structures, entries, workdir, *, overwrite, copy_reference, committee, **run_options
) -> AccuracyRun:
    from scalms.evaluate import run_static

    store = workdir / STORE
    if overwrite:
        for path in (store, workdir / FLAT):
            path.unlink(missing_ok=True)
    if committee and store.is_file():
        with open_store(store, "r") as handle:
            check_committee(committee, [*models_of(handle), *(e.name for e in entries)])
    elif committee:
        check_committee(committee, [e.name for e in entries])
    with open_store(store) as handle:
        if structures_of(handle):
            why = same_reference(handle, structures)
            if why:
                raise ScalmsError(
                    f"{workdir} holds a benchmark of other reference data ({why}); "
                    "choose another --working-dir, or pass --overwrite to start again"
                )
        else:
            write_reference(handle, structures)
    if copy_reference:
        folder = workdir / "reference"
        folder.mkdir(exist_ok=True)
        for structure in structures:
            shutil.copy2(structure.source, folder / structure.source.name)
    static_out = workdir / "runs" / "static.h5"
    outcomes: list[ModelOutcome] = []
    try:
        outcomes = run_static(
            [s.source for s in structures],
            entries,
            static_out,
            overwrite=True,
            **run_options,
        ).outcomes
    finally:
        # Also after Ctrl-C or a crash: whatever models finished are kept.
        stored = _store_finished(store, static_out, [e.name for e in entries])
    return AccuracyRun(workdir, outcomes, stored)


def _store_finished(store: Path, static_out: Path, models: list[str]) -> list[str]:
    import h5py

    if not static_out.is_file():
        return []
    with h5py.File(static_out, "r") as source:
        finished = [m for m in models if m in source and source[m].attrs.get("complete", False)]
    with open_store(store) as handle:
        for model in finished:
            add_model_from_static(handle, static_out, model, model)
    return finished


@dataclass
class CommitteeResult:
    """A committee's own accuracy, and how its spread follows its error per atom and frame."""

    models: tuple[str, ...]
    metrics: ModelMetrics
    per_atom: SpreadErrorRelation
    per_frame: SpreadErrorRelation
    frame_rows: list[dict]
    spread_eV_per_A: np.ndarray
    error_eV_per_A: np.ndarray


@dataclass
class AccuracyReport:
    """Everything :func:`analyse` computed and where it wrote it."""

    workdir: Path
    table: FlatTable
    metrics: list[ModelMetrics]
    net_force: NetForceCheck
    net_force_rows: list[dict]
    committee: CommitteeResult | None
    flat_rebuilt: bool
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def flagged_frames(self) -> list[dict]:
        return [row for row in self.net_force_rows if row["flagged"]]


def _reference_rows(table: FlatTable) -> tuple[np.ndarray, np.ndarray]:
    """Atom and frame rows of the first model: the reference is the same under every model."""
    return table.model_rows(table.models[0])


def _committee(
    table: FlatTable, names: list[str], reference_numbers, n_atoms, ref_energy, ref_forces
) -> CommitteeResult:
    unknown = [n for n in names if n not in table.models]
    if unknown:
        raise ScalmsError(
            f"committee model(s) {', '.join(unknown)} not in this benchmark "
            f"(it holds {', '.join(table.models)}); run them first"
        )
    check_committee(names)
    names = list(dict.fromkeys(names))
    forces, energies = [], []
    for name in names:
        _, frames = table.model_rows(name)
        forces.append(table.predicted_forces(name))
        predicted = table.frames["pred_energy_eV"][frames]
        energies.append(aligned_energies(ref_energy, predicted, reference_numbers, n_atoms))
    committee = committee_of(names, forces, energies, n_atoms)
    label = f"committee({','.join(names)})"
    metrics = model_metrics(
        label,
        reference_numbers,
        n_atoms,
        ref_energy,
        committee.mean_energy,
        ref_forces,
        committee.mean_forces,
    )
    error = np.linalg.norm(committee.mean_forces - ref_forces, axis=1)
    spread = committee.force_spread_eV_per_A
    bounds = np.concatenate([[0], np.cumsum(n_atoms)])
    frame_spread = np.array([spread[a:b].max() for a, b in pairwise(bounds)])
    frame_error = np.array([error[a:b].max() for a, b in pairwise(bounds)])
    _, first = _reference_rows(table)
    energy_error = np.abs(committee.mean_energy - ref_energy) / n_atoms
    rows = [
        {
            "structure": table.structures[s],
            "frame": int(f),
            "n_atoms": int(n),
            "force_spread_max_eV_per_A": float(fs),
            "force_error_max_eV_per_A": float(fe),
            "energy_spread_eV_per_atom": float(es),
            "energy_error_eV_per_atom": float(ee),
        }
        for s, f, n, fs, fe, es, ee in zip(
            table.frames["structure"][first],
            table.frames["frame"][first],
            n_atoms,
            frame_spread,
            frame_error,
            committee.energy_spread_eV_per_atom,
            energy_error,
            strict=True,
        )
    ]
    return CommitteeResult(
        models=tuple(names),
        metrics=metrics,
        per_atom=spread_vs_error(spread, error),
        per_frame=spread_vs_error(frame_spread, frame_error),
        frame_rows=rows,
        spread_eV_per_A=spread,
        error_eV_per_A=error,
    )


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def _relation_json(relation: SpreadErrorRelation) -> dict:
    return {
        "n": relation.n,
        "pearson": relation.pearson,
        "spearman": relation.spearman,
        "bin_mean_spread_eV_per_A": relation.bin_spread.tolist(),
        "bin_mean_error_eV_per_A": relation.bin_error.tolist(),
        "bin_count": relation.bin_count.tolist(),
    }


def analyse(
    workdir: Path,
    *,
    committee: list[str] | None = None,
    net_force_threshold: float = DEFAULT_NET_FORCE_THRESHOLD,
    force_rewrite_flat: bool = False,
    plot: bool = True,
) -> AccuracyReport:
    """Metrics, net-force check, committee and plots of the benchmark in ``workdir``.

    The flat table is made again when models were added or re-run since it was written, or
    with ``force_rewrite_flat``; otherwise the cached one is read. The working directory is
    locked while its files are written.
    """
    check_committee(committee)
    workdir = Path(workdir)
    with WorkDirLock(workdir, "scalms benchmark analyze"):
        return _analyse_locked(workdir, committee, net_force_threshold, force_rewrite_flat, plot)


def _analyse_locked(
    workdir: Path,
    committee: list[str] | None,
    net_force_threshold: float,
    force_rewrite_flat: bool,
    plot: bool,
) -> AccuracyReport:
    store, flat = workdir / STORE, workdir / FLAT
    with open_store(store, "r") as handle:
        if not models_of(handle):
            raise ScalmsError(f"{store} holds no model results yet: no model finished")
    rebuilt = force_rewrite_flat or not flat_is_current(store, flat)
    table = write_flat(store, flat) if rebuilt else read_flat(flat)
    atoms0, frames0 = _reference_rows(table)
    numbers = table.atoms["number"][atoms0]
    n_atoms = table.frames["n_atoms"][frames0]
    ref_energy = table.frames["ref_energy_eV"][frames0]
    ref_forces = table.reference_forces(table.models[0])
    metrics = []
    for model in table.models:
        _, frames = table.model_rows(model)
        metrics.append(
            model_metrics(
                model,
                numbers,
                n_atoms,
                ref_energy,
                table.frames["pred_energy_eV"][frames],
                ref_forces,
                table.predicted_forces(model),
            )
        )
    net_force = net_force_check(ref_forces, n_atoms, net_force_threshold)
    net_rows = [
        {
            "structure": table.structures[s],
            "frame": int(f),
            "n_atoms": int(n),
            "net_force_eV_per_A": float(m),
            "net_force_per_atom_eV_per_A": float(p),
            "flagged": bool(flag),
        }
        for s, f, n, m, p, flag in zip(
            table.frames["structure"][frames0],
            table.frames["frame"][frames0],
            n_atoms,
            net_force.magnitude_eV_per_A,
            net_force.per_atom_eV_per_A,
            net_force.flagged,
            strict=True,
        )
    ]
    result = None
    if committee:
        result = _committee(table, committee, numbers, n_atoms, ref_energy, ref_forces)
    report = AccuracyReport(workdir, table, metrics, net_force, net_rows, result, rebuilt)
    rows = [metrics_row(m) for m in metrics]
    if result is not None:
        rows.append(metrics_row(result.metrics))
    report.files["metrics"] = _write_csv(workdir / "metrics.csv", rows)
    report.files["metrics_by_element"] = _write_csv(
        workdir / "metrics_by_element.csv", [r for m in metrics for r in element_rows(m)]
    )
    report.files["net_force"] = _write_csv(workdir / "reference_net_force.csv", net_rows)
    if result is not None:
        report.files["committee_frames"] = _write_csv(
            workdir / "committee_frames.csv", result.frame_rows
        )
        summary = {
            "models": list(result.models),
            "metrics": metrics_row(result.metrics),
            "spread_vs_error_per_atom": _relation_json(result.per_atom),
            "spread_vs_error_per_frame_max": _relation_json(result.per_frame),
        }
        report.files["committee"] = atomic_write_json(workdir / "committee.json", summary)
    from scalms.benchmark.report import accuracy_figures, write_summary

    if plot:
        report.files.update(accuracy_figures(report))
    report.files["summary"] = write_summary(report, workdir / "summary.html")
    return report
