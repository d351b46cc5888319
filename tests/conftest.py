import os
import shutil
import time
from pathlib import Path

import pytest

from scalms.config import managed_python
from scalms.models import FAMILIES

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def needs_env(family: str):
    """Skip unless the family's managed environment exists (`scalms env create <family>`)."""
    python = managed_python(FAMILIES[family])
    return pytest.mark.skipif(
        not python.exists(), reason=f"no {family} environment: run `scalms env create {family}`"
    )


@pytest.fixture
def builtin_config(tmp_path):
    """A config with the builtin models only: runs in scalms's own interpreter."""
    path = tmp_path / "model_config.yaml"
    path.write_text("builtin:\n  models:\n    lj: {}\n    emt: {}\n")
    return path


PATIENCE_S = 900.0
"""Upper bound for a state a test waits for (a frame on disk, a child computing): generous, so
that a loaded machine is slow rather than failing; the tests wait for the state, not a time."""


def wait_for(condition, what: str, timeout_s: float = PATIENCE_S, poll_s: float = 0.1) -> None:
    """Poll ``condition()`` until it holds; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(poll_s)


def frames_on_disk(trajectory: Path) -> int:
    """Frames a trajectory that another process is writing reads back now; 0 while the file
    does not exist or cannot be read yet (its header not flushed: the writer's first moments)."""
    from scalms.io.trajectory import trajectory_info

    if not trajectory.exists():
        return 0
    try:
        return trajectory_info(trajectory).n_frames
    except Exception:  # between the writer's flushes the file may not read at all: try again
        return 0


class StopAfter:
    """A progress callback that raises KeyboardInterrupt after ``steps`` calls (batch steps):
    a Ctrl-C or a kill at a known point of a run, in-process."""

    def __init__(self, steps: int):
        self.left = steps

    def __call__(self, n: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_programs(*names: str) -> None:
    """Skip the test when a program it runs is missing, except in CI, where `make test` installs
    them (Debian's cp2k, slurm-wlm, munge, quantum-espresso): there a missing one fails."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = f"needs {', '.join(missing)} (`make system-deps` installs them, as root)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
