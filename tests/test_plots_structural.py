"""Figures and tables of the structural analysis draw exactly the points and records given.

Inputs are tiny synthetic arrays and hand-made records: no descriptors, no UMAP.
"""

from __future__ import annotations

import numpy as np
import pytest

from scalms.analysis.results import LabelSummary, SolutePlacement
from scalms.plots import (
    distance_by_label_figure,
    distance_by_label_plotly,
    element_colour,
    embedding_map_plotly,
    label_table,
    labelled_structure_figure,
    labelled_structure_plotly,
    save_distance_by_label,
    save_embedding_map,
    save_labelled_structure,
    save_solute_map,
    solute_map_plotly,
    solute_table,
)
from scalms.plots._style import cycle_colour
from scalms.plots.report import _table_html
from scalms.plots.structural import HOST_COLOUR

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTLY_DIV = 'class="plotly-graph-div"'

RNG = np.random.default_rng(0)
COORDS = RNG.normal(size=(60, 3))
LABELS = np.repeat([0, 1, 2], 20)
SYMBOLS = np.array(["Ga"] * 57 + ["Pt"] * 3)
DISTANCE_A = np.r_[RNG.uniform(6, 8, 20), RNG.uniform(3, 6, 20), RNG.uniform(0, 3, 20)]
GROUPS = {
    "host Ga": SYMBOLS == "Ga",
    "Pt (Ga57Pt3)": np.r_[np.zeros(57, bool), True, True, False],
    "Pt (Ga117Pt3)": np.r_[np.zeros(59, bool), True],
}

SAVERS = {
    "embedding_map": lambda stem: save_embedding_map(stem, COORDS, LABELS, title="map"),
    "labelled_structure": lambda stem: save_labelled_structure(stem, COORDS, LABELS, SYMBOLS),
    "distance_by_label": lambda stem: save_distance_by_label(stem, DISTANCE_A, LABELS),
    "solute_map": lambda stem: save_solute_map(stem, COORDS, GROUPS),
}


@pytest.mark.parametrize("kind", SAVERS)
def test_each_saver_writes_a_png_and_a_plotly_page(tmp_path, kind):
    files = SAVERS[kind](tmp_path / "structural" / kind)
    assert files.png.read_bytes()[:8] == PNG_MAGIC
    assert PLOTLY_DIV in files.html.read_text(encoding="utf-8")


def test_embedding_map_draws_each_label_s_points_in_its_colour():
    fig = embedding_map_plotly(COORDS, LABELS)
    assert [trace.name for trace in fig.data] == ["label 0", "label 1", "label 2"]
    for label, trace in enumerate(fig.data):
        assert trace.marker.color == cycle_colour(label)
        in_label = np.equal(LABELS, label)
        assert np.allclose(trace.x, COORDS[in_label, 0])
        assert np.allclose(trace.z, COORDS[in_label, 2])


def test_labelled_structure_marks_exactly_the_solute_atoms():
    fig = labelled_structure_plotly(COORDS, LABELS, SYMBOLS)
    solutes = [trace for trace in fig.data if trace.marker.symbol == "diamond"]
    assert [trace.name for trace in solutes] == ["label 2 (solute)"]
    assert list(solutes[0].text) == ["Pt"] * 3
    assert np.allclose(solutes[0].y, COORDS[57:, 1])
    assert sum(len(trace.x) for trace in fig.data) == len(COORDS)
    figure = labelled_structure_figure(COORDS, LABELS, SYMBOLS)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend[-1] == "solute (Pt)"


def test_distance_by_label_curves_are_densities_on_shared_bins():
    fig = distance_by_label_plotly(DISTANCE_A, LABELS, bins=12)
    edges = np.asarray(fig.data[0].x)
    for trace in fig.data:
        assert np.array_equal(trace.x, edges)
        density = np.asarray(trace.y)[:-1]
        assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    # the outermost label (6-8 Å) puts nothing below 6 Å
    assert np.all(np.asarray(fig.data[0].y)[:-1][edges[1:] < 5.9] == 0.0)
    assert distance_by_label_figure(DISTANCE_A, LABELS).axes[0].get_xlabel().endswith("[Å]")


def test_solute_map_draws_host_grey_underneath_and_solutes_in_element_colours():
    fig = solute_map_plotly(COORDS, GROUPS)
    host, first, second = fig.data
    assert host.name == "host Ga" and host.marker.color == HOST_COLOUR
    assert host.marker.size < first.marker.size
    assert first.marker.color == second.marker.color == element_colour("Pt")
    assert first.marker.symbol != second.marker.symbol  # the same solute in two runs
    assert len(first.x) == 2 and len(second.x) == 1


def test_plots_refuse_labels_that_do_not_match_the_points():
    with pytest.raises(ValueError, match="one entry per point"):
        embedding_map_plotly(COORDS, LABELS[:-1])
    with pytest.raises(ValueError, match="boolean mask over the 60 points"):
        solute_map_plotly(COORDS, {"Pt": np.ones(5, bool)})


def test_tables_carry_one_row_per_record_and_render():
    summaries = [
        LabelSummary(0, 30, 0.5, {"Ga": 0.98, "Pt": 0.02}, 7.5, 0.4, 8.1),
        LabelSummary(1, 30, 0.5, {"Ga": 1.0}, 11.2, 4.3, 3.0),
    ]
    table = label_table(summaries)
    assert [row[0] for row in table.rows] == [0, 1]
    assert "Ga 0.98, Pt 0.02" in table.rows[0]
    placement = SolutePlacement(
        "Ga47Pt3", "Pt", 300, {0: 0.1, 1: 0.9}, 4.0, 1.0, 0.2, 0.45, 0.6, 3.2
    )
    solutes = solute_table([placement])
    assert solutes.rows[0][:4] == ["Ga47Pt3", "Pt", 300, "0 0.10, 1 0.90"]
    assert "0.2" in solutes.rows[0] and "0.45" in solutes.rows[0] and "60%" in solutes.rows[0]
    for each in (table, solutes):
        assert _table_html(each, 1).count("<tr>") == len(each.rows) + 1
