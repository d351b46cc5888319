"""The console every command prints through."""

from __future__ import annotations

import sys


def console():
    """A rich console; wide when output goes to a file or a pipe, so tables stay readable."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=150)


def print_failures(console, outcomes) -> None:
    """One line per failed model: why, and where its log is."""
    for outcome in outcomes:
        where = f" (log: {outcome.log})" if outcome.log else ""
        console.print(f"[red]failed[/] {outcome.model}: {outcome.reason}{where}")
