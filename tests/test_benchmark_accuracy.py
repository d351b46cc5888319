"""The accuracy benchmark: its store, flat table, analysis, plots and command-line errors.

Synthetic predictions stand in for models where the contract is about files and numbers; the
builtin Lennard-Jones model runs through a real child where the contract is about children.
The runs of real models against the CP2K frames are in test_benchmark_models.py.
"""

import base64
import json

import h5py
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from typer.testing import CliRunner

from scalms.benchmark.accuracy import FLAT, STORE, analyse
from scalms.benchmark.metrics import error_stats, net_forces
from scalms.benchmark.parity import model_parity
from scalms.benchmark.reference import read_reference
from scalms.cli import app
from scalms.io.benchmark_accuracy import (
    models_of,
    open_store,
    read_flat,
    read_frames,
    write_predictions,
    write_reference,
)
from scalms.testing import ga_cluster

runner = CliRunner()


def _reference_file(path, seeds, rng, solute="Pt", periodic=False):
    frames = []
    for seed in seeds:
        atoms = ga_cluster(shells=2, solute=solute, n_solute=2, seed=seed, rattle_A=0.1)
        if periodic:
            atoms.pbc = True
        forces = rng.normal(scale=0.5, size=(len(atoms), 3))
        energy = -3.2 * len(atoms) + rng.normal(scale=0.2)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def _predict(structures, rng, noise, offset_per_atom=0.0):
    """Reference plus noise (and an energy offset per atom), per structure."""
    predictions = {}
    for s in structures:
        forces = np.concatenate(s.forces)
        n_atoms = np.array([len(a) for a in s.frames])
        energy = s.energy + offset_per_atom * n_atoms + rng.normal(scale=noise, size=len(n_atoms))
        predictions[s.label] = (energy, forces + rng.normal(scale=noise, size=forces.shape))
    return predictions


@pytest.fixture
def benchmark_dir(tmp_path):
    """A working dir with two reference files and two models' synthetic predictions."""
    rng = np.random.default_rng(7)
    files = [
        _reference_file(tmp_path / "clusters.extxyz", [0, 1, 2], rng),
        _reference_file(tmp_path / "cells.extxyz", [3, 4], rng, periodic=True),
    ]
    workdir = tmp_path / "bench"
    workdir.mkdir()
    structures = read_reference(files)
    with open_store(workdir / STORE) as handle:
        write_reference(handle, structures)
        write_predictions(handle, "good", {"backend": "test"}, _predict(structures, rng, 0.05))
        write_predictions(handle, "noisy", {"backend": "test"}, _predict(structures, rng, 0.3, 2.0))
    return workdir, files, structures


def test_store_rebuilds_every_frame_with_reference_and_predictions_exactly(benchmark_dir):
    workdir, _, structures = benchmark_dir
    with open_store(workdir / STORE, "r") as handle:
        stored = {
            model: {label: handle["models"][model][label]["forces"][()] for label in ("clusters",)}
            for model in models_of(handle)
        }
    for structure in structures:
        for model in ("good", "noisy", None):
            rebuilt = read_frames(workdir / STORE, model, structure.label)
            assert len(rebuilt) == len(structure.frames)
            offset = 0
            for original, frame, energy, forces in zip(
                structure.frames, rebuilt, structure.energy, structure.forces, strict=True
            ):
                assert np.array_equal(frame.numbers, original.numbers)
                assert np.array_equal(frame.positions, original.positions)
                assert np.array_equal(frame.cell.array, original.cell.array)
                assert np.array_equal(frame.pbc, original.pbc)
                assert frame.info["REF_energy"] == energy
                assert np.array_equal(frame.arrays["REF_forces"], forces)
                if model is None:
                    assert frame.get_potential_energy() == energy
                elif structure.label == "clusters":
                    n = len(frame)
                    expected = stored[model]["clusters"][offset : offset + n]
                    assert np.array_equal(frame.get_forces(), expected)
                    offset += n


def test_flat_table_is_made_again_when_a_model_is_added_or_rerun_and_kept_otherwise(
    benchmark_dir,
):
    workdir, _, structures = benchmark_dir
    first = analyse(workdir, plot=False)
    assert first.flat_rebuilt and first.table.models == ["good", "noisy"]
    assert not analyse(workdir, plot=False).flat_rebuilt
    assert analyse(workdir, plot=False, force_rewrite_flat=True).flat_rebuilt
    rng = np.random.default_rng(3)
    with open_store(workdir / STORE) as handle:
        write_predictions(handle, "third", {}, _predict(structures, rng, 0.1))
    added = analyse(workdir, plot=False)
    assert added.flat_rebuilt and added.table.models == ["good", "noisy", "third"]
    assert read_flat(workdir / FLAT).models == ["good", "noisy", "third"]
    with open_store(workdir / STORE) as handle:  # the same model computed again
        write_predictions(handle, "third", {}, _predict(structures, rng, 0.1))
    assert analyse(workdir, plot=False).flat_rebuilt


