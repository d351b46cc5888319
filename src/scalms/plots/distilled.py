"""The distilled model beside its teacher: Ga mean squared displacement, temperature of the NVT
runs, and time per MD step against particle size (records in, one figure out)."""

from __future__ import annotations

from typing import Any

from scalms.plots._style import cycle_colour, new_figure


def distilled_comparison(record: dict[str, Any]):
    """``record``: what benchmarks/distilled_model.py writes (msd, stability, s_per_step)."""
    teacher, student = record["teacher"], record["student"]
    colors = {teacher: cycle_colour(0), student: cycle_colour(1)}
    fig = new_figure(15, 4.2)
    msd_ax, temp_ax, speed_ax = fig.subplots(1, 3)

    for label, curve in record["msd"].items():
        model = student if label.startswith(student) else teacher
        whole = label != model
        msd_ax.plot(
            curve["lag_fs"],
            curve["msd_A2"],
            color=colors[model],
            linestyle=":" if whole else "-",
            label=f"{label}: D = {curve['D_cm2_per_s']:.2e} cm²/s ({curve['window_ps']:.0f} ps)",
        )
    msd_ax.set(xlabel="lag time [fs]", ylabel="Ga MSD [Å²]", title="Ga diffusion, 450 K")
    msd_ax.legend(fontsize=8)

    for model, run in record["stability"].items():
        temp_ax.plot(run["time_ps"], run["temperature_K"], color=colors[model], lw=0.8,
                     label=f"{model}: {run['temperature_K_mean']:.0f} ± "
                     f"{run['temperature_K_std']:.0f} K")  # fmt: skip
    temp_ax.set(xlabel="time [ps]", ylabel="temperature [K]", title="NVT (Langevin), 450 K")
    temp_ax.legend(fontsize=8)

    sizes = sorted(record["s_per_step"], key=int)
    atoms = [int(n) for n in sizes]
    for model in (teacher, student):
        speed_ax.plot(atoms, [record["s_per_step"][n][model] for n in sizes], "o-",
                      color=colors[model], label=model)  # fmt: skip
    for n in sizes:
        where = (int(n), record["s_per_step"][n][student])
        speed_ax.annotate(f"{record['speedup'][n]:.1f}× faster", where,
                          textcoords="offset points", xytext=(-20, -14), fontsize=8)  # fmt: skip
    speed_ax.set(xlabel="atoms", ylabel="s per MD step, 2 CPU cores", yscale="log",
                 title="Cost per MD step (ASE)")  # fmt: skip
    speed_ax.legend(fontsize=8)
    return fig
