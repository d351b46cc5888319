"""Static evaluation of structures with many models: the parent's side of ``scalms static``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalms.config import ModelEntry
from scalms.devices import check_device
from scalms.errors import ScalmsError
from scalms.io.static_results import ResultsFile
from scalms.io.structures import check_readable
from scalms.workers.fanout import ModelOutcome, Reporter, run_models
from scalms.workers.task import Task


def backends_for(choice: str) -> list[str]:
    # ASE first: where TorchSim then fails, the ASE run is kept.
    return ["ase", "torchsim"] if choice == "both" else [choice]


def work_dir_for(out: Path) -> Path:
    """Where the children of a run keep their task, log and own result: beside ``out``."""
    return out.parent / f"{out.stem}_runs"


@dataclass
class StaticRun:
    out: Path
    outcomes: list[ModelOutcome]

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]


def run_static(
    structures: list[Path],
    entries: list[ModelEntry],
    out: Path,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    max_batch_atoms: int | None = None,
    timeout_s: float | None = None,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> StaticRun:
    """Evaluate every frame of ``structures`` with each model; write one HDF5 file ``out``.

    Each model runs in a child in its own environment. The results file gains each model's
    runs as soon as that model finishes, and is marked complete (with the failed models named)
    at the end; an interrupted run leaves a readable file marked incomplete. An existing ``out``
    is replaced only with ``overwrite``, so earlier results are never lost by accident.
    """
    check_device(device)
    sources = check_readable(structures)
    out = Path(out)
    if out.exists() and not overwrite:
        raise ScalmsError(f"{out} exists; pass --overwrite to replace it, or choose another --out")
    workdir = work_dir_for(out)
    params = {
        "structures": [{"label": s.label, "path": str(s.path.absolute())} for s in sources],
        "backends": backends_for(backend),
        "max_batch_atoms": max_batch_atoms,
    }

    def make_task(entry: ModelEntry, model_dir: Path) -> Task:
        return Task("static", entry, (model_dir / "result.h5").absolute(), device, seed, params)

    try:
        results = ResultsFile(out)
    except OSError as err:
        raise ScalmsError(f"cannot write the results file {out}: {err}") from None
    outcomes: list[ModelOutcome] = []
    try:
        outcomes = run_models(
            entries,
            make_task,
            workdir,
            on_result=lambda outcome: results.add_run_file(outcome.output),
            reporter=reporter,
            timeout_s=timeout_s,
        )
    finally:
        # On an interruption this still closes the file, leaving complete=False.
        failed = [o.model for o in outcomes if not o.ok]
        if len(outcomes) == len(entries):
            results.close(failed)
        else:
            results.abandon()
    return StaticRun(out, outcomes)


@dataclass
class SummaryRow:
    run: str
    structure: str
    backend: str
    n_frames: int
    n_atoms: str
    energy_per_atom_eV: float
    max_force_eV_per_A: float
    load_time_s: float
    compute_time_s: float


Results = dict[str, dict[str, list]]
"""``{run: {structure: [Atoms]}}`` as :func:`scalms.io.static_results.read_results` gives."""


def summarize(results: Results, attrs: dict[str, dict]) -> list[SummaryRow]:
    """One row per run and structure: mean energy per atom and the largest force.

    ``results`` and ``attrs`` are a results file as read by ``read_results`` and
    ``read_run_attrs``.
    """
    import numpy as np

    rows = []
    for run, structures in results.items():
        for label, frames in structures.items():
            sizes = sorted({len(a) for a in frames})
            energies = [a.get_potential_energy() / len(a) for a in frames]
            max_force = max(float(np.linalg.norm(a.get_forces(), axis=1).max()) for a in frames)
            rows.append(
                SummaryRow(
                    run=run,
                    structure=label,
                    backend=str(attrs[run].get("backend", "")),
                    n_frames=len(frames),
                    n_atoms="/".join(map(str, sizes)),
                    energy_per_atom_eV=float(np.mean(energies)),
                    max_force_eV_per_A=max_force,
                    load_time_s=float(attrs[run]["load_time_s"]),
                    compute_time_s=float(attrs[run]["compute_time_s"]),
                )
            )
    return rows


@dataclass
class BackendAgreement:
    model: str
    structure: str
    max_energy_diff_eV_per_atom: float
    max_force_diff_eV_per_A: float
    max_stress_diff_eV_per_A3: float | None
    """None when no frame of the structure is periodic."""


def compare_backends(results: Results) -> list[BackendAgreement]:
    """For models run with both backends: how far TorchSim and ASE are apart."""
    import numpy as np

    rows = []
    for run, structures in results.items():
        model, _, backend = run.partition("@")
        if backend != "torchsim" or f"{model}@ase" not in results:
            continue
        for label, frames in structures.items():
            others = results[f"{model}@ase"][label]
            de = max(
                abs(a.get_potential_energy() - b.get_potential_energy()) / len(a)
                for a, b in zip(frames, others, strict=True)
            )
            df = max(
                float(np.abs(a.get_forces() - b.get_forces()).max())
                for a, b in zip(frames, others, strict=True)
            )
            stress_diffs = [
                float(np.abs(a.get_stress() - b.get_stress()).max())
                for a, b in zip(frames, others, strict=True)
                if "stress" in a.calc.results
            ]
            ds = max(stress_diffs) if stress_diffs else None
            rows.append(BackendAgreement(model, label, de, df, ds))
    return rows
