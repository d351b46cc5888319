"""The ``e0`` job: isolated-atom energies with one model, inside the model's environment."""

from __future__ import annotations

from scalms.files import atomic_write_json
from scalms.hpc.e0 import isolated_atom
from scalms.hpc.labels import CalculatorLabeller
from scalms.models.loading import check_elements, load
from scalms.workers.events import emit
from scalms.workers.task import Task


def run(task: Task, device: str) -> None:
    params = task.params
    atoms = {e: isolated_atom(e, float(params["box_A"])) for e in params["elements"]}
    emit("status", message=f"loading {task.model.name} (ASE calculator) on {device}")
    calculator = load(task.model, "ase", device)
    check_elements(task.model, calculator, {"isolated atoms": list(atoms.values())})
    labeller = CalculatorLabeller(task.model.name, calculator, params["settings"])
    results = {}
    for element, atom in atoms.items():
        label = labeller.label(atom)
        results[element] = {
            "energy_eV": label.energy_eV,
            "forces_eV_per_A": label.forces_eV_per_A.tolist(),
            "wall_s": label.wall_s,
        }
        emit("status", message=f"{element}: E0 {label.energy_eV:.6f} eV, {label.wall_s:.2f} s")
    atomic_write_json(task.output, results)
