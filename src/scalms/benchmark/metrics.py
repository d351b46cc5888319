"""Accuracy metrics of a model against reference data: arrays in, small records out.

Units: energies in eV (per atom where the name says so), forces in eV/Å. Forces are compared
over every Cartesian component (the usual "force MAE") and over per-atom magnitudes; energies
per atom, raw and after removing a fitted per-element offset (two codes' total energies differ by
an offset per element that says nothing about the model: a CP2K energy with GTH
pseudopotentials and a model trained on VASP PBE energies are thousands of eV apart).

No file I/O and no plotting here: :mod:`scalms.benchmark.accuracy` feeds these functions from
the benchmark file and writes their results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols


@dataclass(frozen=True)
class ErrorStats:
    """Errors of ``predicted - reference`` over ``n`` values, in the unit of the data.

    ``r2`` is the coefficient of determination of the predictions against the reference
    (1 - residual sum of squares / total sum of squares about the reference mean); NaN when the
    reference has no spread or there is no data.
    """

    n: int
    mae: float
    rmse: float
    max_abs: float
    mean: float
    """Mean signed error (bias)."""
    r2: float


def error_stats(reference: np.ndarray, predicted: np.ndarray) -> ErrorStats:
    """Error statistics of ``predicted`` against ``reference`` (any shape, compared elementwise)."""
    reference = np.asarray(reference, dtype=float).ravel()
    predicted = np.asarray(predicted, dtype=float).ravel()
    if reference.shape != predicted.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, predicted {predicted.shape}")
    n = reference.size
    if n == 0:
        nan = float("nan")
        return ErrorStats(0, nan, nan, nan, nan, nan)
    error = predicted - reference
    total = float(np.sum((reference - reference.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan")
    return ErrorStats(
        n=n,
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error**2))),
        max_abs=float(np.max(np.abs(error))),
        mean=float(np.mean(error)),
        r2=r2,
    )


@dataclass(frozen=True)
class ForceErrors:
    """Force errors of a set of atoms, eV/Å.

    ``components``: over every Cartesian component. ``magnitudes``: of the per-atom force
    magnitudes |F|. ``atom_mean`` and ``atom_max``: mean and largest length of the per-atom
    error vector |F_pred - F_ref|.
    """

    components: ErrorStats
    magnitudes: ErrorStats
    atom_mean: float
    atom_max: float


def force_errors(reference: np.ndarray, predicted: np.ndarray) -> ForceErrors:
    """Errors of ``predicted`` forces (N, 3) against ``reference`` forces (N, 3)."""
    reference = np.asarray(reference, dtype=float).reshape(-1, 3)
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    per_atom = np.linalg.norm(predicted - reference, axis=1)
    return ForceErrors(
        components=error_stats(reference, predicted),
        magnitudes=error_stats(
            np.linalg.norm(reference, axis=1), np.linalg.norm(predicted, axis=1)
        ),
        atom_mean=float(per_atom.mean()) if per_atom.size else float("nan"),
        atom_max=float(per_atom.max()) if per_atom.size else float("nan"),
    )


def composition_matrix(numbers: np.ndarray, n_atoms: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Atoms of each element per frame, (n_frames, n_elements), and the elements' symbols.

    ``numbers`` are the atomic numbers of all frames concatenated; ``n_atoms`` the atoms per frame.
    """
    numbers = np.asarray(numbers, dtype=int)
    n_atoms = np.asarray(n_atoms, dtype=int)
    elements = np.unique(numbers)
    frame_of_atom = np.repeat(np.arange(len(n_atoms)), n_atoms)
    counts = np.zeros((len(n_atoms), len(elements)))
    np.add.at(counts, (frame_of_atom, np.searchsorted(elements, numbers)), 1.0)
    return counts, [chemical_symbols[z] for z in elements]


