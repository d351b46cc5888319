"""Batched MD with TorchSim: many structures of one model advance together, step by step.

The loop is ours and the integrators are TorchSim's (``torch_sim.integrators``: pure init/step
pairs), so frames go to each structure's trajectory file as they come and the whole batch state,
thermostat chains and random generator included, is checkpointed for an exact resume. Runs inside
a model's environment.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from ase import Atoms, units

from scalms.dynamics.settings import MDSettings
from scalms.dynamics.watch import describe
from scalms.errors import ScalmsError
from scalms.files import CorruptFile, atomic_write_bytes

StepProgress = Callable[[int], None]
"""Called with the number of (structure) steps just done."""


@dataclass
class BatchRun:
    """One structure in a batch: where its frames go."""

    label: str
    atoms: Atoms
    writer: object  # scalms.io.trajectory.TrajectoryWriter


def _integrator(settings: MDSettings, atoms_list: list[Atoms]):
    """TorchSim's (init, step) for the ensemble, and the keyword arguments each takes.

    Every thermostat is given the same relaxation time, ``settings.thermostat_fs``: TorchSim's
    NVT Langevin takes a friction rate γ = 1/τ and its Nosé-Hoover chain τ itself, but its NPT
    Langevin takes a friction *coefficient* α (force = -α v, so the rate is α/m): α = m/τ, with
    m the mean atomic mass of each structure (one α per structure: an alloy's heavier atoms are
    coupled a little more slowly, at the same temperature). The barostat's strain friction is
    Q/τ_b, Q = (N+1) kT τ_b² being TorchSim's strain mass, so the volume relaxes within about
    τ_b instead of ringing undamped.
    """
    import torch_sim as ts

    dt = settings.time_step_fs * 1e-3 * ts.units.MetalUnits.time  # fs -> ps -> internal
    kT = settings.temperature_K * ts.units.MetalUnits.temperature
    tau = settings.thermostat_fs * 1e-3 * ts.units.MetalUnits.time
    if settings.ensemble == "nvt-langevin":
        return (
            ts.nvt_langevin_init,
            ts.nvt_langevin_step,
            {"kT": kT},
            {"dt": dt, "kT": kT, "gamma": 1.0 / tau},
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
    if not all(bool(np.all(a.pbc)) for a in atoms_list):
        raise ScalmsError("NPT needs periodic cells; nanoparticles run in NVT or NVE")
    b_tau = settings.barostat_fs * 1e-3 * ts.units.MetalUnits.time
    alpha = [float(np.mean(a.get_masses())) / tau for a in atoms_list]  # amu / internal time
    cell_alpha = [(len(a) + 1) * kT * b_tau for a in atoms_list]  # strain mass / tau_b
    return (
        ts.npt_langevin_isotropic_init,
        ts.npt_langevin_isotropic_step,
        {"kT": kT, "dt": dt, "alpha": alpha, "cell_alpha": cell_alpha, "b_tau": b_tau},
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
    """Write the whole batch state at ``step`` atomically: a kill or a full disk mid-write keeps
    the old one (serialised in memory first, so a full disk is an OSError that says so)."""
    import torch

    payload = {
        "step": step,
        "labels": labels,
        "state": _tensor_fields(state),
        "rng": state.rng.get_state(),
        "rng_device": str(state.rng.device),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint :func:`save_checkpoint` wrote; a damaged one raises :class:`CorruptFile`."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        int(checkpoint["step"]), list(checkpoint["labels"]), checkpoint["state"]
    except Exception as err:  # torch.load raises many types; each means the file is unusable
        raise CorruptFile(
            f"checkpoint {path} is damaged ({type(err).__name__}: {err}); delete it and the "
            "trajectories of its runs to run them again from step 0"
        ) from None
    return checkpoint


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


def _problems(state, settings: MDSettings) -> dict[int, str]:
    """Systems of the batch whose current step is not physical (see :mod:`.watch`): index ->
    why. Checked on the saved frames, as mlipx's maximum-force observer does: one
    device-to-host sync each, and only the flagged systems are described."""
    import torch

    n = state.n_systems
    idx = state.system_idx
    zeros = torch.zeros(n, device=state.device, dtype=torch.float64)
    bad_positions = zeros.index_add(0, idx, (~torch.isfinite(state.positions).all(1)).double())
    bad_forces = zeros.index_add(0, idx, (~torch.isfinite(state.forces).all(1)).double())
    force = torch.linalg.vector_norm(state.forces.double(), dim=1).nan_to_num(0.0)
    largest = zeros.scatter_reduce(0, idx, force, "amax", include_self=False)
    momenta, masses = state.momenta.double(), state.masses.double()
    kinetic = zeros.index_add(0, idx, 0.5 * (momenta * momenta).sum(1) / masses)
    n_atoms = zeros.index_add(0, idx, torch.ones_like(masses))
    temperature = 2 * kinetic / (3 * n_atoms * units.kB)
    energy = state.energy.double().reshape(-1)
    flagged = (
        (bad_positions > 0)
        | (bad_forces > 0)
        | ~torch.isfinite(energy)
        | (largest > settings.max_force_eV_per_A)
        | ~(temperature <= settings.max_temperature_K)  # NaN too
    )
    if not bool(flagged.any()):
        return {}
    found = {}
    for i in torch.nonzero(flagged).flatten().tolist():
        if bad_positions[i] > 0:
            found[i] = "non-finite positions"
        elif bad_forces[i] > 0:
            found[i] = "non-finite forces"
        elif not torch.isfinite(energy[i]):
            found[i] = "non-finite energy"
        elif largest[i] > settings.max_force_eV_per_A:
            found[i] = (
                f"a force of {float(largest[i]):.3g} eV/Å, past the limit of "
                f"{settings.max_force_eV_per_A:g} eV/Å (--max-force-eV-per-A)"
            )
        else:
            found[i] = (
                f"a temperature of {float(temperature[i]):.3g} K, past the limit of "
                f"{settings.max_temperature_K:g} K (--max-temperature-K)"
            )
    return found


def _keep_systems(state, keep: list[int]):
    """The batch state with only the systems ``keep``; the random generator goes on as it was.

    A Nosé-Hoover chain is a TorchSim "global" attribute holding one row per system, which
    state slicing leaves whole: it is cut to the kept rows here.
    """
    import torch

    sliced = state[keep]
    chain = getattr(state, "chain", None)
    if chain is not None:
        rows = torch.tensor(keep, device=state.device)
        cut = {}
        for field in dataclasses.fields(chain):
            value = getattr(chain, field.name)
            if isinstance(value, torch.Tensor) and value.ndim and len(value) == state.n_systems:
                cut[field.name] = value[rows]
        cut["system_idx"] = sliced.system_idx if chain.system_idx is not None else None
        sliced.chain = dataclasses.replace(chain, **cut)
    sliced.rng = state.rng
    return sliced


def _offsets(runs: list[BatchRun]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(run.atoms) for run in runs])])


def run_batch(
    runs: list[BatchRun],
    model,
    settings: MDSettings,
    checkpoint: Path,
    device: str,
    resume_from: dict | None = None,
    progress: StepProgress | None = None,
) -> dict[str, str]:
    """Advance every structure of ``runs`` together to ``settings.n_steps``.

    Frames are appended to each run's writer at every ``save_interval``; the batch state goes to
    ``checkpoint`` on the checkpoint steps. With ``resume_from`` (a loaded checkpoint) the run
    continues from its step, and the writers must already have been cut back to that step.

    Every saved frame is watched (:func:`_problems`): a structure that blows up is stopped there,
    marked failed in its file with its frames so far, and dropped from the batch, which goes on
    with the others. Returns label -> why, for the structures stopped.
    """
    import torch
    import torch_sim as ts

    labels = [run.label for run in runs]
    atoms_list = [run.atoms for run in runs]
    init_fn, step_fn, init_kwargs, step_kwargs = _integrator(settings, atoms_list)
    state = ts.initialize_state(atoms_list, device=torch.device(device), dtype=model.dtype)
    state.rng = settings.seed
    state = init_fn(state, model, **init_kwargs)
    active = list(runs)
    failures: dict[str, str] = {}

    def stop_blown_up(step: int) -> None:
        nonlocal state, active
        found = _problems(state, settings)
        if not found:
            return
        for i, why in found.items():
            failures[active[i].label] = describe(step, why)
            active[i].writer.mark_failed(failures[active[i].label])
        keep = [i for i in range(len(active)) if i not in found]
        active = [active[i] for i in keep]
        if keep:
            state = _keep_systems(state, keep)

    if resume_from is None:
        step = 0
        stop_blown_up(step)
        if active:
            _save(active, state, _offsets(active), step, settings)
            save_checkpoint(checkpoint, state, step, [run.label for run in active])
    else:
        state = _restore(state, resume_from, labels)
        step = int(resume_from["step"])
    kT_per_K = ts.units.MetalUnits.temperature
    while step < settings.n_steps and active:
        if settings.temperature_program:  # the thermostat follows the stages
            step_kwargs["kT"] = settings.temperature_at(step + 1) * kT_per_K
        state = step_fn(state, model, **step_kwargs)
        step += 1
        if settings.is_frame(step) or settings.is_checkpoint(step):
            stop_blown_up(step)  # before a bad state is saved; a blow-up grows over steps
        if not active:
            break
        if settings.is_frame(step):
            _save(active, state, _offsets(active), step, settings)
        if settings.is_checkpoint(step):
            save_checkpoint(checkpoint, state, step, [run.label for run in active])
        if progress:
            progress(len(active))
    for run in active:
        run.writer.mark_complete()
    return failures


def _save(runs, state, offsets, step: int, settings: MDSettings) -> None:
    for run, frame in zip(runs, _frames(state, offsets), strict=True):
        if not settings.save_forces:
            frame["forces"] = None
        if not settings.save_velocities:
            frame["velocities"] = None
        run.writer.append(step=step, **frame)
