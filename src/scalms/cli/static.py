"""``scalms static``: energy, forces and stress of every frame with every model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._console import print_failures
from scalms.cli._errors import user_errors
from scalms.cli.types import (
    DEFAULT_CONFIG,
    Backend,
    BackendOption,
    DeviceOption,
    MaxBatchAtomsOption,
    ModelConfigOption,
    ModelsOption,
    SeedOption,
    StructuresArgument,
    TimeoutOption,
)


@user_errors
def static(
    structures: StructuresArgument,
    model: ModelsOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 results file to write.")] = Path(
        "static_results.h5"
    ),
    model_config: ModelConfigOption = DEFAULT_CONFIG,
    backend: BackendOption = Backend.auto,
    device: DeviceOption = "auto",
    max_batch_atoms: MaxBatchAtomsOption = None,
    timeout: TimeoutOption = None,
    seed: SeedOption = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Evaluate every frame of every STRUCTURE with each model, each in its own environment.

    Writes one HDF5 file (run / structure / frame) and prints a summary; with --backend both,
    also how far TorchSim and ASE are apart. Exits 1 if any model failed (the others finish).
    """
    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.cli.progress import ModelProgress
    from scalms.config import load_config
    from scalms.evaluate import run_static

    terminate_like_ctrl_c()
    console = make_console()
    entries = load_config(model_config).select(model)
    with ModelProgress(console) as progress:
        run = run_static(
            structures,
            entries,
            out,
            backend=backend.value,
            device=device,
            seed=seed,
            max_batch_atoms=max_batch_atoms,
            timeout_s=timeout,
            reporter=progress,
            overwrite=overwrite,
        )
    print_summary(console, run)
    if run.failed:
        raise typer.Exit(1)


def print_summary(console, run) -> None:
    from rich.table import Table

    from scalms.evaluate import compare_backends, summarize
    from scalms.io.static_results import read_results, read_run_attrs

    results = read_results(run.out)  # read once for both tables
    rows = summarize(results, read_run_attrs(run.out))
    if rows:
        table = Table(title=f"Static evaluation: {run.out}")
        for column in ("run", "structure", "backend", "frames", "atoms"):
            table.add_column(column)
        for column in ("E / atom (eV)", "max |F| (eV/Å)", "load (s)", "compute (s)"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(
                row.run,
                row.structure,
                row.backend,
                str(row.n_frames),
                row.n_atoms,
                f"{row.energy_per_atom_eV:.5f}",
                f"{row.max_force_eV_per_A:.4f}",
                f"{row.load_time_s:.1f}",
                f"{row.compute_time_s:.2f}",
            )
        console.print(table)
        agreement = compare_backends(results)
        if agreement:
            table = Table(title="TorchSim against ASE (largest difference over frames)")
            table.add_column("model")
            table.add_column("structure")
            table.add_column("|ΔE| / atom (eV)", justify="right")
            table.add_column("|ΔF| (eV/Å)", justify="right")
            table.add_column("|Δσ| (eV/Å³)", justify="right")
            for row in agreement:
                table.add_row(
                    row.model,
                    row.structure,
                    f"{row.max_energy_diff_eV_per_atom:.2e}",
                    f"{row.max_force_diff_eV_per_A:.2e}",
                    "-"
                    if row.max_stress_diff_eV_per_A3 is None
                    else f"{row.max_stress_diff_eV_per_A3:.2e}",
                )
            console.print(table)
    print_failures(console, run.failed)