def element_offsets(
    reference_energy: np.ndarray, predicted_energy: np.ndarray, composition: np.ndarray
) -> np.ndarray:
    """Per-element energy offsets μ (eV per atom of each element) that best explain
    ``predicted - reference`` as Σ_el n_el μ_el over the frames (least squares; the minimum-norm
    solution when compositions cannot tell the elements apart)."""
    difference = np.asarray(predicted_energy, float) - np.asarray(reference_energy, float)
    if difference.size == 0:
        return np.zeros(composition.shape[1])
    offsets, *_ = np.linalg.lstsq(composition, difference, rcond=None)
    return offsets


def composition_baseline(
    reference_energy: np.ndarray, numbers: np.ndarray, n_atoms: np.ndarray
) -> np.ndarray:
    """The reference energies' own least-squares fit per element, Σ_el n_el ε_el (eV per frame).

    What is left of an energy after it, (E - baseline) / n, is what a composition does not
    explain; comparing that, rather than total energies thousands of eV apart between
    compositions, gives an R² that says something.
    """
    composition, _ = composition_matrix(numbers, np.asarray(n_atoms, dtype=int))
    reference = np.asarray(reference_energy, dtype=float)
    if reference.size == 0:
        return reference
    per_element, *_ = np.linalg.lstsq(composition, reference, rcond=None)
    return composition @ per_element


@dataclass(frozen=True)
class EnergyErrors:
    """Energy errors per atom, eV/atom: as computed, and after the fitted per-element offsets
    ``offsets_eV`` (element -> eV per atom of it) are taken from the predictions. The aligned
    statistics compare energies relative to :func:`composition_baseline`, which leaves the
    errors as they are and makes R² measure what the composition does not explain."""

    per_atom: ErrorStats
    aligned_per_atom: ErrorStats
    offsets_eV: dict[str, float]


def energy_errors(
    reference_energy: np.ndarray,
    predicted_energy: np.ndarray,
    numbers: np.ndarray,
    n_atoms: np.ndarray,
) -> EnergyErrors:
    """Errors of frame energies (eV) with the frames' atomic numbers (concatenated) and sizes."""
    n_atoms = np.asarray(n_atoms, dtype=float)
    reference = np.asarray(reference_energy, dtype=float)
    predicted = np.asarray(predicted_energy, dtype=float)
    composition, symbols = composition_matrix(numbers, n_atoms.astype(int))
    offsets = element_offsets(reference, predicted, composition)
    aligned = predicted - composition @ offsets
    baseline = composition_baseline(reference, numbers, n_atoms)
    return EnergyErrors(
        per_atom=error_stats(reference / n_atoms, predicted / n_atoms),
        aligned_per_atom=error_stats(
            (reference - baseline) / n_atoms, (aligned - baseline) / n_atoms
        ),
        offsets_eV={s: float(o) for s, o in zip(symbols, offsets, strict=True)},
    )


def aligned_energies(
    reference_energy: np.ndarray,
    predicted_energy: np.ndarray,
    numbers: np.ndarray,
    n_atoms: np.ndarray,
) -> np.ndarray:
    """``predicted_energy`` (eV) less its fitted per-element offsets to the reference."""
    composition, _ = composition_matrix(numbers, np.asarray(n_atoms, dtype=int))
    offsets = element_offsets(reference_energy, predicted_energy, composition)
    return np.asarray(predicted_energy, dtype=float) - composition @ offsets


@dataclass(frozen=True)
class ModelMetrics:
    """Everything the accuracy benchmark reports for one model."""

    model: str
    n_frames: int
    n_atoms: int
    energy: EnergyErrors
    forces: ForceErrors
    forces_by_element: dict[str, ForceErrors]