def test_flat_table_holds_the_stores_numbers_row_for_row(benchmark_dir):
    workdir, _, structures = benchmark_dir
    table = analyse(workdir, plot=False).table
    with open_store(workdir / STORE, "r") as handle:
        for model in ("good", "noisy"):
            atoms, frames = table.model_rows(model)
            forces = np.concatenate(
                [handle["models"][model][s.label]["forces"][()] for s in structures]
            )
            np.testing.assert_array_equal(table.predicted_forces(model), forces)
            energies = np.concatenate(
                [handle["models"][model][s.label]["energy"][()] for s in structures]
            )
            np.testing.assert_array_equal(table.frames["pred_energy_eV"][frames], energies)
            assert table.atoms["number"][atoms].tolist() == [
                z for s in structures for a in s.frames for z in a.numbers
            ]


def test_metrics_files_agree_with_the_raw_data_and_flag_unbalanced_reference_frames(
    benchmark_dir,
):
    workdir, _, structures = benchmark_dir
    report = analyse(workdir, plot=False, net_force_threshold=1.0)
    rows = {r["model"]: r for r in _csv(workdir / "metrics.csv")}
    table = report.table
    for model in ("good", "noisy"):
        expected = error_stats(table.reference_forces(model), table.predicted_forces(model))
        assert float(rows[model]["force_mae_eV_per_A"]) == pytest.approx(expected.mae)
        assert float(rows[model]["force_r2"]) == pytest.approx(expected.r2)
    # The noisy model sits 2 eV per atom off: the raw energy error shows it, the aligned not.
    assert float(rows["noisy"]["energy_mae_eV_per_atom"]) == pytest.approx(2.0, abs=0.05)
    assert float(rows["noisy"]["energy_aligned_mae_eV_per_atom"]) < 0.1
    elements = {(r["model"], r["element"]) for r in _csv(workdir / "metrics_by_element.csv")}
    assert elements == {(m, e) for m in ("good", "noisy") for e in ("Ga", "Pt")}
    # Random reference forces do not sum to zero: every frame is above 1 eV/Å or not, as computed.
    net = np.concatenate(
        [np.linalg.norm(net_forces(np.concatenate(s.forces), [len(a) for a in s.frames]), axis=1)
         for s in structures]
    )  # fmt: skip
    flagged = [r["flagged"] == "True" for r in _csv(workdir / "reference_net_force.csv")]
    assert flagged == (net > 1.0).tolist() and any(flagged)
    assert [r["frame"] for r in report.flagged_frames] == [
        r["frame"] for r, f in zip(report.net_force_rows, flagged, strict=True) if f
    ]


