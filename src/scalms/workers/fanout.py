"""Run one job for many models, one child each, so that a failing model fails alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scalms.config import ModelEntry, entry_problems
from scalms.workers.child import EXIT_USER
from scalms.workers.parent import ChildResult, run_child
from scalms.workers.task import Task


class Reporter(Protocol):
    """Receives what happens, for a progress display or a log."""

    def start(self, model: str) -> None: ...
    def event(self, model: str, event: dict) -> None: ...
    def finish(self, model: str, outcome: ModelOutcome) -> None: ...


class SilentReporter:
    def start(self, model: str) -> None:
        pass

    def event(self, model: str, event: dict) -> None:
        pass

    def finish(self, model: str, outcome: ModelOutcome) -> None:
        pass


@dataclass
class ModelOutcome:
    """One model's end: whether it worked, why not, where its log and result file are."""

    model: str
    ok: bool
    reason: str
    log: Path | None = None
    output: Path | None = None
    wall_s: float = 0.0
    refused: bool = False
    """The child refused its task (elements, weights: the user's to fix), as against crashing."""

    @classmethod
    def from_child(cls, result: ChildResult) -> ModelOutcome:
        return cls(
            model=result.model,
            ok=result.ok,
            reason=result.reason(),
            log=result.log,
            output=result.output if result.output.exists() else None,
            wall_s=result.wall_s,
            refused=result.returncode == EXIT_USER,
        )


def run_models(
    entries: list[ModelEntry],
    make_task: Callable[[ModelEntry, Path], Task],
    workdir: Path,
    on_result: Callable[[ModelOutcome], None] | None = None,
    reporter: Reporter | None = None,
    timeout_s: float | None = None,
) -> list[ModelOutcome]:
    """Run ``make_task(entry, model_dir)`` for every entry, one after another.

    Models run in turn, not side by side: on a GPU each child batches its own structures, and on
    a 2-core CPU two children would only slow each other. ``on_result`` is called as each
    model ends with a result file (a failed model may have finished part of its work), so what
    it wrote is saved before the next model starts.
    """
    reporter = reporter or SilentReporter()
    outcomes = []
    for entry in entries:
        reporter.start(entry.name)
        problems = entry_problems(entry)
        if problems:
            outcome = ModelOutcome(entry.name, ok=False, reason="; ".join(problems))
        else:
            model_dir = workdir / entry.name
            task = make_task(entry, model_dir)
            result = run_child(
                task,
                model_dir,
                timeout_s=timeout_s,
                on_event=lambda event, name=entry.name: reporter.event(name, event),
            )
            outcome = ModelOutcome.from_child(result)
            if outcome.output is not None and on_result is not None:
                on_result(outcome)
        reporter.finish(entry.name, outcome)
        outcomes.append(outcome)
    return outcomes
