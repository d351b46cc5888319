"""``scalms hpc package`` (train/valid/test datasets) and ``scalms hpc recompute`` (the
DFT-settings benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalms.cli._errors import user_errors
from scalms.cli.hpc.dft_options import (
    PANEL,
    BasisSetOption,
    DftCommandOption,
    MaxScfOption,
    PseudopotentialDirOption,
    PseudopotentialOption,
    ScratchOption,
    SmearingOption,
    SpinOption,
    ThreadsOption,
    dft_settings,
)
from scalms.cli.types import POSITIVE


@user_errors
def package(
    input_dir: Annotated[
        Path, typer.Argument(help="Folder of labelled files (rattle output, AIMD runs...).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for dataset_0, dataset_1...")
    ] = Path("dataset"),
    pattern: Annotated[
        str, typer.Option(help="Files of INPUT_DIR to package (glob; ** goes into subfolders).")
    ] = "*.xyz",
    split: Annotated[
        str, typer.Option(help="Train-valid-test percentages of the frames, whole files each.")
    ] = "80-10-10",
    extra: Annotated[
        list[Path] | None,
        typer.Option(help="File whose frames go to train only (E0 frames, say); repeat."),
    ] = None,
    amount: Annotated[
        int, typer.Option(help="Independent packagings, seeds SEED .. SEED+AMOUNT-1.", min=1)
    ] = 1,
    force_threshold: Annotated[
        float,
        typer.Option(help="Drop frames with a force above this, eV/Å.", click_type=POSITIVE),
    ] = 5.0,
    net_force_threshold: Annotated[
        float,
        typer.Option(
            help="Drop frames whose forces sum to more than this, |ΣF| in eV/Å.",
            click_type=POSITIVE,
        ),
    ] = 0.1,
    elements_in_test_valid: Annotated[
        str | None,
        typer.Option(help="Elements every valid and test set must hold, e.g. Pt,Bi."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split; packaging k uses SEED+k.")] = 0,
) -> None:
    """Split the labelled frames of INPUT_DIR into train.xyz, valid.xyz and test.xyz by source
    file (no file in two sets), dropping frames with missing references, large forces or a net
    force, and write a report (report.json, report.md) of what was dropped and where each file
    went. The files are read by MACE with --energy_key REF_energy --forces_key REF_forces.
    """
    from rich.table import Table

    from scalms.cli._console import console as make_console
    from scalms.hpc.package import SETS, Thresholds, stale_datasets
    from scalms.hpc.package import package as run_package

    written = run_package(
        input_dir,
        out,
        pattern,
        split,
        extra=extra,
        amount=amount,
        thresholds=Thresholds(force_threshold, net_force_threshold),
        elements_in_test_valid=elements_in_test_valid,
        seed=seed,
    )
    console = make_console()
    table = Table("dataset", "seed", *(f"{name} frames (files)" for name in SETS), "dropped")
    for item in written:
        record = item.record
        dropped = sum(len(f["dropped"]) for f in record["files"])
        cells = [
            f"{record['sets'][name]['frames']} ({len(record['sets'][name]['files'])})"
            for name in SETS
        ]
        table.add_row(item.folder.name, str(record["seed"]), *cells, str(dropped))
    console.print(f"packaged in {out}:")
    console.print(table)
    for item in written:
        for warning in item.record["warnings"]:
            console.print(f"[yellow]warning[/] {item.folder.name}: {warning}")
    stale = stale_datasets(out, amount)
    if stale:
        names = ", ".join(folder.name for folder in stale)
        console.print(f"[yellow]warning[/] {out} also holds {names} from an earlier packaging")
    console.print("what was dropped and why, and which file went where: report.md in each")


@user_errors
def recompute(
    trajectory: Annotated[
        Path, typer.Argument(help="Frames to recompute (any file ASE reads), every frame used.")
    ],
    calculator: Annotated[
        str, typer.Option("--calculator", help="DFT code: cp2k, vasp or espresso.")
    ],
    csv: Annotated[
        Path,
        typer.Option(
            "--csv",
            help="One row per (frame, setting), appended as each finishes; a rerun skips the "
            "rows there. The differences go to <stem>_differences.csv beside it.",
        ),
    ] = Path("recompute.csv"),
    cutoff: Annotated[
        list[float] | None,
        typer.Option(
            help="Plane-wave cutoff (Ry for CP2K and QE, eV for VASP); repeat to compare.",
            click_type=POSITIVE,
            rich_help_panel=PANEL,
        ),
    ] = None,
    functional: Annotated[
        list[str] | None,
        typer.Option(help="Exchange-correlation functional; repeat.", rich_help_panel=PANEL),
    ] = None,
    spin: SpinOption = None,
    both_spins: Annotated[
        bool,
        typer.Option("--both-spins", help="Compare spin-polarised and not.", rich_help_panel=PANEL),
    ] = False,
    scf_convergence: Annotated[
        list[float] | None,
        typer.Option(
            help="SCF energy threshold in the code's unit (CP2K EPS_SCF, VASP EDIFF eV, QE "
            "conv_thr Ry); repeat.",
            click_type=POSITIVE,
            rich_help_panel=PANEL,
        ),
    ] = None,
    reference_setting: Annotated[
        str | None,
        typer.Option(
            help="Setting the others are compared with: its name or words only it has "
            "(cutoff=800). Default: the first."
        ),
    ] = None,
    max_scf: MaxScfOption = 100,
    smearing_K: SmearingOption = None,
    threads: ThreadsOption = None,
    dft_command: DftCommandOption = None,
    basis_set: BasisSetOption = None,
    pseudopotential_dir: PseudopotentialDirOption = None,
    pseudopotential: PseudopotentialOption = None,
    scratch: ScratchOption = None,
    plot: Annotated[
        bool, typer.Option("--plot/--no-plot", help="Write <stem>.png: |ΔF| and net forces.")
    ] = True,
) -> None:
    """Recompute every frame of TRAJECTORY with every combination of the DFT settings given
    (the thesis's DFT-settings benchmark): energies, forces, net forces, SCF steps and wall
    times per (frame, setting) to --csv, and the force differences between the settings (and
    against the frames' own REF_forces) to a second CSV and a table.
    """
    from rich.table import Table

    from scalms.cli._console import console as make_console
    from scalms.cli._errors import terminate_like_ctrl_c
    from scalms.errors import ScalmsError
    from scalms.hpc.recompute import FILE_REFERENCE, recompute_dft, shared_words, short_names

    if both_spins and spin is not None:
        raise ScalmsError("--both-spins computes with and without spin: leave out --spin/--no-spin")
    terminate_like_ctrl_c()
    console = make_console()
    base = dft_settings(
        max_scf=max_scf,
        smearing_K=smearing_K,
        threads=threads,
        dft_command=dft_command,
        basis_set=basis_set,
        pseudopotential_dir=pseudopotential_dir,
        pseudopotential=pseudopotential,
        scratch=scratch,
    )
    spins = [False, True] if both_spins else ([] if spin is None else [spin])
    outcome = recompute_dft(
        trajectory,
        calculator,
        base,
        csv,
        cutoffs=cutoff or [],
        functionals=functional or [],
        spins=spins,
        scf_convergences=scf_convergence or [],
        reference_setting=reference_setting,
        log=lambda line: console.print(line, markup=False, highlight=False),
    )
    names = [s.setting for s in outcome.summaries]
    short = dict(zip(names, short_names(names), strict=True))
    short[FILE_REFERENCE] = FILE_REFERENCE
    common = shared_words(names)
    summary = Table(
        "setting", "frames", "refused", "mean |ΣF|", "max |ΣF|", "SCF steps", "wall s",
        title="per setting (eV/Å; means over frames)",
        caption=f"every setting: {common}" if common else None,
    )  # fmt: skip
    for s in outcome.summaries:
        summary.add_row(
            short[s.setting],
            str(s.n_ok),
            str(s.n_refused),
            f"{s.net_force_mean_eV_per_A:.3g}",
            f"{s.net_force_max_eV_per_A:.3g}",
            f"{s.scf_steps_mean:.1f}",
            f"{s.wall_s_mean:.1f}",
        )
    console.print(summary)
    table = Table(
        "setting", "against", "frames", "RMS |ΔF|", "max |ΔF|", "mean ΔE/atom", "spread ΔE/atom",
        title="force differences (eV/Å, eV/atom)",
    )  # fmt: skip
    for d in outcome.differences:
        table.add_row(
            short.get(d.setting, d.setting),
            short.get(d.against, d.against),
            str(d.n_frames),
            f"{d.force_rms_eV_per_A:.3g}",
            f"{d.force_max_eV_per_A:.3g}",
            f"{d.energy_mean_diff_eV_per_atom:+.3g}",
            f"{d.energy_spread_eV_per_atom:.3g}",
        )
    console.print(table)
    console.print(
        f"{outcome.computed} computed, {outcome.skipped} found in {outcome.csv}, "
        f"{outcome.refused} refused; differences: {outcome.differences_csv}"
    )
    if plot and outcome.summaries:
        from scalms.hpc.recompute import short_names
        from scalms.plots.hpc import save_recompute_figure

        path = outcome.csv.with_suffix(".png")
        labels = short_names([s.setting for s in outcome.summaries])
        save_recompute_figure(outcome.differences, outcome.summaries, labels, path)
        console.print(f"figure: {path}")
