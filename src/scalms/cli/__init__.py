"""The ``scalms`` command: one sub-app per section, each command a thin layer over the library.

Heavy imports (torch, ASE I/O, h5py) live inside the command bodies, so ``scalms --help``
answers at once.
"""

from __future__ import annotations

import typer

from scalms.cli import analyze, dynamics, env, geometry, io, learn, models, report, static
from scalms.cli.benchmark import app as benchmark_app
from scalms.cli.hpc import app as hpc_app
from scalms.cli.train import app as train_app

app = typer.Typer(
    name="scalms",
    help="Simulate gallium liquid-metal catalysts with machine-learning interatomic potentials.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: rich formatting would double start-up time
    pretty_exceptions_enable=False,
)
app.add_typer(env.app, name="env", rich_help_panel="Set-up")
app.add_typer(geometry.app, name="geometry", rich_help_panel="Build")
app.add_typer(models.app, name="models", rich_help_panel="Set-up")
app.command("static", rich_help_panel="Evaluate")(static.static)
app.add_typer(benchmark_app, name="benchmark", rich_help_panel="Evaluate")
app.add_typer(io.app, name="io", rich_help_panel="Results")
app.add_typer(dynamics.app, name="dynamics", rich_help_panel="Dynamics")
app.add_typer(analyze.app, name="analyze", rich_help_panel="Dynamics")
app.command("report", rich_help_panel="Dynamics")(report.report)
app.add_typer(hpc_app, name="hpc", rich_help_panel="HPC and training")
app.add_typer(train_app, name="train", rich_help_panel="HPC and training")
app.add_typer(learn.app, name="learn", rich_help_panel="HPC and training")


def _version(value: bool) -> None:
    if value:
        from scalms import __version__

        typer.echo(f"scalms {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Simulate gallium liquid-metal catalysts with machine-learning interatomic potentials."""


def main() -> None:
    app()
