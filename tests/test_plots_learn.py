"""Active-learning figures and reports draw exactly the round records given.

Three hand-made rounds (0: the starting committee on the held-out set; 1 and 2: MD candidates,
picks, labels, a new committee); no MD, no models.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from scalms.analysis.learning import HeldOutErrors, RoundRecord, SelectedFrame, Selection
from scalms.plots._style import FIT_COLOUR
from scalms.plots.learn import (
    MISSING,
    held_out_by_round,
    held_out_by_round_plotly,
    learn_report,
    round_colour,
    round_report,
    selected_frames,
    selected_frames_plotly,
    spread_by_round,
    spread_by_round_plotly,
    spread_distributions,
    spread_distributions_figure,
    spread_distributions_plotly,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTLY_DIV = 'class="plotly-graph-div"'
THRESHOLD = 0.15
REGISTERED = ["mace-a-r2", "mace-b-r2"]
SETTINGS = {"rounds": 2, "spread_threshold_eV_per_A": THRESHOLD, "select": 2, "seed": 7}


def _held_out(round_number: int, members: list[str], maes: list[float], committee: float):
    return HeldOutErrors(
        round=round_number,
        member_force_mae_eV_per_A=dict(zip(members, maes, strict=True)),
        committee_force_mae_eV_per_A=committee,
        committee_force_rmse_eV_per_A=committee * 1.4,
        member_energy_mae_eV_per_atom=dict(zip(members, [0.0031, 0.0042], strict=True)),
        mean_spread_eV_per_A=committee / 2,
        n_frames=20,
    )


def _frame(candidate, structure, spread, temperature_K, n_atoms, distance):
    return SelectedFrame(
        candidate=candidate,
        structure=structure,
        md_frame=10 * candidate,
        time_fs=250.0 * candidate,
        temperature_K=temperature_K,
        n_atoms=n_atoms,
        max_spread_eV_per_A=spread,
        min_distance=distance,
    )


def _round(number, committee, before, after, picks, maes, committee_mae, **extra):
    return RoundRecord(
        round=number,
        committee=committee,
        n_candidates=len(before),
        spread_before_eV_per_A=before,
        spread_after_eV_per_A=after,
        selection=Selection(
            picked=[p.candidate for p in picks],
            above_threshold=int(np.sum(np.asarray(before) > THRESHOLD)),
            too_close=1,
            threshold_eV_per_A=THRESHOLD,
            min_distance=0.5,
            max_count=2,
            nearest=[p.min_distance for p in picks],
        ),
        selected=picks,
        labelled=len(picks),
        labelled_now=1,
        dataset={"train": 40 + 2 * number, "valid": 5, "dropped": 0},
        held_out=_held_out(number, committee, maes, committee_mae),
        wall_s={"md": 12.5, "select": 0.25},
        **extra,
    )


ROUND_0 = RoundRecord(
    round=0,
    committee=["mace-a", "mace-b"],
    held_out=_held_out(0, ["mace-a", "mace-b"], [0.0912, 0.0874], 0.0712),
)
ROUND_1 = _round(
    1,
    ["mace-a-r1", "mace-b-r1"],
    [0.05, 0.42, 0.08, 0.31, 0.22, 0.11, 0.02, 0.09],
    [0.04, 0.12, 0.06, 0.09, 0.07, 0.05, 0.02, 0.03],
    [_frame(1, "Ga47Pt3", 0.42, 900.0, 50, None), _frame(3, "Ga117Pt3", 0.31, 600.0, 120, 0.83)],
    [0.0703, 0.0688],
    0.0561,
)
ROUND_2 = _round(
    2,
    ["mace-a-r2", "mace-b-r2"],
    [0.03, 0.19, 0.06, 0.08, 0.04, 0.05],
    [0.02, 0.05, 0.03, 0.04, 0.03, 0.03],
    [_frame(4, "Ga47Ag3", 0.19, 1200.0, 50, None)],
    [0.0521, 0.0549],
    0.0437,
    stopped="no candidate above the threshold is left",
)
RECORDS = [ROUND_0, ROUND_2, ROUND_1]  # out of order on purpose: figures sort by round


def _text(page) -> str:
    """The report's text without its embedded PNGs (base64 may spell anything)."""
    return re.sub(r"data:image/png;base64,[^\"]*", "", page.read_text(encoding="utf-8"))


def _row(page_text: str, *cells) -> bool:
    """Whether some table row starts with `cells`, in order."""
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) in page_text


@pytest.fixture(scope="module")
def js(tmp_path_factory):
    return tmp_path_factory.mktemp("js") / "plotly.min.js"


