"""``<env python> -m scalms.workers.probe FAMILY [ENTRY_JSON ...]``: can this environment run?

Prints one JSON object: interpreter and package versions, whether the family's package imports,
and for each model entry whether its weights file is there. Runs in the model's environment,
so the parent learns all this without importing a model package itself.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from scalms.config import ModelEntry
from scalms.models import FAMILIES


def _weights(entry: ModelEntry) -> tuple[bool, str]:
    module = importlib.import_module(FAMILIES[entry.family].adapter)
    locate = getattr(module, "locate_weights", None)
    try:
        if locate is not None:
            path = locate(entry)
        elif entry.model_path is not None:
            path = str(entry.model_path)
        else:
            return True, "no weights file needed"
    except Exception as err:
        return False, str(err)
    return (Path(path).exists(), path if Path(path).exists() else f"not found: {path}")


def probe(family_key: str, entries: list[ModelEntry]) -> dict:
    from scalms.models.loading import software_versions

    family = FAMILIES[family_key]
    report: dict = {"python": sys.executable, "import_ok": True, "import_error": ""}
    if family.import_name:
        try:
            importlib.import_module(family.import_name)
        except Exception as err:  # any import failure means the environment is broken
            report.update(import_ok=False, import_error=f"{type(err).__name__}: {err}")
    report["versions"] = software_versions(ModelEntry(name="probe", family=family_key))
    if report["import_ok"]:
        report["weights"] = {e.name: _weights(e) for e in entries}
    return report


def main() -> int:
    family_key, *entry_texts = sys.argv[1:]
    entries = [ModelEntry.from_dict(json.loads(t)) for t in entry_texts]
    print(json.dumps(probe(family_key, entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