def _csv(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_committee_of_identical_models_has_zero_spread(benchmark_dir):
    workdir, _, structures = benchmark_dir
    with open_store(workdir / STORE) as handle:
        good = {
            s.label: (handle["models"]["good"][s.label]["energy"][()],
                      handle["models"]["good"][s.label]["forces"][()])
            for s in structures
        }  # fmt: skip
        write_predictions(handle, "twin", {}, good)
    report = analyse(workdir, plot=False, committee=["good", "twin"])
    committee = report.committee
    assert np.all(committee.spread_eV_per_A == 0.0)
    assert all(row["force_spread_max_eV_per_A"] == 0.0 for row in committee.frame_rows)
    assert committee.metrics.forces.components.mae == pytest.approx(
        report.metrics[0].forces.components.mae
    )
    assert np.isnan(committee.per_atom.pearson)  # no spread: nothing to correlate
    summary = json.loads((workdir / "committee.json").read_text())
    assert summary["models"] == ["good", "twin"]


def test_committee_spread_of_models_that_disagree_tracks_their_error(benchmark_dir):
    workdir, _, _ = benchmark_dir
    report = analyse(workdir, plot=False, committee=["good", "noisy"])
    # Where the noisy member strays, the mean strays with it: spread and error go together.
    assert report.committee.per_atom.spearman > 0.5
    assert report.committee.per_atom.bin_error[-1] > report.committee.per_atom.bin_error[0]


def test_parity_records_refit_each_models_element_offsets_and_carry_the_raw_statistics(
    benchmark_dir,
):
    """The noisy model sits 2 eV per atom above the reference: its energy parity record has that
    offset refitted away, and both records carry the statistics the metrics report."""
    workdir, _, _ = benchmark_dir
    report = analyse(workdir, plot=False)
    metrics = {m.model: m for m in report.metrics}
    for model in ("good", "noisy"):
        record = model_parity(report.table, model)
        assert record.forces.stats == metrics[model].forces.components
        assert record.energy.stats == metrics[model].energy.aligned_per_atom
        np.testing.assert_array_equal(record.forces.reference, report.table.reference_forces(model))
        np.testing.assert_array_equal(
            record.force_component_errors,
            (report.table.predicted_forces(model) - report.table.reference_forces(model)).ravel(),
        )
    noisy = model_parity(report.table, "noisy").energy
    assert np.abs(noisy.predicted - noisy.reference).max() < 0.1  # not 2 eV/atom


def test_the_plots_import_nothing_of_the_benchmark():
    """Plots draw the records they are given: no fitting, no reading of the benchmark's files."""
    import ast
    from pathlib import Path

    import scalms.plots

    for path in Path(scalms.plots.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names]
                assert not any(n.startswith("scalms.benchmark") for n in names), path.name


def _values(data):
    """Numbers of a trace field as plotly wrote them: a list, or base64 with a dtype."""
    if isinstance(data, dict) and "bdata" in data:
        values = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return values.reshape(data["shape"]) if "shape" in data else values
    return np.asarray(data)


def _plotly_figure(html_path):
    """The data and layout of the plotly figure in a page written by plotly's write_html."""
    text = html_path.read_text()
    start = text.index("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    position = text.index(",", start) + 1
    data, position = decoder.raw_decode(text, text.index("[", position))
    layout, _ = decoder.raw_decode(text, text.index("{", position))
    return data, layout


@pytest.mark.slow
def test_every_plot_is_written_and_holds_the_expected_traces(benchmark_dir):
    workdir, _, _ = benchmark_dir
    report = analyse(workdir, plot=True, committee=["good", "noisy"])
    plots = workdir / "plots"
    for name in [f"{m}/{p}" for m in ("good", "noisy") for p in (
        "force_parity_pymatviz", "energy_parity_pymatviz", "force_parity_box",
        "force_error_vs_magnitude")] + [
        "force_error_distribution", "reference_net_force", "committee_spread_vs_error"
    ]:  # fmt: skip
        assert (plots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (plots / f"{name}.html").is_file(), name
    table = report.table
    ref, pred = table.reference_forces("good"), table.predicted_forces("good")
    stats = error_stats(ref, pred)

    # pymatviz density scatter: statistics of the raw data, not of its bins.
    data, layout = _plotly_figure(plots / "good" / "force_parity_pymatviz.html")
    assert layout["meta"]["stats"]["mae"] == pytest.approx(stats.mae)
    assert layout["meta"]["stats"]["n"] == ref.size
    (note,) = [a for a in layout["annotations"] if a.get("name") == "raw statistics"]
    assert f"MAE = {stats.mae:.4f} eV/Å" in note["text"] and f"R² = {stats.r2:.4f}" in note["text"]
    assert any(t["name"] == "y = x" for t in data) and any("marker" in t for t in data)

    # Parity by element with box plots of the error, whose quartiles come from every value.
    data, _ = _plotly_figure(plots / "good" / "force_parity_box.html")
    names = [t["name"] for t in data]
    assert {"Ga", "Pt", "Ga error", "Pt error", "all error"} <= set(names)
    (box,) = [t for t in data if t["name"] == "all error"]
    q1, median, q3 = np.percentile(pred - ref, [25, 50, 75])
    assert box["q1"][0] == pytest.approx(q1) and box["median"][0] == pytest.approx(median)
    assert box["q3"][0] == pytest.approx(q3)
    points = sum(_values(t["x"]).size for t in data if t["name"] in ("Ga", "Pt"))
    assert points == ref.size

    # Error against reference and predicted magnitudes: both panels, each with binned means.
    data, _ = _plotly_figure(plots / "good" / "force_error_vs_magnitude.html")
    assert sum(t["name"] == "binned mean" for t in data) == 2
    error = np.linalg.norm(pred - ref, axis=1)
    ga = [t for t in data if t["name"] == "Ga"]
    assert len(ga) == 2 and sorted(_values(ga[0]["y"])) == pytest.approx(
        sorted(error[table.atoms["number"][table.model_rows("good")[0]] == 31])
    )

    # Error distribution: one density per model, each integrating to one.
    data, _ = _plotly_figure(plots / "force_error_distribution.html")
    assert [t["name"] for t in data] == ["good", "noisy"]
    for trace in data:
        width = np.diff(_values(trace["x"]))[0]
        assert np.sum(_values(trace["y"])) * width == pytest.approx(1.0)

    # Net force of the reference, frame by frame.
    data, _ = _plotly_figure(plots / "reference_net_force.html")
    expected = [r["net_force_eV_per_A"] for r in report.net_force_rows]
    assert _values(data[0]["y"]) == pytest.approx(expected)

    data, layout = _plotly_figure(plots / "committee_spread_vs_error.html")
    assert layout["meta"]["pearson"] == pytest.approx(report.committee.per_atom.pearson)
    assert _values(data[0]["x"]).size == ref.shape[0]

    page = (workdir / "summary.html").read_text()
    assert "Accuracy benchmark" in page and "committee(good,noisy)" in page
    assert f"{1000 * stats.mae:.1f}" in page  # the good model's force MAE in meV/Å
    assert page.count("data:image/png;base64") == 5  # two parities, errors, net force, committee


def test_cli_refuses_a_missing_reference_file(tmp_path, builtin_config):
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(tmp_path / "missing.extxyz"), "-c", str(builtin_config),
         "-w", str(tmp_path / "w")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "structure file not found" in result.output and "Traceback" not in result.output


def test_cli_refuses_frames_without_reference_forces_naming_them(tmp_path, builtin_config):
    frames = []
    for seed in range(3):
        atoms = ga_cluster(shells=2, seed=seed)
        atoms.info["REF_energy"] = -40.0
        if seed == 0:
            atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
        frames.append(atoms)
    path = tmp_path / "energies_only.extxyz"
    write(path, frames)
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(path), "-c", str(builtin_config), "-w", str(tmp_path / "w")],
    )
    assert result.exit_code == 2, result.output
    assert "frame(s) 1, 2 of 3 have no reference forces" in result.output
    assert "--forces-key" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w").exists()  # refused before anything ran or was written


def test_cli_refuses_an_unknown_model_before_running_anything(tmp_path, builtin_config):
    path = _reference_file(tmp_path / "ref.extxyz", [0], np.random.default_rng(0))
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(path), "-m", "nope", "-c", str(builtin_config),
         "-w", str(tmp_path / "w")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "model 'nope' is not in" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w").exists()  # nothing ran, nothing was written


def test_cli_analyze_errors_are_one_message(tmp_path, benchmark_dir):
    result = runner.invoke(app, ["benchmark", "analyze", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no benchmark file" in result.output
    workdir, _, _ = benchmark_dir
    result = runner.invoke(
        app, ["benchmark", "analyze", str(workdir), "--committee", "good", "--committee", "x"]
    )
    assert result.exit_code == 2
    assert "committee model(s) x not in this benchmark" in result.output
    assert "Traceback" not in result.output


def test_a_working_dir_keeps_its_reference_set(tmp_path, benchmark_dir, builtin_config):
    workdir, _, _ = benchmark_dir
    other = _reference_file(tmp_path / "clusters.extxyz", [9], np.random.default_rng(9))
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(other), "-c", str(builtin_config), "-w", str(workdir),
         "-m", "lj"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "holds a benchmark of other reference data" in result.output
    assert models_of(h5py.File(workdir / STORE, "r")) == ["good", "noisy"]  # untouched


@pytest.mark.slow
def test_a_failing_model_leaves_the_others_results(tmp_path, builtin_config):
    """Lennard-Jones and EMT through real children; EMT does not know Ga and fails alone."""
    path = _reference_file(tmp_path / "ref.extxyz", [0, 1], np.random.default_rng(0))
    workdir = tmp_path / "w"
    result = runner.invoke(
        app,
        ["benchmark", "accuracy", str(path), "-m", "lj", "-m", "emt", "-c", str(builtin_config),
         "-w", str(workdir), "--device", "cpu", "--no-plot", "--copy-reference"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "failed emt" in result.output and "does not know element(s)" in result.output
    with open_store(workdir / STORE, "r") as handle:
        assert models_of(handle) == ["lj"]
        assert handle["models"]["lj"].attrs["backend"] == "torchsim"
    assert [r["model"] for r in _csv(workdir / "metrics.csv")] == ["lj"]
    assert (workdir / "reference" / "ref.extxyz").is_file()
    # The stored predictions are Lennard-Jones's own: ASE's calculator gives the same forces.
    from ase.calculators.lj import LennardJones

    (frame, _) = read_frames(workdir / STORE, "lj", "ref")
    atoms = frame.copy()
    atoms.calc = LennardJones(sigma=2.40, epsilon=0.10, rc=6.0, smooth=False)
    np.testing.assert_allclose(frame.get_forces(), atoms.get_forces(), atol=1e-8)


def test_energy_parity_of_two_frames_is_drawn_without_a_density():
    """Two points make pymatviz's Gaussian KDE singular: the parity falls back to plain points
    (a test set of two frames once crashed the benchmark after the model was evaluated)."""
    from scalms.plots.benchmark_accuracy import parity_pymatviz

    reference, predicted = np.array([-10.0, -12.0]), np.array([-10.1, -11.8])
    fig = parity_pymatviz(
        reference, predicted, error_stats(reference, predicted),
        x_title="reference", y_title="model", unit="eV", title="energy",
    )  # fmt: skip
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(markers) == 1 and list(markers[0].x) == [-10.0, -12.0]
