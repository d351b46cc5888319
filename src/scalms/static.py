"""Static evaluation: energy, forces and stress of many frames with one model.

Two backends compute the same numbers:
- TorchSim: frames are packed into batches by ``torch_sim.autobatching.BinningAutoBatcher``
  (by atom count, so a batch fits the memory) and evaluated with ``torch_sim.static``.
- ASE: one frame after another through the model's ASE calculator.

Arrays in, arrays out: no file I/O here. Runs inside a model's environment (it imports torch and
torch_sim lazily, in the TorchSim path only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

Progress = Callable[[int], None]
"""Called with the number of frames just finished."""

DEFAULT_CPU_BATCH_ATOMS = 2000
"""Atoms per TorchSim batch on a CPU, where memory estimation is not possible."""


@dataclass
class StaticResult:
    """Results for a list of frames, in their order. Energies in eV, forces in eV/Å,
    stress in eV/Å³ as ASE's Voigt 6-vector (NaN for frames that are not fully periodic)."""

    energy: np.ndarray
    forces: list[np.ndarray]
    stress: np.ndarray

    @classmethod
    def empty(cls, n_frames: int) -> StaticResult:
        return cls(
            energy=np.full(n_frames, np.nan),
            forces=[np.empty((0, 3))] * n_frames,
            stress=np.full((n_frames, 6), np.nan),
        )


def is_periodic(atoms: Atoms) -> bool:
    return bool(np.all(atoms.pbc))


def evaluate_ase(frames: list[Atoms], calculator, progress: Progress | None = None) -> StaticResult:
    """Evaluate ``frames`` one by one with an ASE ``calculator``."""
    result = StaticResult.empty(len(frames))
    for i, frame in enumerate(frames):
        atoms = frame.copy()
        atoms.calc = calculator
        result.energy[i] = atoms.get_potential_energy()
        result.forces[i] = np.asarray(atoms.get_forces(), dtype=float)
        if is_periodic(atoms):
            result.stress[i] = atoms.get_stress(voigt=True)
        if progress:
            progress(1)
    return result


def torchsim_batcher(model, device: str, max_batch_atoms: int | None = None):
    """A ``BinningAutoBatcher`` that packs frames by atom count.

    On a GPU, TorchSim measures how many atoms fit (``max_batch_atoms=None``); on a CPU it
    cannot estimate memory, so the batch size is ``max_batch_atoms`` or a fixed default.
    """
    from torch_sim.autobatching import BinningAutoBatcher

    if max_batch_atoms is None and device.startswith("cuda"):
        # A margin below the measured limit: estimates that fill the GPU exactly run out of
        # memory once the neighbour lists of a denser batch arrive.
        return BinningAutoBatcher(model, memory_scales_with="n_atoms", max_memory_padding=0.8)
    return BinningAutoBatcher(
        model,
        memory_scales_with="n_atoms",
        max_memory_scaler=float(max_batch_atoms or DEFAULT_CPU_BATCH_ATOMS),
    )


def evaluate_torchsim(
    frames: list[Atoms],
    model,
    device: str,
    max_batch_atoms: int | None = None,
    progress: Progress | None = None,
) -> StaticResult:
    """Evaluate ``frames`` in batches with a TorchSim ``model``."""
    import torch
    import torch_sim as ts

    result = StaticResult.empty(len(frames))
    # A TorchSim state holds systems of one periodicity only: batch each kind apart.
    by_pbc: dict[tuple[bool, ...], list[int]] = {}
    for index, atoms in enumerate(frames):
        by_pbc.setdefault(tuple(bool(p) for p in atoms.pbc), []).append(index)
    for group in by_pbc.values():
        state = ts.initialize_state(
            [frames[i] for i in group], device=torch.device(device), dtype=model.dtype
        )
        batcher = torchsim_batcher(model, device, max_batch_atoms)
        batcher.load_states(state)
        for sub_state, indices in batcher:
            outputs = ts.static(sub_state, model)
            for position, output in zip(indices, outputs, strict=True):
                index = group[position]
                result.energy[index] = float(output["potential_energy"].reshape(-1)[0])
                result.forces[index] = output["forces"].detach().cpu().double().numpy()
                if "stress" in output and is_periodic(frames[index]):
                    stress = output["stress"].detach().cpu().double().numpy().reshape(3, 3)
                    result.stress[index] = full_3x3_to_voigt_6_stress(stress)
            if progress:
                progress(len(indices))
    return result
