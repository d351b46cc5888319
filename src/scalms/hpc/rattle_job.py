"""The ``rattle`` job: label rattled frames with one model, inside the model's environment.

Frame by frame through the model's ASE calculator: the frames are appended one at a time as they
finish, and pre-convergence (BFGS) needs an ASE calculator anyway.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from scalms.files import atomic_write_json
from scalms.hpc.labelling import label_slots
from scalms.hpc.labels import CalculatorLabeller
from scalms.hpc.rattle import InputFrames, RattleSpec, composition
from scalms.models.loading import check_elements, load
from scalms.workers.events import emit
from scalms.workers.lifetime import die_with_parent
from scalms.workers.task import Task


class EventLog:
    """A :class:`scalms.hpc.labelling.RattleLog` that sends the lines and counts to the parent."""

    def line(self, text: str) -> None:
        emit("status", message=text)

    def progress(self, done: int, total: int) -> None:
        emit("progress", done=done, total=total)


def run(task: Task, device: str) -> None:
    die_with_parent()
    params = task.params
    spec = RattleSpec.from_dict(params["spec"])
    job = params["job"]
    emit("status", message=f"loading {task.model.name} (ASE calculator) on {device}")
    calculator = load(task.model, "ase", device)
    # Refuse elements the model lacks before anything is written.
    check_elements(
        task.model, calculator, {spec.input.name: [composition(spec, InputFrames(spec.input))]}
    )
    labeller = CalculatorLabeller(task.model.name, calculator, job["settings"])
    outcome = label_slots(spec, labeller, Path(params["out"]), EventLog(), job)
    result = asdict(outcome)
    result["out"] = str(outcome.out)
    atomic_write_json(task.output, result)
