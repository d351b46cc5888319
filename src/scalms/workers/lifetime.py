"""A child that dies with its parent: ``prctl(PR_SET_PDEATHSIG)`` asks Linux to SIGKILL the
calling process when its parent dies, even by SIGKILL (a scheduler's kill), so no orphan goes on
writing into a folder nobody watches. Elsewhere than Linux: nothing."""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""prctl option: the signal the kernel sends this process when its parent dies."""


def die_with_parent(parent_pid: int | None = None) -> None:
    """Call in the child (first thing in a job, or as a ``preexec_fn``). With ``parent_pid``, a
    parent already gone before the request was made ends the child at once."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
