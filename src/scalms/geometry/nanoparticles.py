"""Nanoparticles (or bulk cells) built, alloyed and melted: the parent's side of
``scalms geometry nanoparticle|bulk|resume``, composing the pieces that each do one thing:

- :mod:`scalms.geometry.plan`: what is built (Wulff cuts, supercells, solutes), checked to fit
  in memory before anything is written;
- :mod:`scalms.geometry.workdir`: the output folder and its files, each written atomically;
- :mod:`scalms.dynamics`: the melt (TorchSim batches every particle together, ASE is the
  fallback), so a killed melt resumes exactly;
- :mod:`scalms.geometry.melt`: whether each particle melted.

The output folder has one writer: every command here holds its lock
(:class:`scalms.files.WorkDirLock`) from start to end, so a second command on it is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.files import WorkDirLock
from scalms.geometry.melt import MeltCheck, MeltProtocol, check_melt, final_stage
from scalms.geometry.plan import (
    TABLE_HEADER,
    Particle,
    SoluteRequest,
    plan_bulk,
    plan_nanoparticles,
    table_rows,
)
from scalms.geometry.workdir import (
    Layout,
    read_manifest,
    write_manifest,
    write_structure,
    write_table,
)
from scalms.workers.fanout import Reporter

__all__ = [
    "TABLE_HEADER",
    "GeometryRun",
    "build_bulk",
    "build_nanoparticles",
    "finish",
    "resume",
    "start",
    "table_rows",
]


def _melt_entry(model: str | None, model_config: Path, protocol: MeltProtocol | None):
    """The config entry of the model that melts; None when nothing melts."""
    if protocol is None:
        return None
    if model is None:
        raise ScalmsError("melting needs a model: pass --model NAME (or --no-melt to only build)")
    from scalms.config import load_config

    (entry,) = load_config(model_config).select([model])
    return entry


def build_nanoparticles(
    out: Path,
    sizes: list[int],
    *,
    element: str = "Ga",
    surface_energies: Path | None = None,
    bulk: Path | None = None,
    rounding: str = "closest",
    vacuum_A: float = 10.0,
    solutes: SoluteRequest | None = None,
    protocol: MeltProtocol | None = None,
    model: str | None = None,
    model_config: Path = Path("model_config.yaml"),
    backend: str = "auto",
    device: str = "auto",
    max_batch_atoms: int | None = None,
    seed: int = 0,
    timeout_s: float | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> GeometryRun:
    """Cut Wulff particles of about each of ``sizes`` atoms from ``element``'s crystal (or the
    cell in the file ``bulk``), add ``solutes``, melt them with ``model`` under ``protocol``
    (None: only build) and write everything into ``out``."""
    from scalms.geometry.crystals import (
        bulk_crystal,
        read_surface_energies,
        shipped_surface_energies,
    )
    from scalms.io.structures import read_frames

    solutes = solutes or SoluteRequest()
    entry = _melt_entry(model, model_config, protocol)
    crystal = read_frames(bulk)[0] if bulk else bulk_crystal(element)
    energies = (
        read_surface_energies(surface_energies, element)
        if surface_energies
        else shipped_surface_energies(element)
    )
    crystals, particles = plan_nanoparticles(
        sizes, crystal, energies, solutes, rounding=rounding, vacuum_A=vacuum_A, seed=seed
    )
    request = {
        "kind": "nanoparticle",
        "sizes": list(sizes),
        "element": element,
        "surface_energies": energies.describe(),
        "bulk": str(bulk) if bulk else f"{element} (shipped)",
        "rounding": rounding,
        "vacuum_A": vacuum_A,
        "seed": seed,
    }
    return start(
        out,
        crystals,
        particles,
        request,
        protocol=protocol,
        entry=entry,
        solutes=solutes,
        backend=backend,
        device=device,
        max_batch_atoms=max_batch_atoms,
        timeout_s=timeout_s,
        overwrite=overwrite,
        reporter=reporter,
    )


def build_bulk(
    out: Path,
    repeat: tuple[int, int, int],
    *,
    element: str = "Ga",
    bulk: Path | None = None,
    solutes: SoluteRequest | None = None,
    protocol: MeltProtocol | None = None,
    model: str | None = None,
    model_config: Path = Path("model_config.yaml"),
    device: str = "auto",
    seed: int = 0,
    timeout_s: float | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> GeometryRun:
    """A periodic supercell of ``element``'s crystal (or of the cell in ``bulk``), repeated
    ``repeat`` times, alloyed and melted under NPT with TorchSim (None ``protocol``: only built)."""
    from scalms.geometry.crystals import bulk_crystal
    from scalms.io.structures import read_frames

    solutes = solutes or SoluteRequest()
    entry = _melt_entry(model, model_config, protocol)
    crystal = read_frames(bulk)[0] if bulk else bulk_crystal(element)
    crystals, particles = plan_bulk(crystal, repeat, solutes, seed)
    request = {"kind": "bulk", "repeat": list(repeat), "element": element, "seed": seed}
    return start(
        out,
        crystals,
        particles,
        request,
        protocol=protocol,
        entry=entry,
        solutes=solutes,
        backend="torchsim",  # NPT runs in TorchSim only
        device=device,
        timeout_s=timeout_s,
        overwrite=overwrite,
        reporter=reporter,
    )


@dataclass
class GeometryRun:
    layout: Layout
    particles: list[Particle]
    melt: Any = None  # scalms.dynamics.run.DynamicsRun, when melted
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.melt is not None and self.melt.failed) or any(
            p.final is None for p in self.particles
        )


def start(
    out: Path,
    crystals: dict[str, Atoms],
    particles: list[Particle],
    request: dict[str, Any],
    *,
    protocol: MeltProtocol | None,
    entry: ModelEntry | None,
    solutes: SoluteRequest,
    backend: str = "auto",
    device: str = "auto",
    max_batch_atoms: int | None = None,
    timeout_s: float | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> GeometryRun:
    """Write the crystals, melt them with ``entry`` (unless ``protocol`` is None), finish."""
    from scalms.devices import check_device

    if protocol is not None:
        check_device(device)
        if entry is None:
            raise ScalmsError("melting needs a model: pass --model, or --no-melt to only build")
    layout = Layout(Path(out))
    with WorkDirLock(layout.root, f"scalms geometry {request.get('kind', 'nanoparticle')}"):
        if layout.manifest.exists():
            if not overwrite:
                raise ScalmsError(
                    f"{layout.root} already holds a geometry run; finish it with "
                    f"`scalms geometry resume {layout.root}`, or pass --overwrite to start again"
                )
            layout.clear()
        for label, atoms in crystals.items():
            write_structure(layout.crystal(label), atoms)
        manifest = {
            "request": request,
            "protocol": protocol.to_dict() if protocol else None,
            "model": entry.to_dict() if entry else None,
            "solutes": asdict(solutes),
            "crystals": list(crystals),
            "particles": [asdict(p) for p in particles],
            "backend": backend,
            "device": device,
            "max_batch_atoms": max_batch_atoms,
        }
        write_manifest(layout, manifest)
        run = GeometryRun(layout, particles)
        if protocol is not None:
            from scalms.dynamics.analyses import AnalysisRequest
            from scalms.dynamics.run import start_dynamics

            run.melt = start_dynamics(
                [layout.crystal(label) for label in crystals],
                [entry],
                layout.melt,
                protocol.settings(),
                analyses=AnalysisRequest().to_dict(),  # energy and temperature plots, a report
                backend=backend,
                device=device,
                max_batch_atoms=max_batch_atoms,
                timeout_s=timeout_s,
                reporter=reporter,
            )
        return finish(layout, manifest, run)


def resume(
    out: Path, *, timeout_s: float | None = None, reporter: Reporter | None = None
) -> GeometryRun:
    """Continue an interrupted melt of ``out`` and write what it has not written yet."""
    layout = Layout(Path(out))
    if not layout.root.is_dir():
        read_manifest(layout)  # says what is missing, without making the folder for the lock
    with WorkDirLock(layout.root, "scalms geometry resume"):
        manifest = read_manifest(layout)
        particles = [Particle(**p) for p in manifest["particles"]]
        run = GeometryRun(layout, particles)
        if manifest["protocol"] is not None:
            from scalms.dynamics.run import resume_dynamics

            if not (layout.melt / "dynamics.json").exists():
                raise ScalmsError(
                    f"{layout.root} never started its melt; run `scalms geometry nanoparticle` "
                    "again"
                )
            run.melt = resume_dynamics(layout.melt, timeout_s=timeout_s, reporter=reporter)
        return finish(layout, manifest, run)


def finish(layout: Layout, manifest: dict[str, Any], run: GeometryRun) -> GeometryRun:
    """Final structures, melt checks, PDFs, table and report from whatever is complete."""
    from ase.io import read

    protocol = MeltProtocol(**manifest["protocol"]) if manifest["protocol"] else None
    solutes = SoluteRequest.from_dict(manifest["solutes"])
    seed = manifest["request"].get("seed", 0)
    melts = {}  # label -> melt trajectory, read once for the checks and the report
    if protocol is not None:
        model = manifest["model"]["name"]
        for label in manifest["crystals"]:
            trajectory = _finished_melt(layout, model, label)
            if trajectory is None:
                run.notes.append(
                    f"{label}: the melt did not finish; `scalms geometry resume` continues it"
                )
                continue
            melts[label] = trajectory
            check = check_melt(trajectory, protocol.final_steps, protocol.quench_steps)
            _record_check(run.particles, label, check)
    for particle in run.particles:
        source = particle.melted_from or particle.label
        if protocol is None:
            atoms = read(layout.crystal(source))
        elif source in melts:
            atoms = melts[source].atoms(-1)
        else:
            continue
        if particle.melted_from is not None:  # a solute added after melting
            atoms = solutes.apply(atoms, particle.solute, seed)
        atoms.calc = None  # a starting structure: the model's energy of the melt would mislead
        particle.final = str(write_structure(layout.final(particle.label), atoms))
    manifest["particles"] = [asdict(p) for p in run.particles]
    write_manifest(layout, manifest)
    write_table(layout, run.particles)
    if protocol is not None:
        _write_report(layout, manifest, run, melts, protocol)
    return run


def _finished_melt(layout: Layout, model: str, label: str):
    """The melt trajectory of ``label``, or None when it did not finish."""
    from scalms.io.results import list_runs, read_run

    results = layout.melt / "MD_dynamics_results.h5"
    done = results.exists() and any(
        r.model == model and r.structure == label and r.complete for r in list_runs(results)
    )
    return read_run(results, model, label) if done else None


def _record_check(particles: list[Particle], source: str, check: MeltCheck) -> None:
    for particle in particles:
        if (particle.melted_from or particle.label) == source:
            particle.check = check.to_dict()


def _write_report(
    layout: Layout,
    manifest: dict[str, Any],
    run: GeometryRun,
    melts: dict[str, Any],
    protocol: MeltProtocol,
) -> Path:
    """PDF of each melted particle (first frame against the final stage) and the table."""
    from scalms.analysis import pair_distribution
    from scalms.dynamics.analyses import AnalysisOutput
    from scalms.plots.pdf import save_pair_distribution
    from scalms.plots.report import FigureEntry, Table, write_report

    figures = []
    for label, trajectory in melts.items():
        if trajectory.pbc.any():  # a periodic PDF needs images: see `scalms analyze pdf`
            continue
        final = final_stage(trajectory, protocol.final_steps, protocol.quench_steps)
        curves = {
            "crystal (step 0)": pair_distribution(trajectory.positions[:1]),
            f"melted (last stage, {final.n_frames} frames)": pair_distribution(final.positions),
        }
        files = save_pair_distribution(layout.analysis / f"pdf_{label}", curves, title=label)
        figures.append(
            FigureEntry(f"PDF of {label}: the crystal and the melt", files.png, files.html)
        )
    melt_output = AnalysisOutput.load(layout.melt / "analysis")
    figures += [
        FigureEntry(
            f["caption"], layout.melt / "analysis" / f["png"], layout.melt / "analysis" / f["html"]
        )
        for f in melt_output.figures
    ]
    parameters = {
        "model": manifest["model"]["name"],
        **{f"melt {k}": v for k, v in manifest["protocol"].items()},
        "stages (steps, K)": protocol.stages(),
        **{f"request {k}": v for k, v in manifest["request"].items()},
    }
    tables = [Table("Structures", TABLE_HEADER, table_rows(run.particles))]
    if run.notes:
        tables.append(Table("Notes", ["note"], [[n] for n in run.notes]))
    return write_report(
        layout.report,
        title=f"Nanoparticles: {layout.root.name}",
        parameters=parameters,
        tables=tables,
        figures=figures,
    )
