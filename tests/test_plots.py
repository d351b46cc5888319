"""Figures and the report: each plot holds exactly the data it was given, in the units it states.

Records are built directly from synthetic arrays, so these tests do not depend on the analyses.
"""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import weakref
from colorsys import rgb_to_hls
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from scalms.analysis.results import (
    DiffusionFit,
    MeanSquaredDisplacement,
    NetForce,
    PairDistribution,
    SoluteTrace,
)
from scalms.plots import (
    FigureEntry,
    Table,
    diffusion_table,
    element_colour,
    msd_figure,
    msd_plotly,
    net_force_figure,
    net_force_plotly,
    pair_distribution_figure,
    pair_distribution_plotly,
    save_figure,
    save_msd,
    save_net_force,
    save_pair_distribution,
    save_solute_trace,
    save_thermo,
    save_trace_summary,
    solute_trace_figure,
    solute_trace_plotly,
    thermo_figure,
    thermo_plotly,
    trace_summary_figure,
    trace_summary_plotly,
    write_report,
)
from scalms.plots._style import SURFACE_COLOUR, final_frames, scientific
from scalms.plots.benchmark_accuracy import parity_box_figure
from scalms.trajectory import Trajectory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTLY_DIV = 'class="plotly-graph-div"'
N_FRAMES = 40
FRAME_FS = 50.0


