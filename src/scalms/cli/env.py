"""``scalms env``: the per-family Python environments under .venvs/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors

app = typer.Typer(help="Create and check the model environments (one per architecture).")


@app.command("create")
@user_errors
def create(
    families: Annotated[
        list[str],
        typer.Argument(help="Families to build: sevennet, mace, orb, mattersim, nequip, or all."),
    ],
    force: Annotated[bool, typer.Option(help="Rebuild even when up to date.")] = False,
) -> None:
    """Build .venvs/FAMILY with uv from requirements/FAMILY.txt plus scalms; skip if current."""
    from scalms import envs
    from scalms.models import FAMILIES

    if "all" in families:
        families = [k for k, f in FAMILIES.items() if f.own_environment]
    for key in families:
        envs.create(envs.family_by_key(key), force=force, echo=typer.echo)


@app.command("list")
@user_errors
def list_envs() -> None:
    """For each family: does its environment exist, is it current, does its package import."""
    from rich.table import Table

    from scalms import envs
    from scalms.cli._console import console
    from scalms.models import FAMILIES

    table = Table("family", "environment", "state", "package", "python")
    # The builtin family runs in scalms's own interpreter.
    requests = [
        (family, [], None if family.own_environment else Path(sys.executable))
        for family in FAMILIES.values()
    ]
    for st in envs.statuses(requests):
        family = st.family
        if not st.exists:
            state = f"[red]missing[/] (scalms env create {family.key})"
        elif not st.report.get("import_ok"):
            state = f"[red]broken[/]: {st.report.get('import_error')}"
        else:
            state = "[green]ok[/]" if st.current else "[yellow]stale[/] (scalms env create)"
        versions = st.report.get("versions", {})
        package = family.distribution or "scalms"
        shown = f"{package} {versions[package]}" if package in versions else package
        table.add_row(family.key, str(st.python), state, shown, versions.get("python", ""))
    console().print(table)