SAVERS = {
    "spread_distributions": lambda out, js: spread_distributions(
        RECORDS, THRESHOLD, out, plotlyjs=js
    ),
    "held_out_by_round": lambda out, js: held_out_by_round(RECORDS, out, plotlyjs=js),
    "spread_by_round": lambda out, js: spread_by_round(RECORDS, out, plotlyjs=js),
    "selected_frames": lambda out, js: selected_frames(RECORDS, out, plotlyjs=js),
}


@pytest.mark.parametrize("kind", SAVERS)
def test_each_figure_writes_a_png_and_a_plotly_page(tmp_path, js, kind):
    files = SAVERS[kind](tmp_path / "figures" / kind, js)
    assert files.png == tmp_path / "figures" / f"{kind}.png"
    assert files.png.read_bytes()[:8] == PNG_MAGIC
    assert PLOTLY_DIV in files.html.read_text(encoding="utf-8")


def test_round_zero_alone_has_only_held_out_errors_to_draw(tmp_path, js):
    assert spread_distributions([ROUND_0], THRESHOLD, tmp_path / "a", plotlyjs=js) is None
    assert spread_by_round([ROUND_0], tmp_path / "b", plotlyjs=js) is None
    assert selected_frames([ROUND_0], tmp_path / "c", plotlyjs=js) is None
    assert held_out_by_round([ROUND_0], tmp_path / "d", plotlyjs=js) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.html", "d.png"]


def test_spread_histograms_count_every_candidate_once_on_shared_bins():
    fig = spread_distributions_plotly(RECORDS, THRESHOLD)
    *curves, threshold = fig.data
    assert [c.name for c in curves] == [
        "round 1, before (previous committee)",
        "round 1, after (new committee)",
        "round 2, before (previous committee)",
        "round 2, after (new committee)",
    ]
    edges = np.asarray(curves[0].x)
    for curve, record in zip(curves, [ROUND_1, ROUND_1, ROUND_2, ROUND_2], strict=True):
        assert np.array_equal(curve.x, edges)
        assert np.sum(np.asarray(curve.y)[:-1]) == record.n_candidates
        assert curve.line.color == round_colour(record.round)
    assert list(threshold.x) == [THRESHOLD, THRESHOLD]
    assert threshold.line.color == FIT_COLOUR
    # spreads from 0.02 to 0.42 eV/Å span more than 20x: log bins and a log axis
    assert fig.layout.xaxis.type == "log"
    assert np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))
    assert spread_distributions_figure(RECORDS, THRESHOLD).axes[0].get_xscale() == "log"


def test_spreads_within_a_narrow_range_keep_a_linear_axis():
    narrow = _round(1, ["a", "b"], [0.2, 0.3, 0.25], [0.21, 0.22, 0.23], [], [0.1, 0.1], 0.1)
    fig = spread_distributions_plotly([narrow], None)
    assert fig.layout.xaxis.type is None
    assert len(fig.data) == 2  # no threshold line when none is given
    assert np.allclose(np.diff(fig.data[0].x), fig.data[0].x[1] - fig.data[0].x[0])


def test_held_out_lines_follow_committee_slots_and_the_committee_mean():
    fig = held_out_by_round_plotly(RECORDS)
    first, second, committee, spread = fig.data
    assert list(first.x) == [0, 1, 2]
    assert list(first.text) == ["mace-a", "mace-a-r1", "mace-a-r2"]
    assert list(first.y) == [0.0912, 0.0703, 0.0521]
    assert list(second.y) == [0.0874, 0.0688, 0.0549]
    assert list(committee.y) == [0.0712, 0.0561, 0.0437]
    assert committee.line.width > first.line.width
    assert list(spread.y) == pytest.approx([0.0356, 0.02805, 0.02185])


def test_mean_spread_by_round_is_each_round_s_mean_before_and_after():
    before, after = spread_by_round_plotly(RECORDS).data
    assert list(before.x) == [1, 2] == list(after.x)
    assert list(before.y) == pytest.approx([np.mean(ROUND_1.spread_before_eV_per_A), 0.075])
    assert list(after.y) == pytest.approx([0.06, np.mean(ROUND_2.spread_after_eV_per_A)])


def test_picked_frames_are_drawn_by_temperature_with_area_growing_with_atoms():
    first, second = selected_frames_plotly(RECORDS).data
    assert (first.name, second.name) == ("round 1", "round 2")
    assert list(first.x) == [900.0, 600.0] and list(first.y) == [0.42, 0.31]
    assert first.marker.size[1] > first.marker.size[0]  # 120 atoms against 50
    assert first.marker.size[0] == second.marker.size[0]  # both 50 atoms
    assert "Ga117Pt3, MD frame 30 (750 fs)" in first.text[1]


