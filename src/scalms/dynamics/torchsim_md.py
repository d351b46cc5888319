"""Batched MD with TorchSim: many structures of one model advance together, step by step.

The loop is ours and the integrators are TorchSim's (``torch_sim.integrators``: pure init/step
pairs), so frames go to each structure's trajectory file as they come and the whole batch state,
thermostat chains and random generator included, is checkpointed for an exact resume. Runs inside
a model's environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from ase import Atoms, units

from scalms.dynamics.settings import MDSettings
from scalms.errors import ScalmsError

StepProgress = Callable[[int], None]
"""Called with the number of (structure) steps just done."""


@dataclass
class BatchRun:
    """One structure in a batch: where its frames go."""

    label: str
    atoms: Atoms
    writer: object  # scalms.io.trajectory.TrajectoryWriter


def _integrator(settings: MDSettings, periodic: bool):
    """TorchSim's (init, step) for the ensemble, and the keyword arguments each takes."""
    import torch_sim as ts

    dt = settings.time_step_fs * 1e-3 * ts.units.MetalUnits.time  # fs -> ps -> internal
    kT = settings.temperature_K * ts.units.MetalUnits.temperature
    tau = settings.thermostat_fs * 1e-3 * ts.units.MetalUnits.time
    if settings.ensemble == "nvt-langevin":
        return (
            ts.nvt_langevin_init,
            ts.nvt_langevin_step,
            {"kT": kT},
            {
                "dt": dt,
                "kT": kT,
                "gamma": 1.0 / tau,
            },
        )
    if settings.ensemble == "nvt-nose-hoover":
        return (
            ts.nvt_nose_hoover_init,
            ts.nvt_nose_hoover_step,
            {"kT": kT, "dt": dt, "tau": tau},
            {"dt": dt, "kT": kT},
        )
    if settings.ensemble == "nve":
        return ts.nve_init, ts.nve_step, {"kT": kT}, {"dt": dt}
    if not periodic:
        raise ScalmsError("NPT needs periodic cells; nanoparticles run in NVT or NVE")
    b_tau = settings.barostat_fs * 1e-3 * ts.units.MetalUnits.time
    return (
        ts.npt_langevin_isotropic_init,
        ts.npt_langevin_isotropic_step,
        {"kT": kT, "dt": dt, "alpha": 1.0 / tau, "b_tau": b_tau},
        {"dt": dt, "kT": kT, "external_pressure": settings.pressure_bar * units.bar},
    )


def _tensor_fields(obj) -> dict:
    """The tensors of a TorchSim state (nested dataclasses such as a Nosé-Hoover chain too)."""
    import torch

    saved = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name, None)
        if isinstance(value, torch.Tensor):
            saved[field.name] = value.detach().cpu().clone()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            saved[field.name] = _tensor_fields(value)
    return saved


def _restore_fields(obj, saved: dict, device) -> None:
    for name, value in saved.items():
        if isinstance(value, dict):
            _restore_fields(getattr(obj, name), value, device)
        else:
            setattr(obj, name, value.to(device))


def save_checkpoint(path: Path, state, step: int, labels: list[str]) -> None:
    """Write the whole batch state at ``step`` atomically: a kill mid-write keeps the old one."""
    import torch

    payload = {
        "step": step,
        "labels": labels,
        "state": _tensor_fields(state),
        "rng": state.rng.get_state(),
        "rng_device": str(state.rng.device),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _restore(state, checkpoint: dict, labels: list[str]):
    import torch

    if checkpoint["labels"] != labels:
        raise ScalmsError(
            f"checkpoint holds {checkpoint['labels']}, the batch is {labels}: cannot resume"
        )
    _restore_fields(state, checkpoint["state"], state.device)
    generator = torch.Generator(device=state.device)
    generator.set_state(checkpoint["rng"])
    state.rng = generator
    return state


def _frames(state, offsets: np.ndarray):
    """Per-structure arrays of the current state, in ASE's conventions and units."""
    positions = state.positions.detach().cpu().double().numpy()
    momenta = state.momenta.detach().cpu().double().numpy()
    masses = state.masses.detach().cpu().double().numpy()
    forces = state.forces.detach().cpu().double().numpy()
    energy = state.energy.detach().cpu().double().numpy().reshape(-1)
    cells = state.row_vector_cell.detach().cpu().double().numpy()
    for i, (start, stop) in enumerate(pairwise(offsets)):
        m = masses[start:stop, None]
        p = momenta[start:stop]
        kinetic = float(0.5 * np.sum(p * p / m))
        n_atoms = stop - start
        yield {
            "positions": positions[start:stop],
            "cell": cells[i],
            # ASE's internal time unit is TorchSim's metal time unit: Å/unit -> Å/fs.
            "velocities": p / m * units.fs,
            "forces": forces[start:stop],
            "potential_energy": float(energy[i]),
            "kinetic_energy": kinetic,
            "temperature_K": 2 * kinetic / (3 * n_atoms * units.kB),
        }


def run_batch(
    runs: list[BatchRun],
    model,
    settings: MDSettings,
    checkpoint: Path,
    device: str,
    resume_from: dict | None = None,
    progress: StepProgress | None = None,
) -> None:
    """Advance every structure of ``runs`` together to ``settings.n_steps``.

    Frames are appended to each run's writer at every ``save_interval``; the batch state goes to
    ``checkpoint`` on the checkpoint steps. With ``resume_from`` (a loaded checkpoint) the run
    continues from its step, and the writers must already have been cut back to that step.
    """
    import torch
    import torch_sim as ts

    labels = [run.label for run in runs]
    atoms_list = [run.atoms for run in runs]
    periodic = all(bool(np.all(a.pbc)) for a in atoms_list)
    init_fn, step_fn, init_kwargs, step_kwargs = _integrator(settings, periodic)
    state = ts.initialize_state(atoms_list, device=torch.device(device), dtype=model.dtype)
    state.rng = settings.seed
    state = init_fn(state, model, **init_kwargs)
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])])
    if resume_from is None:
        step = 0
        _save(runs, state, offsets, step, settings)
        save_checkpoint(checkpoint, state, step, labels)
    else:
        state = _restore(state, resume_from, labels)
        step = int(resume_from["step"])
    kT_per_K = ts.units.MetalUnits.temperature
    while step < settings.n_steps:
        if settings.temperature_program:  # the thermostat follows the stages
            step_kwargs["kT"] = settings.temperature_at(step + 1) * kT_per_K
        state = step_fn(state, model, **step_kwargs)
        step += 1
        if settings.is_frame(step):
            _save(runs, state, offsets, step, settings)
        if settings.is_checkpoint(step):
            save_checkpoint(checkpoint, state, step, labels)
        if progress:
            progress(len(runs))
    for run in runs:
        run.writer.mark_complete()


def _save(runs, state, offsets, step: int, settings: MDSettings) -> None:
    for run, frame in zip(runs, _frames(state, offsets), strict=True):
        if not settings.save_forces:
            frame["forces"] = None
        if not settings.save_velocities:
            frame["velocities"] = None
        run.writer.append(step=step, **frame)
