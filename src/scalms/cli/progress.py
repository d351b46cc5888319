"""A progress display for children: one bar per model, fed by the child's events."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class ModelProgress:
    """Implements :class:`scalms.workers.fanout.Reporter` with rich bars."""

    def __init__(self, console: Console):
        self.console = console
        self._progress = Progress(
            TextColumn("{task.fields[model]}", style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self._tasks: dict[str, int] = {}
        self._shown = False

    def __enter__(self) -> ModelProgress:
        # The bars appear with the first model: a request refused before any model starts
        # prints its one error line and nothing else (an empty display would print a blank line).
        return self

    def __exit__(self, *exc) -> None:
        if self._shown:
            self._progress.__exit__(*exc)

    def start(self, model: str) -> None:
        if not self._shown:
            self._progress.__enter__()
            self._shown = True
        self._tasks[model] = self._progress.add_task(
            model, model=model, status="starting", total=None
        )

    def event(self, model: str, event: dict) -> None:
        task = self._tasks[model]
        kind = event.get("event")
        if kind == "progress":
            self._progress.update(task, completed=event["done"], total=event["total"])
        elif kind == "status":
            self._progress.update(task, status=event["message"])
        elif kind == "fallback":
            self.console.print(f"[yellow]{model}[/]: {event['message']}")

    def finish(self, model: str, outcome) -> None:
        status = "[green]done[/]" if outcome.ok else "[red]failed[/]"
        self._progress.update(self._tasks[model], status=f"{status} in {outcome.wall_s:.1f} s")
