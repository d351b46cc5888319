"""MD with an ASE calculator, one structure after another: the fallback engine.

ASE's integrators do the physics (``ase.md``: Langevin, Nosé-Hoover chain, velocity Verlet);
this module drives them step by step so frames and checkpoints fall on the same steps as in the
TorchSim engine, and a resumed run continues with the same random stream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from scalms.dynamics.settings import MDSettings
from scalms.dynamics.torchsim_md import BatchRun, StepProgress
from scalms.errors import ScalmsError


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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    with np.load(path) as data:
        loaded = {key: data[key] for key in data.files}
    loaded.update(json.loads(str(loaded.pop("meta"))))
    return loaded


def _frame(atoms, settings: MDSettings) -> dict:
    kinetic = float(atoms.get_kinetic_energy())
    return {
        "positions": atoms.get_positions(),
        "cell": np.asarray(atoms.cell),
        "velocities": atoms.get_velocities() * units.fs if settings.save_velocities else None,
        "forces": atoms.get_forces() if settings.save_forces else None,
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
) -> None:
    """Advance one structure to ``settings.n_steps`` with an ASE calculator."""
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
        run.writer.append(step=0, **_frame(atoms, settings))
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
        if settings.is_frame(step):
            run.writer.append(step=step, **_frame(atoms, settings))
        if settings.is_checkpoint(step):
            save_checkpoint(checkpoint, atoms, dyn, rng, step)
        if progress:
            progress(1)
    run.writer.mark_complete()
