"""Turn a :class:`ScalmsError` into one message and an exit code, never a traceback."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable

import typer

from scalms.errors import ScalmsError


def user_errors[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ScalmsError as err:
            for line in str(err).splitlines():
                typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper


def terminate_like_ctrl_c() -> None:
    """Treat SIGTERM and SIGHUP (a closed terminal, a scheduler's kill) as Ctrl-C, so the
    running child is stopped and the results file is closed readable, not left mid-write."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
