"""Entry point of a child process: ``<env python> -m scalms.workers.child TASK.json``.

Exit codes: 0 done; 2 a problem the user can fix (weights, elements, device), its message sent as
an ``error`` event; 3 out of memory; 1 anything else (traceback in the log).
"""

from __future__ import annotations

import importlib
import random
import sys
import traceback
from pathlib import Path

from scalms.errors import ScalmsError
from scalms.files import disk_full_error, is_disk_full
from scalms.workers.events import emit
from scalms.workers.memory import is_out_of_memory
from scalms.workers.task import Task

JOBS = {
    "static": "scalms.static_job",
    "md": "scalms.dynamics.md_job",
    "cost": "scalms.benchmark.cost_job",
    "rattle": "scalms.hpc.rattle_job",
    "e0": "scalms.hpc.e0_job",
    "descriptors": "scalms.structural.descriptor_job",
}
"""Job kind -> the module (in its section) whose ``run(task, device)`` does it; names only, so
workers/ imports no section."""
EXIT_OK, EXIT_CRASH, EXIT_USER, EXIT_OOM = 0, 1, 2, 3


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m scalms.workers.child TASK.json", file=sys.stderr)
        return EXIT_USER
    task = None
    try:
        task = Task.from_json(Path(argv[0]).read_text())
        job = importlib.import_module(JOBS[task.kind])
        from scalms.models.loading import resolve_device

        _seed(task.seed)
        device = resolve_device(task.device)
        job.run(task, device)
    except ScalmsError as err:
        emit("error", message=str(err))
        return EXIT_USER
    except Exception as err:
        if is_disk_full(err):  # a full disk is the user's to fix, whatever the writer raised
            where = task.output if task is not None else argv[0]
            emit("error", message=str(disk_full_error(where, err)))
            return EXIT_USER
        if is_out_of_memory(err):
            emit("error", message=f"out of memory: {err}")
            traceback.print_exc()
            return EXIT_OOM
        emit("error", message=f"crashed with {type(err).__name__}: {err}")
        traceback.print_exc()
        return EXIT_CRASH
    emit("done")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