def model_metrics(
    model: str,
    numbers: np.ndarray,
    n_atoms: np.ndarray,
    reference_energy: np.ndarray,
    predicted_energy: np.ndarray,
    reference_forces: np.ndarray,
    predicted_forces: np.ndarray,
) -> ModelMetrics:
    """All metrics of one model over frames concatenated as in the benchmark file.

    ``numbers`` (N,) and forces (N, 3) run over the atoms of every frame; energies (F,) and
    ``n_atoms`` (F,) over frames.
    """
    numbers = np.asarray(numbers, dtype=int)
    reference_forces = np.asarray(reference_forces, dtype=float).reshape(-1, 3)
    predicted_forces = np.asarray(predicted_forces, dtype=float).reshape(-1, 3)
    by_element = {
        chemical_symbols[z]: force_errors(
            reference_forces[numbers == z], predicted_forces[numbers == z]
        )
        for z in np.unique(numbers)
    }
    return ModelMetrics(
        model=model,
        n_frames=len(n_atoms),
        n_atoms=int(np.sum(n_atoms)),
        energy=energy_errors(reference_energy, predicted_energy, numbers, n_atoms),
        forces=force_errors(reference_forces, predicted_forces),
        forces_by_element=by_element,
    )


def _force_columns(errors: ForceErrors) -> dict[str, float]:
    c, m = errors.components, errors.magnitudes
    return {
        "force_mae_eV_per_A": c.mae,
        "force_rmse_eV_per_A": c.rmse,
        "force_r2": c.r2,
        "force_max_error_eV_per_A": c.max_abs,
        "force_magnitude_mae_eV_per_A": m.mae,
        "force_magnitude_rmse_eV_per_A": m.rmse,
        "force_magnitude_r2": m.r2,
        "force_magnitude_max_error_eV_per_A": m.max_abs,
        "force_vector_error_mean_eV_per_A": errors.atom_mean,
        "force_vector_error_max_eV_per_A": errors.atom_max,
    }


def metrics_row(metrics: ModelMetrics) -> dict[str, object]:
    """One flat row (column -> value) of a model's metrics, names with their units."""
    e, a = metrics.energy.per_atom, metrics.energy.aligned_per_atom
    return {
        "model": metrics.model,
        "n_frames": metrics.n_frames,
        "n_atoms": metrics.n_atoms,
        "energy_mae_eV_per_atom": e.mae,
        "energy_rmse_eV_per_atom": e.rmse,
        "energy_max_error_eV_per_atom": e.max_abs,
        "energy_r2": e.r2,
        "energy_aligned_mae_eV_per_atom": a.mae,
        "energy_aligned_rmse_eV_per_atom": a.rmse,
        "energy_aligned_max_error_eV_per_atom": a.max_abs,
        "energy_aligned_r2": a.r2,
        **_force_columns(metrics.forces),
    }


