"""What the accuracy figures show, computed from the flat table: arrays in, records out.

For each model: every force component of reference and model, and the energies per atom after
the model's per-element offsets are refitted (:func:`scalms.benchmark.metrics.aligned_energies`),
both relative to the reference's own per-element fit (so the axes show what a composition does
not explain); each with the statistics of the raw data. :mod:`scalms.plots.benchmark_accuracy`
draws these records and computes nothing of its own beyond binning for display.

Units: forces in eV/Å, energies in eV per atom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalms.benchmark.metrics import (
    ErrorStats,
    aligned_energies,
    composition_baseline,
    error_stats,
)
from scalms.io.benchmark_accuracy import FlatTable


@dataclass(frozen=True)
class Parity:
    """One quantity of one model against the reference, and the statistics of these values."""

    reference: np.ndarray
    predicted: np.ndarray
    stats: ErrorStats


@dataclass(frozen=True)
class ModelParity:
    """What a model's parity figures draw.

    ``numbers`` (N,) are the atomic numbers of every frame's atoms, concatenated; ``forces``
    holds (N, 3) arrays in eV/Å; ``energy`` (F,) arrays in eV/atom, the model's with its fitted
    per-element offsets removed, both less the reference's per-element fit.
    """

    model: str
    numbers: np.ndarray
    forces: Parity
    energy: Parity

    @property
    def force_component_errors(self) -> np.ndarray:
        """Model minus reference, every force component (eV/Å), flattened."""
        return (self.forces.predicted - self.forces.reference).ravel()


def model_parity(table: FlatTable, model: str) -> ModelParity:
    """The parity record of ``model`` in ``table``."""
    atoms0, frames0 = table.model_rows(table.models[0])  # the reference is the same for all
    numbers = table.atoms["number"][atoms0]
    n_atoms = table.frames["n_atoms"][frames0]
    ref_energy = table.frames["ref_energy_eV"][frames0]
    _, frames = table.model_rows(model)
    predicted_energy = aligned_energies(
        ref_energy, table.frames["pred_energy_eV"][frames], numbers, n_atoms
    )
    baseline = composition_baseline(ref_energy, numbers, n_atoms)
    ref_forces, pred_forces = table.reference_forces(model), table.predicted_forces(model)
    x = (ref_energy - baseline) / n_atoms
    y = (predicted_energy - baseline) / n_atoms
    return ModelParity(
        model=model,
        numbers=np.asarray(numbers),
        forces=Parity(ref_forces, pred_forces, error_stats(ref_forces, pred_forces)),
        energy=Parity(x, y, error_stats(x, y)),
    )


def parities(table: FlatTable) -> list[ModelParity]:
    """The parity record of every model in ``table``, in its order."""
    return [model_parity(table, model) for model in table.models]
