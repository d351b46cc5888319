"""The one-page HTML report of an MD working directory: parameters, runs, tables, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalms.dynamics.analyses import AnalysisOutput
from scalms.dynamics.settings import MDSettings
from scalms.dynamics.workdir import WorkDir


def write_workdir_report(
    wd: WorkDir, manifest: dict[str, Any], output: AnalysisOutput | None = None
) -> Path:
    """Write ``wd.report`` from the manifest, the runs' states and the analysis index."""
    from scalms.dynamics.run import statuses
    from scalms.plots.report import FigureEntry, Table, write_report

    output = output or AnalysisOutput.load(wd.analysis)
    settings = manifest["settings"]
    used = MDSettings.from_dict(settings)
    parameters = {
        **{key: value for key, value in settings.items()},
        # None in the settings means "the default": show the time constant the run used
        "thermostat_time_fs": used.thermostat_fs if used.ensemble != "nve" else None,
        "barostat_time_fs": used.barostat_fs if used.ensemble.startswith("npt") else None,
        "models": ", ".join(m["name"] for m in manifest["models"]),
        "structures": ", ".join(s["label"] for s in manifest["structures"]),
        "backend requested": manifest.get("backend"),
        "device": manifest.get("device"),
        "scalms": manifest.get("scalms_version"),
        "started": manifest.get("created"),
    }
    runs = Table(
        caption="Runs",
        header=["model", "structure", "backend", "frames", "complete", "note"],
        rows=[
            [
                s.model,
                s.structure,
                s.backend,
                f"{s.n_frames}/{s.expected_frames}",
                s.complete,
                s.note,
            ]
            for s in statuses(wd, manifest)
        ],
    )
    tables = [runs] + [Table(t["caption"], t["header"], t["rows"]) for t in output.tables]
    if output.notes:
        tables.append(Table("Analysis notes", ["note"], [[note] for note in output.notes]))
    figures = [
        FigureEntry(
            caption=f["caption"],
            png=wd.analysis / f["png"] if f.get("png") else None,
            html=wd.analysis / f["html"] if f.get("html") else None,
        )
        for f in output.figures
    ]
    return write_report(
        wd.report,
        title=f"MD run: {wd.root.name}",
        parameters=parameters,
        tables=tables,
        figures=figures,
    )