def element_rows(metrics: ModelMetrics) -> list[dict[str, object]]:
    """One row per element of the model's force errors."""
    return [
        {"model": metrics.model, "element": symbol, "n_atoms": errors.components.n // 3}
        | _force_columns(errors)
        for symbol, errors in metrics.forces_by_element.items()
    ]


@dataclass(frozen=True)
class NetForceCheck:
    """The reference's own net force per frame (eV/Å): |Σ_i F_i|, which is zero for forces
    that are the gradient of a translation-invariant energy. Frames above ``threshold`` are
    ``flagged``: data that breaks this spoils a benchmark (thesis Appendix B)."""

    magnitude_eV_per_A: np.ndarray
    per_atom_eV_per_A: np.ndarray
    threshold_eV_per_A: float
    flagged: np.ndarray


def net_forces(forces: np.ndarray, n_atoms: np.ndarray) -> np.ndarray:
    """Sum of the forces of each frame, (n_frames, 3), from forces (N, 3) concatenated."""
    forces = np.asarray(forces, dtype=float).reshape(-1, 3)
    n_atoms = np.asarray(n_atoms, dtype=int)
    frame_of_atom = np.repeat(np.arange(len(n_atoms)), n_atoms)
    total = np.zeros((len(n_atoms), 3))
    np.add.at(total, frame_of_atom, forces)
    return total


def net_force_check(
    forces: np.ndarray, n_atoms: np.ndarray, threshold_eV_per_A: float
) -> NetForceCheck:
    """Net force magnitude per frame, per atom, and the frames above ``threshold_eV_per_A``."""
    magnitude = np.linalg.norm(net_forces(forces, n_atoms), axis=1)
    return NetForceCheck(
        magnitude_eV_per_A=magnitude,
        per_atom_eV_per_A=magnitude / np.asarray(n_atoms, dtype=float),
        threshold_eV_per_A=float(threshold_eV_per_A),
        flagged=magnitude > threshold_eV_per_A,
    )


@dataclass(frozen=True)
class Committee:
    """Mean and spread of several models' predictions of the same frames.

    ``force_spread_eV_per_A`` per atom is the root-mean-square distance of the members' force
    vectors from their mean, sqrt(mean_m |F_m - F_mean|²); ``energy_spread_eV_per_atom`` per
    frame is the standard deviation of the members' energies per atom.
    """

    models: tuple[str, ...]
    mean_forces: np.ndarray
    force_spread_eV_per_A: np.ndarray
    mean_energy: np.ndarray
    energy_spread_eV_per_atom: np.ndarray


def committee_of(
    models: Sequence[str],
    forces: Sequence[np.ndarray],
    energies: Sequence[np.ndarray],
    n_atoms: np.ndarray,
) -> Committee:
    """Committee of ``models`` from each member's forces (N, 3) and energies (F,), in eV and eV/Å.

    Energies should already share a reference (see :func:`aligned_energies`): members trained on
    different data differ by per-element offsets that are not uncertainty.
    """
    if len(models) < 2:
        raise ValueError("a committee needs at least two models")
    stacked = np.stack([np.asarray(f, dtype=float).reshape(-1, 3) for f in forces])
    # mean_m |F_m - F_mean|² written over pairs, (1 / 2M²) Σ_mn |F_m - F_n|²: the same number,
    # without the rounding of the mean, so identical members give exactly zero.
    n_models = len(stacked)
    squared = np.zeros(stacked.shape[1])
    for m in range(n_models):
        for n in range(m + 1, n_models):
            squared += np.sum((stacked[m] - stacked[n]) ** 2, axis=1)
    spread = np.sqrt(squared / n_models**2)
    mean = stacked.mean(axis=0)
    per_atom = np.stack([np.asarray(e, dtype=float) for e in energies]) / np.asarray(n_atoms)
    return Committee(
        models=tuple(models),
        mean_forces=mean,
        force_spread_eV_per_A=spread,
        mean_energy=np.mean(np.stack(energies), axis=0),
        energy_spread_eV_per_atom=per_atom.std(axis=0),
    )


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (as Spearman's coefficient needs)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    result = np.empty(len(values))
    result[order] = np.repeat(mean_rank, counts)
    return result


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either has no spread or fewer than two values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class SpreadErrorRelation:
    """How a committee's spread tracks its error: correlations, and the mean error in bins of
    spread holding equal numbers of samples (eV/Å for forces)."""

    n: int
    pearson: float
    spearman: float
    bin_spread: np.ndarray
    """Mean spread in each bin."""
    bin_error: np.ndarray
    """Mean error in each bin."""
    bin_count: np.ndarray


def spread_vs_error(spread: np.ndarray, error: np.ndarray, n_bins: int = 10) -> SpreadErrorRelation:
    """Correlate ``spread`` with ``error`` (same length); ``n_bins`` equal-count bins of spread."""
    spread = np.asarray(spread, dtype=float).ravel()
    error = np.asarray(error, dtype=float).ravel()
    order = np.argsort(spread, kind="mergesort")
    chunks = [c for c in np.array_split(order, min(n_bins, max(len(order), 1))) if c.size]
    return SpreadErrorRelation(
        n=spread.size,
        pearson=pearson(spread, error),
        spearman=pearson(ranks(spread), ranks(error)) if spread.size else float("nan"),
        bin_spread=np.array([spread[c].mean() for c in chunks]),
        bin_error=np.array([error[c].mean() for c in chunks]),
        bin_count=np.array([c.size for c in chunks]),
    )