def _trace(symbol="Pt", n_atoms=342, n_traced=3, seed=0, far_first_half=False) -> SoluteTrace:
    rng = np.random.default_rng(seed)
    distance = 6.0 + rng.normal(0.0, 1.0, (N_FRAMES, n_traced))
    if far_first_half:  # values no histogram of the second half may contain
        distance[: N_FRAMES // 2] = 100.0
    return SoluteTrace(
        time_fs=np.arange(N_FRAMES) * FRAME_FS,
        indices=np.arange(n_traced) * 7 + 1,
        distance_A=distance,
        surface_A=12.0 + rng.normal(0.0, 0.4, (N_FRAMES, n_traced)),
        symbol=symbol,
        n_surface=5,
        surface_elements=("Ga",),
        n_atoms=n_atoms,
    )


def _pdf(label="Ga-Pt", mode="shell", peak_A=2.7) -> PairDistribution:
    r = np.linspace(0.05, 8.0, 80)
    return PairDistribution(
        r_A=r, g=np.exp(-((r - peak_A) ** 2)), mode=mode, label=label, n_frames=10, r_max_A=8.0
    )


def _msd(n_traced=3) -> MeanSquaredDisplacement:
    lag_fs = np.arange(0.0, 2000.0, 20.0)
    per_atom = np.stack([lag_fs * 0.004 * (1.0 + 0.1 * k) for k in range(n_traced)])
    fit = DiffusionFit(
        D_cm2_per_s=5.39e-6,
        slope_A2_per_fs=3.234e-3,
        intercept_A2=0.12,
        r2=0.9987,
        fit_start_fs=100.0,
        fit_end_fs=1000.0,
    )
    return MeanSquaredDisplacement(
        lag_fs=lag_fs,
        msd_A2=per_atom.mean(axis=0),
        per_atom_A2=per_atom,
        indices=np.arange(n_traced) + 10,
        symbol="Pt",
        method="fft",
        origin_stride=1,
        fit=fit,
        per_atom_fit=(fit,) * n_traced,
    )


def _net_force(scale=1e-5, seed=0) -> NetForce:
    rng = np.random.default_rng(seed)
    vector = rng.normal(0.0, scale, (N_FRAMES, 3))
    return NetForce(
        time_fs=np.arange(N_FRAMES) * FRAME_FS,
        vector_eV_per_A=vector,
        magnitude_eV_per_A=np.linalg.norm(vector, axis=1),
    )


def _trajectory(**observables) -> Trajectory:
    n_atoms = 4
    return Trajectory(
        positions=np.zeros((N_FRAMES, n_atoms, 3)),
        numbers=np.full(n_atoms, 31),
        masses=np.full(n_atoms, 69.723),
        cell=np.zeros((N_FRAMES, 3, 3)),
        pbc=np.zeros(3, dtype=bool),
        step=np.arange(N_FRAMES) * 50,
        time_fs=np.arange(N_FRAMES) * FRAME_FS,
        time_step_fs=1.0,
        save_interval=50,
        model="mace-omat",
        structure="Ga342Pt3",
        **observables,
    )


def _density(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(samples, bins=edges, density=True)[0]


# --- shared look ---------------------------------------------------------------------------


def test_element_colours_are_fixed_distinct_from_the_surface_and_readable_on_white():
    solutes = ["Ga", "Pt", "Pd", "Ag", "Au", "Bi"]
    colours = [element_colour(symbol) for symbol in solutes]
    assert len(set(colours)) == len(solutes)
    assert SURFACE_COLOUR not in colours
    # jmol's white hydrogen would vanish on a white background: darkened
    assert rgb_to_hls(*to_rgb(element_colour("H")))[1] < 0.46


def test_an_element_keeps_its_colour_in_every_figure_whatever_else_the_figure_holds():
    """Pt is drawn alone, then after other elements (a colour taken from a cycle in order of
    appearance would change): the same colour, in a trace summary and a parity plot alike."""

    def solute_colour(ax) -> str:  # the summary cell's solute histogram (the surface is first)
        return to_hex(ax.patches[1].get_facecolor(), keep_alpha=False)

    alone = trace_summary_figure([_trace("Pt", 342)]).axes
    among = trace_summary_figure([_trace(s, 342, seed=k) for k, s in enumerate(("Au", "Bi", "Pt"))])
    au, bi, pt = (solute_colour(ax) for ax in among.axes)
    assert solute_colour(alone[0]) == pt == element_colour("Pt")
    assert len({au, bi, pt}) == 3

    stats = SimpleNamespace(n=6, mae=0.0, rmse=0.0, r2=1.0)

    def scatter_colours(numbers) -> dict[int, str]:
        forces = np.arange(3.0 * len(numbers)).reshape(-1, 3)
        ax = parity_box_figure(forces, forces, np.array(numbers), stats, model="m").axes[0]
        return {
            z: to_hex(c.get_facecolor()[0], keep_alpha=False)
            for z, c in zip(sorted(set(numbers)), ax.collections, strict=True)
        }

    with_ga, with_au = scatter_colours([31, 78]), scatter_colours([78, 79])
    assert with_ga[78] == with_au[78] == element_colour("Pt")
    assert with_ga[31] == element_colour("Ga") and with_au[79] == element_colour("Au")


def test_final_frames_selects_the_last_fraction_and_at_least_one_frame():
    assert final_frames(40, 0.5) == slice(20, None)
    assert final_frames(40, 1.0) == slice(0, None)
    assert final_frames(3, 0.01) == slice(2, None)
    with pytest.raises(ValueError, match="final_fraction"):
        final_frames(40, 0.0)


def test_scientific_notation_of_D_rounds_into_the_next_decade():
    assert scientific(5.391e-6) == ("5.39", -6)
    assert scientific(9.9996e-6) == ("1.00", -5)
    assert scientific(-2.5e-7) == ("-2.50", -7)


# --- pair distribution ---------------------------------------------------------------------


def test_pdf_figure_overlays_each_curve_under_its_name_with_the_mode_on_the_y_axis():
    curves = {"mace Ga-Ga": _pdf("Ga-Ga", peak_A=2.8), "mace Pt-Ga": _pdf("Pt-Ga", peak_A=2.6)}
    ax = pair_distribution_figure(curves).axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    for line, pdf in zip(lines, curves.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), pdf.r_A)
        np.testing.assert_array_equal(line.get_ydata(), pdf.g)
    assert ax.get_ylabel() == "g(r) per shell volume [1/Å³]"
    assert ax.get_xlabel() == "r [Å]"

    fig = pair_distribution_plotly(curves)
    assert [trace.name for trace in fig.data] == list(curves)
    np.testing.assert_array_equal(fig.data[1].y, curves["mace Pt-Ga"].g)
    assert fig.layout.yaxis.title.text == "g(r) per shell volume [1/Å³]"


def test_pdf_pair_fraction_mode_says_so_and_curves_default_to_their_own_labels():
    pdfs = [_pdf("all", mode="pair-fraction"), _pdf("Ga-Pt", mode="pair-fraction")]
    ax = pair_distribution_figure(pdfs).axes[0]
    assert ax.get_ylabel() == "pair fraction per bin"
    assert [line.get_label() for line in ax.get_lines()] == ["all", "Ga-Pt"]
    assert pair_distribution_plotly(pdfs).layout.yaxis.title.text == "pair fraction per bin"


def test_pdf_refuses_to_overlay_two_normalisation_modes_on_one_axis():
    with pytest.raises(ValueError, match="modes"):
        pair_distribution_figure([_pdf(mode="shell"), _pdf(mode="pair-fraction")])


# --- solute trace --------------------------------------------------------------------------


def test_solute_trace_draws_a_surface_and_a_distance_line_per_atom_against_time_in_ps():
    trace = _trace(n_traced=3)
    fig = solute_trace_figure(trace)
    ax, ax_hist = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2 * len(trace.indices)  # atoms + their surfaces, nothing else
    surfaces, atoms = lines[:3], lines[3:]
    time_ps = trace.time_fs / 1000.0
    for j, (surface, atom) in enumerate(zip(surfaces, atoms, strict=True)):
        np.testing.assert_allclose(surface.get_xdata(), time_ps)
        np.testing.assert_array_equal(surface.get_ydata(), trace.surface_A[:, j])
        assert surface.get_color() == SURFACE_COLOUR
        np.testing.assert_array_equal(atom.get_ydata(), trace.distance_A[:, j])
        assert atom.get_label() == f"Pt {trace.indices[j]}"
        assert surface.get_zorder() < atom.get_zorder()  # surfaces behind
    assert ax.get_xlabel() == "time [ps]"
    assert "[Å]" in ax.get_ylabel()
    assert len(ax_hist.patches) == 2  # surface and solute distributions

    plotly_fig = solute_trace_plotly(trace)
    names = [t.name for t in plotly_fig.data]
    assert names[:6] == [f"surface at Pt {i}" for i in trace.indices] + [
        f"Pt {i}" for i in trace.indices
    ]
    np.testing.assert_allclose(plotly_fig.data[3].x, time_ps)
    np.testing.assert_array_equal(plotly_fig.data[4].y, trace.distance_A[:, 1])
    assert [t.type for t in plotly_fig.data[6:]] == ["bar", "bar"]


def test_solute_trace_histograms_hold_only_the_final_fraction_of_the_run():
    trace = _trace(far_first_half=True)
    second_half = slice(N_FRAMES // 2, None)
    _, ax_hist = solute_trace_figure(trace, final_fraction=0.5).axes
    surface, solute = (patch.get_data() for patch in ax_hist.patches)
    assert solute.edges[-1] < 100.0  # the first half's 100 Å is outside every bin
    np.testing.assert_allclose(solute.values, _density(trace.distance_A[second_half], solute.edges))
    np.testing.assert_allclose(
        surface.values, _density(trace.surface_A[second_half], surface.edges)
    )

    bars = solute_trace_plotly(trace, final_fraction=0.5).data[-1]
    assert bars.name == "Pt, last 50%"
    np.testing.assert_allclose(bars.x, solute.values)


def test_trace_summary_grid_has_a_row_per_solute_and_a_column_per_size():
    traces = [_trace("Pt", 342), _trace("Pt", 653, seed=1), _trace("Bi", 342, seed=2)]
    fig = trace_summary_figure(traces, final_fraction=0.5)
    assert len(fig.axes) == 4  # rows Bi, Pt; columns 342, 653
    (bi_342, bi_653), (pt_342, pt_653) = np.reshape(fig.axes, (2, 2))
    assert [bi_342.get_title(), bi_653.get_title()] == ["342 atoms", "653 atoms"]
    assert bi_342.get_ylabel().startswith("Bi") and pt_342.get_ylabel().startswith("Pt")
    assert [text.get_text() for text in bi_653.texts] == ["no run"]
    surface, solute = (patch.get_data() for patch in pt_653.patches)
    half = slice(N_FRAMES // 2, None)
    np.testing.assert_allclose(solute.values, _density(traces[1].distance_A[half], solute.edges))
    np.testing.assert_allclose(surface.values, _density(traces[1].surface_A[half], surface.edges))

    plotly_fig = trace_summary_plotly(traces)
    assert [t.name for t in plotly_fig.data] == [
        "surface Bi 342",
        "Bi 342",
        "surface Pt 342",
        "Pt 342",
        "surface Pt 653",
        "Pt 653",
    ]
    np.testing.assert_allclose(plotly_fig.data[-1].y, solute.values)
    assert [a.text for a in plotly_fig.layout.annotations if a.text == "no run"] == ["no run"]


def test_trace_summary_max_com_distance_gives_every_cell_the_same_x_range():
    traces = [_trace("Pt", 342), _trace("Pt", 653, seed=1), _trace("Au", 987, seed=2)]
    fig = trace_summary_figure(traces, max_com_distance_A=20.0)
    drawn = [ax for ax in fig.axes if ax.patches]
    assert len(drawn) == 3
    for ax in drawn:
        assert ax.get_xlim() == (0.0, 20.0)
        assert ax.patches[0].get_data().edges[[0, -1]].tolist() == [0.0, 20.0]
    plotly_fig = trace_summary_plotly(traces, max_com_distance_A=20.0)
    for row, col in [(1, 3), (2, 1), (2, 2)]:  # Au 987, Pt 342, Pt 653
        assert tuple(plotly_fig.get_subplot(row, col).xaxis.range) == (0.0, 20.0)


def test_trace_summary_pools_replicas_of_the_same_solute_and_size_into_one_cell():
    replicas = [_trace("Pt", 342, seed=0), _trace("Pt", 342, seed=5)]
    (ax,) = trace_summary_figure(replicas).axes
    solute = ax.patches[1].get_data()
    half = slice(N_FRAMES // 2, None)
    pooled = np.concatenate([r.distance_A[half].ravel() for r in replicas])
    np.testing.assert_allclose(solute.values, _density(pooled, solute.edges))


# --- diffusion -----------------------------------------------------------------------------


def test_msd_figure_fit_line_has_the_fit_records_slope_over_its_window_in_ps():
    msd = _msd(n_traced=3)
    ax = msd_figure(msd).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3 + 2  # per atom, mean, fit
    lag_ps = msd.lag_fs / 1000.0
    for j in range(3):
        np.testing.assert_allclose(lines[j].get_xdata(), lag_ps)
        np.testing.assert_array_equal(lines[j].get_ydata(), msd.per_atom_A2[j])
    mean, fit = lines[3], lines[4]
    np.testing.assert_array_equal(mean.get_ydata(), msd.msd_A2)
    assert mean.get_linewidth() > lines[0].get_linewidth()
    x, y = np.asarray(fit.get_xdata()), np.asarray(fit.get_ydata())
    np.testing.assert_allclose(x[[0, -1]], [0.1, 1.0])  # the window, in ps
    np.testing.assert_allclose((y[-1] - y[0]) / (x[-1] - x[0]), msd.fit.slope_A2_per_fs * 1000)
    np.testing.assert_allclose(y[0], msd.fit.slope_A2_per_fs * 100.0 + msd.fit.intercept_A2)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("5.39" in t and "10^{-6}" in t and "cm²/s" in t and "0.999" in t for t in legend)
    assert ax.get_xlabel() == "lag time [ps]" and ax.get_ylabel() == "MSD [Å²]"

    traces = msd_plotly(msd).data
    assert [t.name for t in traces[:3]] == ["Pt 10", "Pt 11", "Pt 12"]
    assert traces[3].name == "mean of 3 Pt"
    assert "5.39×10<sup>-6</sup> cm²/s" in traces[4].name
    np.testing.assert_allclose(traces[4].y, y)


def test_diffusion_table_has_a_row_per_size_and_a_column_per_solute_in_1e_minus_6_cm2_per_s():
    table = diffusion_table(
        {("Pt", 342): 5.39e-6, ("Ag", 342): 10.5e-6, ("Pd", 653): 7.1e-6, ("Pt", 653): 5.51e-6}
    )
    assert list(table.header) == ["Atoms / solute", "Ag", "Pd", "Pt"]
    assert [list(row) for row in table.rows] == [
        ["342", "10.5", "–", "5.39"],
        ["653", "–", "7.10", "5.51"],
    ]
    assert "10⁻⁶ cm²/s" in table.caption


# --- net force and thermo ------------------------------------------------------------------


def test_net_force_draws_one_line_per_run_against_time_in_ps_on_an_optional_log_axis():
    runs = {"mace": _net_force(1e-5), "orb-direct": _net_force(1e-2, seed=1)}
    ax = net_force_figure(runs, log_y=True).axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == list(runs)
    for line, force in zip(ax.get_lines(), runs.values(), strict=True):
        np.testing.assert_allclose(line.get_xdata(), force.time_fs / 1000.0)
        np.testing.assert_array_equal(line.get_ydata(), force.magnitude_eV_per_A)
    assert "[eV/Å]" in ax.get_ylabel()
    assert net_force_figure(runs["mace"]).axes[0].get_yscale() == "linear"

    fig = net_force_plotly(runs, log_y=True)
    assert [t.name for t in fig.data] == list(runs)
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_array_equal(fig.data[1].y, runs["orb-direct"].magnitude_eV_per_A)


def test_thermo_draws_a_panel_per_saved_observable_and_skips_the_missing_ones():
    energy = np.linspace(-100.0, -99.0, N_FRAMES)
    temperature = np.linspace(440.0, 460.0, N_FRAMES)
    trajectory = _trajectory(potential_energy=energy, temperature_K=temperature)
    fig = thermo_figure(trajectory)
    assert [ax.get_ylabel() for ax in fig.axes] == ["potential energy [eV]", "temperature [K]"]
    np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_ydata(), temperature)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), trajectory.time_fs / 1000)
    assert fig.axes[-1].get_xlabel() == "time [ps]"

    plotly_fig = thermo_plotly(trajectory)
    assert [t.name for t in plotly_fig.data] == ["potential_energy", "temperature_K"]
    np.testing.assert_array_equal(plotly_fig.data[0].y, energy)

    with pytest.raises(ValueError, match="no potential energy"):
        thermo_figure(_trajectory())


# --- files ---------------------------------------------------------------------------------

SAVERS = {
    "pdf": lambda stem: save_pair_distribution(stem, [_pdf()]),
    "trace": lambda stem: save_solute_trace(stem, _trace()),
    "summary": lambda stem: save_trace_summary(stem, [_trace(), _trace("Bi", 653)]),
    "msd": lambda stem: save_msd(stem, _msd()),
    "net_force": lambda stem: save_net_force(stem, _net_force()),
    "thermo": lambda stem: save_thermo(stem, _trajectory(temperature_K=np.ones(N_FRAMES))),
}


@pytest.mark.parametrize("kind", SAVERS)
def test_each_saver_writes_a_png_and_a_standalone_plotly_page(tmp_path, kind):
    files = SAVERS[kind](tmp_path / "figures" / f"{kind}.run1")  # dots in the stem stay
    assert files.png == tmp_path / "figures" / f"{kind}.run1.png"
    assert files.html == tmp_path / "figures" / f"{kind}.run1.html"
    assert files.png.read_bytes()[:8] == PNG_MAGIC
    page = files.html.read_text(encoding="utf-8")
    assert PLOTLY_DIV in page
    assert "plotly.js v" in page  # inline: works offline and alone
    assert re.search(r"<script[^>]*\bsrc=", page) is None


def test_plotlyjs_directory_mode_writes_the_library_once_beside_the_pages(tmp_path):
    fig = pair_distribution_figure([_pdf()])
    interactive = pair_distribution_plotly([_pdf()])
    for stem in ("a", "b"):
        files = save_figure(tmp_path / stem, fig, interactive, plotlyjs="directory")
        page = files.html.read_text(encoding="utf-8")
        assert 'src="plotly.min.js"' in page and "plotly.js v" not in page
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_a_shared_plotlyjs_file_serves_pages_in_several_folders_by_relative_path(tmp_path):
    fig = pair_distribution_figure([_pdf()])
    interactive = pair_distribution_plotly([_pdf()])
    library = tmp_path / "analysis" / "plotly.min.js"
    deep = save_figure(
        tmp_path / "analysis" / "mace" / "Ga342" / "pdf", fig, interactive, plotlyjs=library
    )
    top = save_figure(tmp_path / "analysis" / "pdf", fig, interactive, plotlyjs=library)
    assert 'src="../../plotly.min.js"' in deep.html.read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in top.html.read_text(encoding="utf-8")
    assert library.read_text(encoding="utf-8").startswith("/**\n* plotly.js v")
    assert sorted(p.name for p in library.parent.glob("*.js*")) == ["plotly.min.js"]


def test_figures_are_freed_after_saving_and_never_registered_with_pyplot(tmp_path):
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    fig = msd_figure(_msd())
    assert isinstance(fig, Figure)
    ref = weakref.ref(fig)
    save_figure(tmp_path / "msd", fig, msd_plotly(_msd()))
    del fig
    gc.collect()
    assert ref() is None
    assert plt.get_fignums() == open_before


def test_importing_the_report_writer_does_not_import_matplotlib_or_plotly():
    code = (
        "import sys; from scalms.plots import write_report; "
        "print('matplotlib' in sys.modules, 'plotly' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


# --- report --------------------------------------------------------------------------------


@pytest.fixture
def figure_files(tmp_path):
    return save_pair_distribution(tmp_path / "figures" / "pdf", [_pdf()])


def test_report_holds_the_parameters_and_every_table_row_escaped(tmp_path):
    table = Table(
        caption="Diffusion <constants>",
        header=["Atoms", "Pt"],
        rows=[[342, "5.39"], [653, "a & b"]],
    )
    path = write_report(
        tmp_path / "report.html",
        title="Dynamics",
        parameters={"temperature_K": 450, "models": ["mace", "orb"]},
        tables=[table],
        figures=[],
    )
    page = path.read_text(encoding="utf-8")
    assert "<tr><td>temperature_K</td><td>450</td></tr>" in page
    assert "<tr><td>models</td><td>[&quot;mace&quot;, &quot;orb&quot;]</td></tr>" in page
    assert "<tr><td>342</td><td>5.39</td></tr>" in page
    assert "<tr><td>653</td><td>a &amp; b</td></tr>" in page
    assert "Table 1: Diffusion &lt;constants&gt;" in page
    assert not (tmp_path / "report.html.part").exists()


def test_report_embeds_the_png_and_links_the_interactive_page_relatively(tmp_path, figure_files):
    path = write_report(
        tmp_path / "report.html",
        title="Dynamics",
        parameters={},
        tables=[],
        figures=[FigureEntry("Ga-Pt PDF", png=figure_files.png, html=figure_files.html)],
    )
    page = path.read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,iVBORw0KGgo' in page  # base64 of the PNG magic
    assert '<a href="figures/pdf.html">interactive</a>' in page
    assert "Figure 1: Ga-Pt PDF" in page
    assert "plotly.js v" not in page  # a linked page needs no library in the report


def test_report_escapes_script_tags_in_every_user_text(tmp_path, figure_files):
    evil = "<script>alert(1)</script>"
    path = write_report(
        tmp_path / "report.html",
        title=evil,
        parameters={evil: evil},
        tables=[Table(caption=evil, header=[evil], rows=[[evil]])],
        figures=[FigureEntry(caption=evil, png=figure_files.png)],
    )
    page = path.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6


def test_report_embeds_plotlyjs_once_for_several_interactive_figures(tmp_path):
    figures = [
        FigureEntry("PDF", interactive=pair_distribution_plotly([_pdf()])),
        FigureEntry("MSD", interactive=msd_plotly(_msd())),
    ]
    page = write_report(
        tmp_path / "report.html", title="Dynamics", parameters={}, figures=figures
    ).read_text(encoding="utf-8")
    assert page.count("plotly.js v") == 1
    assert page.count(PLOTLY_DIV) == 2


def test_report_rejects_a_table_row_with_the_wrong_number_of_cells(tmp_path):
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        write_report(
            tmp_path / "report.html",
            title="Dynamics",
            parameters={},
            tables=[Table("bad", ["a", "b"], [[1, 2], [3]])],
        )
    assert not (tmp_path / "report.html").exists()
