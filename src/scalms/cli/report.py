"""``scalms report WORKDIR``: the one-page HTML report of an MD working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors


@user_errors
def report(
    working_dir: Annotated[Path, typer.Argument(help="Working dir of an MD run.")],
) -> None:
    """Write WORKING_DIR/report.html: parameters, runs, diffusion table and every figure."""
    from scalms.dynamics.report import write_workdir_report
    from scalms.dynamics.workdir import WorkDir

    wd = WorkDir(working_dir)
    path = write_workdir_report(wd, wd.read_manifest())
    typer.echo(f"report: {path}")
