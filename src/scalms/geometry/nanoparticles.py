"""Nanoparticles (or bulk cells) built, alloyed and melted: the parent's side of
``scalms geometry nanoparticle|bulk|resume``.

Layout of the output folder::

    OUT/
      geometry.json            what was asked and what was built; read by resume
      crystals/<label>.extxyz  the cut crystals (with their solutes when added before melting)
      melt/                    the MD working dir of the melt (``scalms dynamics`` layout)
      <label>.extxyz           the final structures: the last melted frame, solutes added after
      particles.csv            label, target and actual atom count, composition, melt checks
      analysis/                PDF of each particle, crystal against melted
      report.html

Building needs no model; melting runs one model through ``scalms.dynamics`` (TorchSim batches
every particle together, ASE is the fallback), so a killed melt resumes exactly.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.geometry.alloy import formula_label, substitute
from scalms.geometry.crystals import SurfaceEnergies
from scalms.geometry.melt import MeltCheck, MeltProtocol, check_melt
from scalms.workers.fanout import Reporter

MANIFEST = "geometry.json"
ORDERS = ("before", "after")


@dataclass(frozen=True)
class SoluteRequest:
    """Solute elements, one structure each, as a fraction of the host atoms or a count."""

    elements: tuple[str, ...] = ()
    fraction: float | None = None
    count: int | None = None
    order: str = "before"
    host: str = "Ga"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ScalmsError(f"unknown order '{self.order}'; use before or after")
        if self.elements and (self.fraction is None) == (self.count is None):
            raise ScalmsError("with --solute give either --fraction or --count")
        if len(set(self.elements)) != len(self.elements):
            raise ScalmsError(f"a solute is listed twice: {list(self.elements)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoluteRequest:
        return cls(**{**data, "elements": tuple(data["elements"])})

    def apply(self, atoms: Atoms, element: str, seed: int) -> Atoms:
        return substitute(
            atoms, element, fraction=self.fraction, count=self.count, host=self.host, seed=seed
        )


@dataclass
class Particle:
    """One structure of the run: where it came from and what became of it."""

    label: str
    target_atoms: int | None  # None for bulk cells
    n_atoms: int
    composition: str
    solute: str | None = None
    melted_from: str | None = None  # for solutes added after: the melted host structure
    facets: dict[str, float] = field(default_factory=dict)  # Miller -> area fraction
    check: dict[str, Any] | None = None
    final: str | None = None  # path of the final structure, once written


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def crystals(self) -> Path:
        return self.root / "crystals"

    @property
    def melt(self) -> Path:
        return self.root / "melt"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    def crystal(self, label: str) -> Path:
        return self.crystals / f"{label}.extxyz"

    def final(self, label: str) -> Path:
        return self.root / f"{label}.extxyz"


def in_vacuum(atoms: Atoms, vacuum_A: float) -> Atoms:
    """A copy centred in a box with ``vacuum_A`` on every side, without periodicity."""
    boxed = atoms.copy()
    boxed.pbc = False
    boxed.center(vacuum=vacuum_A)
    return boxed


def _unique_label(label: str, taken: set[str]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label}_{n}", n + 1
    return candidate


def plan_nanoparticles(
    sizes: list[int],
    bulk: Atoms,
    energies: SurfaceEnergies,
    solutes: SoluteRequest,
    *,
    rounding: str = "closest",
    vacuum_A: float = 10.0,
    seed: int = 0,
) -> tuple[dict[str, Atoms], list[Particle]]:
    """Crystals to melt (label -> Atoms) and every particle the run will give."""
    from scalms.geometry.wulff import wulff_particle

    crystals: dict[str, Atoms] = {}
    particles: list[Particle] = []
    for size in sizes:
        cut = wulff_particle(bulk, energies, size, rounding=rounding)
        crystal = in_vacuum(cut.atoms, vacuum_A)
        facets = {"".join(map(str, f.miller)): round(f.area_fraction, 4) for f in cut.facets}
        variants = [(None, crystal)]
        if solutes.elements and solutes.order == "before":
            variants = [(el, solutes.apply(crystal, el, seed)) for el in solutes.elements]
        for solute, atoms in variants:
            label = _unique_label(formula_label(atoms), set(crystals))
            crystals[label] = atoms
            particles.append(
                Particle(
                    label, size, len(atoms), atoms.get_chemical_formula(), solute, None, facets
                )
            )
        if solutes.elements and solutes.order == "after":
            host_label = particles[-1].label
            for element in solutes.elements:
                alloyed = solutes.apply(crystal, element, seed)  # for the name and count only
                label = _unique_label(formula_label(alloyed), set(crystals) | _labels(particles))
                particles.append(
                    Particle(
                        label,
                        size,
                        len(alloyed),
                        alloyed.get_chemical_formula(),
                        element,
                        host_label,
                        facets,
                    )
                )
    return crystals, particles


def plan_bulk(
    bulk: Atoms, repeat: tuple[int, int, int], solutes: SoluteRequest, seed: int = 0
) -> tuple[dict[str, Atoms], list[Particle]]:
    """A periodic supercell of ``bulk`` (and its alloys, solutes added before melting only)."""
    if solutes.elements and solutes.order == "after":
        raise ScalmsError("bulk cells take their solutes before melting (--order before)")
    cell = bulk.repeat(repeat)
    cell.pbc = True
    variants = [(None, cell)]
    if solutes.elements:
        variants = [(el, solutes.apply(cell, el, seed)) for el in solutes.elements]
    crystals, particles = {}, []
    for solute, atoms in variants:
        label = f"{formula_label(atoms)}_bulk"
        crystals[label] = atoms
        particles.append(Particle(label, None, len(atoms), atoms.get_chemical_formula(), solute))
    return crystals, particles


def _labels(particles: list[Particle]) -> set[str]:
    return {p.label for p in particles}


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
    from ase.io import write

    from scalms.evaluate import check_device

    layout = Layout(Path(out))
    if layout.manifest.exists():
        if not overwrite:
            raise ScalmsError(
                f"{layout.root} already holds a geometry run; finish it with "
                f"`scalms geometry resume {layout.root}`, or pass --overwrite to start again"
            )
        for sub in ("crystals", "melt", "analysis"):
            shutil.rmtree(layout.root / sub, ignore_errors=True)
    if protocol is not None:
        check_device(device)
        if entry is None:
            raise ScalmsError("melting needs a model: pass --model, or --no-melt to only build")
    layout.crystals.mkdir(parents=True, exist_ok=True)
    for label, atoms in crystals.items():
        write(layout.crystal(label), atoms, format="extxyz")
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
    _write_manifest(layout, manifest)
    run = GeometryRun(layout, particles)
    if protocol is not None:
        from scalms.dynamics.analyses import AnalysisRequest
        from scalms.dynamics.run import start_dynamics

        run.melt = start_dynamics(
            [layout.crystal(label) for label in crystals],
            [entry],
            layout.melt,
            protocol.settings(),
            analyses=AnalysisRequest().to_dict(),  # energy and temperature plots, and a report
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
    manifest = read_manifest(layout)
    particles = [Particle(**p) for p in manifest["particles"]]
    run = GeometryRun(layout, particles)
    if manifest["protocol"] is not None:
        from scalms.dynamics.run import resume_dynamics

        if not (layout.melt / "dynamics.json").exists():
            raise ScalmsError(
                f"{layout.root} never started its melt; run `scalms geometry nanoparticle` again"
            )
        run.melt = resume_dynamics(layout.melt, timeout_s=timeout_s, reporter=reporter)
    return finish(layout, manifest, run)


def finish(layout: Layout, manifest: dict[str, Any], run: GeometryRun) -> GeometryRun:
    """Final structures, melt checks, PDFs, table and report from whatever is complete."""
    from ase.io import read, write

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
            _record_check(run.particles, label, check_melt(trajectory, protocol.final_steps))
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
        write(layout.final(particle.label), atoms, format="extxyz")
        particle.final = str(layout.final(particle.label))
    manifest["particles"] = [asdict(p) for p in run.particles]
    _write_manifest(layout, manifest)
    _write_table(layout, run.particles)
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


def _write_manifest(layout: Layout, manifest: dict[str, Any]) -> None:
    from scalms import __version__

    manifest.setdefault("scalms_version", __version__)
    tmp = layout.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(layout.manifest)


def read_manifest(layout: Layout) -> dict[str, Any]:
    if not layout.manifest.is_file():
        raise ScalmsError(
            f"{layout.root} is not a geometry run (no {MANIFEST}); start one with "
            "`scalms geometry nanoparticle` or `scalms geometry bulk`"
        )
    try:
        return json.loads(layout.manifest.read_text())
    except json.JSONDecodeError as err:
        raise ScalmsError(f"{layout.manifest} is damaged ({err})") from None


TABLE_HEADER = [
    "label",
    "target_atoms",
    "n_atoms",
    "composition",
    "solute",
    "solute_added",
    "final_T_K",
    "D_cm2_per_s",
    "lindemann",
    "q6_crystal",
    "q6_final",
    "liquid",
    "final",
]


def table_rows(particles: list[Particle]) -> list[list[Any]]:
    rows = []
    for p in particles:
        check = p.check or {}

        def number(key, check=check, style=".3f"):
            value = check.get(key)
            return "" if value is None else f"{value:{style}}"

        added = "" if p.solute is None else ("after melting" if p.melted_from else "before")
        rows.append(
            [
                p.label,
                p.target_atoms or "",
                p.n_atoms,
                p.composition,
                p.solute or "",
                added,
                number("temperature_K"),
                number("D_cm2_per_s", style=".2e"),
                number("lindemann"),
                number("q6_crystal"),
                number("q6_final"),
                "" if check.get("liquid") is None else check["liquid"],
                Path(p.final).name if p.final else "not written",
            ]
        )
    return rows


def _write_table(layout: Layout, particles: list[Particle]) -> None:
    with open(layout.root / "particles.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_HEADER)
        writer.writerows(table_rows(particles))


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
        final = trajectory.select(trajectory.step >= trajectory.step[-1] - protocol.final_steps)
        curves = {
            "crystal (step 0)": pair_distribution(trajectory.positions[:1]),
            f"melted (last {protocol.final_ps:g} ps)": pair_distribution(final.positions),
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
        layout.root / "report.html",
        title=f"Nanoparticles: {layout.root.name}",
        parameters=parameters,
        tables=tables,
        figures=figures,
    )
