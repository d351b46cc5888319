"""``scalms train``: MACE and SevenNet training, and training curves (one module per part)."""

from __future__ import annotations

import typer

from scalms.cli.train import curves, mace, sevennet

app = typer.Typer(
    help="Train or fine-tune MACE and SevenNet on labelled data; register the result.",
    no_args_is_help=True,
)
app.command("mace")(mace.mace)
app.command("sevennet")(sevennet.sevennet)
app.command("curves")(curves.curves)