def test_round_report_explains_the_picks_and_counts(tmp_path):
    page = round_report(ROUND_1, THRESHOLD, tmp_path / "round_001")
    assert page == tmp_path / "round_001" / "report.html"
    text = _text(page)
    assert "Active learning: round 1" in text
    assert _row(text, 1, "Ga47Pt3", 10, 250, 900, 50, 0.42, f"{MISSING} (first pick)")
    assert _row(text, 3, "Ga117Pt3", 30, 750, 600, 120, 0.31, 0.83)
    assert _row(text, 8, 3, 1, 2, 2)  # candidates, above threshold, too close, picked, limit
    assert _row(text, "train", 42) and _row(text, "valid", 5)
    assert _row(text, "mace-a-r1", 0.0703, MISSING, 0.0031)
    assert _row(text, "committee (mean force)", 0.0561, 0.07854, MISSING)
    assert "0.15 eV/Å" in text and "md 12.5 s, select 0.2 s" in text
    assert (tmp_path / "round_001" / "figures" / "spread.png").read_bytes()[:8] == PNG_MAGIC
    assert text.count("<figure>") == 2
    assert "nan" not in text.lower()


def test_round_report_of_round_zero_has_no_selection(tmp_path):
    text = _text(round_report(ROUND_0, THRESHOLD, tmp_path))
    assert "Selection counts" not in text and "<figure>" not in text
    assert _row(text, "committee (mean force)", 0.0712, 0.09968, MISSING)
    assert "nan" not in text.lower()


@pytest.fixture(scope="module")
def learn_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn")
    return learn_report(RECORDS, SETTINGS, REGISTERED, out)


def test_learn_report_names_every_round_model_and_picked_structure(learn_page):
    text = _text(learn_page)
    assert "Active learning: rounds 0 to 2" in text
    for record in (ROUND_0, ROUND_1, ROUND_2):
        assert _row(text, record.round, ", ".join(record.committee))
    for name in REGISTERED:
        assert _row(text, name)
    for structure in ("Ga47Pt3", "Ga117Pt3", "Ga47Ag3"):
        assert f"<td>{structure}</td>" in text
    assert _row(text, 2, 4, "Ga47Ag3", 40, 1000, 1200, 50, 0.19)
    for key, value in SETTINGS.items():
        assert _row(text, key, value)
    assert text.count("<figure>") == 4
    assert "no candidate above the threshold is left" in text


def test_learn_report_rows_show_the_numbers_as_written(learn_page):
    text = _text(learn_page)
    mean_before = f"{np.mean(ROUND_1.spread_before_eV_per_A):.4g}"
    assert _row(
        text, 1, "mace-a-r1, mace-b-r1", 8, 3, 2, "2 (1)", 42, 5, 0.0561, mean_before, 0.06, ""
    )
    m = MISSING
    assert _row(text, 0, "mace-a, mace-b", m, m, m, m, m, m, 0.0712, m, m, "")
    assert "nan" not in text.lower()


def test_learn_report_with_only_round_zero_and_nothing_registered(tmp_path):
    page = learn_report([ROUND_0], {"rounds": 3}, [], tmp_path)
    text = _text(page)
    assert "none registered in model_config.yaml yet" in text
    assert text.count("<figure>") == 1  # the held-out errors; no spreads, no picks yet
    assert not (tmp_path / "figures" / "spread.png").exists()
    assert (tmp_path / "figures" / "held_out.png").read_bytes()[:8] == PNG_MAGIC
    assert _row(text, 0, "mace-a, mace-b")


def test_picks_selected_without_descriptors_have_no_distance_after_the_first(tmp_path):
    picks = [
        _frame(1, "Ga47Pt3", 0.42, 900.0, 50, None),
        _frame(3, "Ga47Pt3", 0.31, 900.0, 50, None),
    ]
    record = _round(1, ["a", "b"], [0.42, 0.1, 0.05, 0.31], [0.1] * 4, picks, [0.1, 0.1], 0.1)
    text = _text(round_report(record, THRESHOLD, tmp_path))
    assert _row(text, 1, "Ga47Pt3", 10, 250, 900, 50, 0.42, f"{MISSING} (first pick)")
    assert _row(text, 3, "Ga47Pt3", 30, 750, 900, 50, 0.31, MISSING)
