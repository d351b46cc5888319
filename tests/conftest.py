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
