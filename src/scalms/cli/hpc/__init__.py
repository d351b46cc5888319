"""``scalms hpc``: DFT reference data, datasets and SLURM (one module per part, each thin)."""

from __future__ import annotations

import typer

from scalms.cli.hpc import data, labelling, slurm

app = typer.Typer(
    help="Reference data with DFT or a model, datasets for training, and SLURM submission.",
    no_args_is_help=True,
)
app.command("rattle")(labelling.rattle)
app.command("e0")(labelling.e0)
app.command("package")(data.package)
app.command("recompute")(data.recompute)
app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    slurm.submit
)
app.command("status")(slurm.status)
app.command("collect")(slurm.collect)
