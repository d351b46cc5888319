"""MD with an ASE calculator, one structure after another: the fallback engine.

ASE's integrators do the physics (``ase.md``: Langevin, Nosé-Hoover chain, velocity Verlet);
this module drives them step by step so frames and checkpoints fall on the same steps as in the
TorchSim engine, and a resumed run continues with the same random stream.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun, StepProgress
from scalms.dynamics.watch import describe, frame_problem
from scalms.errors import ScalmsError
from scalms.files import CorruptFile, atomic_write_bytes


def _dynamics(atoms, settings: MDSettings, rng: np.random.Generator):
    dt = settings.time_step_fs * units.fs
    if settings.ensemble == "nvt-langevin":
        from ase.md.langevin import Langevin

        friction = 1.0 / (settings.thermostat_fs * units.fs)
        return Langevin(
            atoms,
            dt,
            temperature_K=settings.temperature_K,
            friction=friction,
            fixcm=False,  # TorchSim does not fix the centre of mass either
            rng=rng,
        )
    if settings.ensemble == "nvt-nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(
            atoms, dt, temperature_K=settings.temperature_K, tdamp=settings.thermostat_fs * units.fs
        )
    if settings.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)
    raise ScalmsError("NPT runs on the TorchSim backend only; choose --backend torchsim")


def _thermostat_arrays(dyn) -> dict[str, np.ndarray]:
    """Internal variables a Nosé-Hoover chain carries from step to step."""
    thermostat = getattr(dyn, "_thermostat", None)
    if thermostat is None:
        return {}
    return {"eta": thermostat._eta.copy(), "p_eta": thermostat._p_eta.copy()}


def save_checkpoint(path: Path, atoms, dyn, rng: np.random.Generator, step: int) -> None:
    """Positions, momenta, cell, thermostat variables and random state at ``step``, atomically."""
    arrays = {
        "positions": atoms.get_positions(),
        "momenta": atoms.get_momenta(),
        "cell": np.asarray(atoms.cell),
        **{f"thermostat_{k}": v for k, v in _thermostat_arrays(dyn).items()},
    }
    meta = {"step": step, "rng": rng.bit_generator.state}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """A checkpoint :func:`save_checkpoint` wrote; a damaged one raises :class:`CorruptFile`."""
    try:
        with np.load(path) as data:
            loaded = {key: data[key] for key in data.files}
        loaded.update(json.loads(str(loaded.pop("meta"))))
        int(loaded["step"]), loaded["positions"], loaded["momenta"]
    except Exception as err:  # numpy and zipfile raise many types; each means it is unusable
        raise CorruptFile(
            f"checkpoint {path} is damaged ({type(err).__name__}: {err}); delete it and the "
            "trajectory of its run to run it again from step 0"
        ) from None
    return loaded


def _frame(atoms) -> dict:
    """The current state in the trajectory's units (forces are the step's own: no new call)."""
    kinetic = float(atoms.get_kinetic_energy())
    return {
        "positions": atoms.get_positions(),
        "cell": np.asarray(atoms.cell),
        "velocities": atoms.get_velocities() * units.fs,
        "forces": atoms.get_forces(),
        "potential_energy": float(atoms.get_potential_energy()),
        "kinetic_energy": kinetic,
        "temperature_K": 2 * kinetic / (3 * len(atoms) * units.kB),
    }


def run_one(
    run: BatchRun,
    calculator,
    settings: MDSettings,
    checkpoint: Path,
    resume_from: dict | None = None,
    progress: StepProgress | None = None,
) -> str:
    """Advance one structure to ``settings.n_steps`` with an ASE calculator.

    Every saved frame is watched (:mod:`.watch`): a run that blows up is stopped there, marked
    failed in its file with the frames before it. Returns why it was stopped, "" if it was not.
    """
    atoms = run.atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(settings.seed)
    if resume_from is None:
        step = 0
        thermalize_momenta(atoms, settings.temperature_K, rng=rng)
        Stationary(atoms)
    else:
        step = int(resume_from["step"])
        atoms.set_cell(resume_from["cell"])
        atoms.set_positions(resume_from["positions"])
        atoms.set_momenta(resume_from["momenta"])
        rng.bit_generator.state = resume_from["rng"]
    # Built after the atoms are restored: some integrators copy positions and momenta at start.
    dyn = _dynamics(atoms, settings, rng)
    if settings.temperature_program and not hasattr(dyn, "set_temperature"):
        raise ScalmsError(
            "temperature programs run on ASE with nvt-langevin only; use it, or --backend torchsim"
        )
    if resume_from is None:
        frame = _frame(atoms)
        problem = _problem(frame, settings)
        if problem:
            return _stop(run, describe(0, problem))
        run.writer.append(step=0, **_saved(frame, settings))
        save_checkpoint(checkpoint, atoms, dyn, rng, 0)
    elif "thermostat_eta" in resume_from:
        dyn._thermostat._eta[:] = resume_from["thermostat_eta"]
        dyn._thermostat._p_eta[:] = resume_from["thermostat_p_eta"]
    while step < settings.n_steps:
        if settings.temperature_program:  # the thermostat follows the stages
            dyn.set_temperature(temperature_K=settings.temperature_at(step + 1))
        dyn.step()
        dyn.nsteps += 1
        step += 1
        if settings.is_frame(step) or settings.is_checkpoint(step):
            frame = _frame(atoms)
            problem = _problem(frame, settings)  # before a bad state is saved
            if problem:
                return _stop(run, describe(step, problem))
            if settings.is_frame(step):
                run.writer.append(step=step, **_saved(frame, settings))
            if settings.is_checkpoint(step):
                save_checkpoint(checkpoint, atoms, dyn, rng, step)
        if progress:
            progress(1)
    run.writer.mark_complete()
    return ""


def _problem(frame: dict, settings: MDSettings) -> str:
    return frame_problem(
        frame["positions"],
        frame["forces"],
        frame["potential_energy"],
        frame["temperature_K"],
        settings,
    )


def _saved(frame: dict, settings: MDSettings) -> dict:
    """The frame as the trajectory keeps it: without what the run does not save."""
    return {
        **frame,
        "velocities": frame["velocities"] if settings.save_velocities else None,
        "forces": frame["forces"] if settings.save_forces else None,
    }


def _stop(run: BatchRun, why: str) -> str:
    run.writer.mark_failed(why)
    return why
