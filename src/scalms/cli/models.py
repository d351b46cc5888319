"""``scalms models``: what the model config lists and whether each entry can run here."""

from __future__ import annotations

from pathlib import Path

import typer

from scalms.cli._errors import user_errors
from scalms.cli.types import DEFAULT_CONFIG, ModelConfigOption

app = typer.Typer(help="List the configured models and what each needs to run.")


@app.command("list")
@user_errors
def list_models(model_config: ModelConfigOption = DEFAULT_CONFIG) -> None:
    """Each model: its family, weights, environment, and whether it is ready, without loading it."""
    from rich.table import Table

    from scalms import envs
    from scalms.cli._console import console
    from scalms.config import environment_fix, load_config
    from scalms.models import FAMILIES

    config = load_config(model_config)
    by_python: dict[tuple[str, Path], list] = {}
    for entry in config.entries.values():
        by_python.setdefault((entry.family, entry.python), []).append(entry)
    table = Table("model", "family", "weights", "environment", "ready")
    table.columns[2].overflow = table.columns[3].overflow = "fold"
    requests = [
        (FAMILIES[family_key], entries, python)
        for (family_key, python), entries in by_python.items()
    ]
    for st in envs.statuses(requests):
        family, python = st.family, st.python
        for entry in st.entries:
            weights = st.report.get("weights", {}).get(entry.name)
            if not st.exists:
                env_state, ready = f"missing: {environment_fix(entry)}", False
            elif not st.report.get("import_ok"):
                env_state, ready = f"broken: {st.report.get('import_error')}", False
            else:
                env_state, ready = str(python), bool(weights and weights[0])
            if weights:
                weights_text = _short(weights[1])
            elif entry.model_path:
                weights_text = str(entry.model_path)
            else:
                weights_text = "bundled" if entry.name.lower() in family.bundled else "none"
            table.add_row(
                entry.name,
                family.display,
                weights_text,
                env_state,
                "[green]yes[/]" if ready else "[red]no[/]",
            )
    console().print(table)


def _short(path_text: str) -> str:
    """Weights inside a package read as 'bundled: folder/file'; other paths stay whole."""
    if "site-packages" in path_text:
        path = Path(path_text.removeprefix("not found: "))
        return f"bundled: {path.parent.name}/{path.name}"
    return path_text
