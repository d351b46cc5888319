"""The console every command prints through."""

from __future__ import annotations

import sys


def console():
    """A rich console; wide when output goes to a file or a pipe, so tables stay readable."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=150)
