"""`scalms hpc recompute`: one CSV row per (frame, setting), reruns skip finished rows, force
differences between settings, and one real CP2K run."""

import csv
import json
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from typer.testing import CliRunner

from scalms.cli import app
from scalms.hpc.labels import ENERGY_KEY, FORCES_KEY, CalculatorLabeller, SCFNotConverged
from scalms.hpc.recompute import (
    FILE_REFERENCE,
    RecomputeError,
    Setting,
    differences_path,
    read_rows,
    recompute,
    resolve_setting,
)
from tests.conftest import require_programs


def clusters(n_frames=3, n_atoms=5, seed=0):
    """Rattled Ar-like clusters: LJ forces of a few eV/Å at most."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [0, 0, 1.1], [1.1, 1.1, 0]])[:n_atoms]
    return [
        Atoms("Ar" * n_atoms, positions=base * 3.4 + rng.normal(0, 0.1, base.shape))
        for _ in range(n_frames)
    ]


class Counting(CalculatorLabeller):
    """An LJ labeller that logs what it labels, can refuse or stop, and checks that it is the
    only one open (the settings loop runs one labeller, one DFT process, at a time)."""

    log: ClassVar[list] = []
    open_now: ClassVar[int] = 0

    def __init__(self, sigma, refuse=(), stop_after=None):
        super().__init__("lj", LennardJones(sigma=sigma, epsilon=0.0104, rc=10.0), {"sigma": sigma})
        self.refuse, self.stop_after = set(refuse), stop_after
        Counting.open_now += 1

    def close(self):
        Counting.open_now -= 1

    def label(self, atoms):
        if self.stop_after is not None and len(Counting.log) >= self.stop_after:
            raise KeyboardInterrupt  # a kill in the middle of the run
        assert Counting.open_now == 1
        key = round(float(atoms.positions[0, 0]), 9)
        if key in self.refuse:
            raise SCFNotConverged("SCF not converged after 1 step")
        Counting.log.append(key)
        return super().label(atoms)


@pytest.fixture(autouse=True)
def _fresh_log():
    Counting.log = []
    Counting.open_now = 0
    yield
    assert Counting.open_now == 0, "a labeller was left open"


def lj_settings(*sigmas, **options):
    return [(Setting(f"lj sigma={s}"), lambda s=s: Counting(s, **options)) for s in sigmas]


def test_one_row_per_frame_and_setting_with_the_calculators_numbers(tmp_path):
    frames = clusters()
    out = recompute(frames, lj_settings(3.4, 3.3), tmp_path / "r.csv")
    rows = read_rows(tmp_path / "r.csv")
    assert [(int(r["frame"]), r["setting"]) for r in rows] == [
        (i, f"lj sigma={s}") for s in (3.4, 3.3) for i in range(3)
    ]
    assert out.computed == 6 and out.skipped == 0 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        atoms = frames[int(row["frame"])].copy()
        atoms.calc = LennardJones(
            sigma=float(row["setting"].split("=")[1]), epsilon=0.0104, rc=10.0
        )
        forces = np.array(json.loads(row["forces_eV_per_A"]))
        np.testing.assert_array_equal(forces, atoms.get_forces())  # JSON keeps every digit
        assert float(row["energy_eV"]) == atoms.get_potential_energy()
        assert float(row["net_force_eV_per_A"]) < 1e-12  # pair forces cancel
        assert float(row["max_force_eV_per_A"]) == pytest.approx(
            np.linalg.norm(forces, axis=1).max()
        )


def test_rerun_skips_finished_rows_and_computes_only_new_settings(tmp_path):
    frames = clusters()
    recompute(frames, lj_settings(3.4, 3.3), tmp_path / "r.csv")
    Counting.log = []
    again = recompute(frames, lj_settings(3.4, 3.3), tmp_path / "r.csv")
    assert again.computed == 0 and again.skipped == 6 and Counting.log == []
    more = recompute(frames, lj_settings(3.4, 3.3, 3.2), tmp_path / "r.csv")
    assert more.computed == 3 and more.skipped == 6
    assert len(read_rows(tmp_path / "r.csv")) == 9


def test_a_killed_run_continues_without_repeating_a_row(tmp_path):
    frames = clusters(n_frames=4)
    with pytest.raises(KeyboardInterrupt):
        recompute(frames, lj_settings(3.4, 3.3, stop_after=5), tmp_path / "r.csv")
    assert len(read_rows(tmp_path / "r.csv")) == 5
    with open(tmp_path / "r.csv", "a") as handle:
        handle.write("4,abc,lj sigma")  # a row cut in the middle by the kill
    Counting.log = []
    out = recompute(frames, lj_settings(3.4, 3.3), tmp_path / "r.csv")
    assert out.computed == 3 and out.skipped == 5 and len(Counting.log) == 3
    rows = read_rows(tmp_path / "r.csv")
    assert sorted((int(r["frame"]), r["setting"]) for r in rows) == sorted(
        (i, f"lj sigma={s}") for s in (3.4, 3.3) for i in range(4)
    )


def test_force_differences_zero_for_identical_settings_positive_for_different(tmp_path):
    frames = clusters()
    settings = [
        (Setting("a"), lambda: Counting(3.4)),
        (Setting("a again"), lambda: Counting(3.4)),
        (Setting("b"), lambda: Counting(3.2)),
    ]
    out = recompute(frames, settings, tmp_path / "r.csv")
    by_name = {d.setting: d for d in out.differences if d.against == "a"}
    assert set(by_name) == {"a", "a again", "b"}
    assert by_name["a again"].force_rms_eV_per_A == 0.0
    assert by_name["a again"].force_max_eV_per_A == 0.0
    assert by_name["b"].force_rms_eV_per_A > 0.01
    assert by_name["b"].force_max_eV_per_A >= by_name["b"].force_rms_eV_per_A
    assert by_name["b"].n_frames == 3
    with open(differences_path(tmp_path / "r.csv")) as handle:
        table = list(csv.DictReader(handle))
    assert [(r["setting"], r["against"]) for r in table] == [
        ("a", "a"),
        ("a again", "a"),
        ("b", "a"),
    ]
    # against another reference setting the roles turn round
    other = recompute(frames, settings, tmp_path / "r.csv", reference_setting="b")
    assert {d.setting for d in other.differences if d.against == "b"} == {"a", "a again", "b"}


def test_the_frames_own_reference_is_compared_too(tmp_path):
    frames = clusters()
    for atoms in frames:
        work = atoms.copy()
        work.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0)
        atoms.info[ENERGY_KEY] = work.get_potential_energy()
        atoms.arrays[FORCES_KEY] = work.get_forces()
    ase.io.write(tmp_path / "ref.xyz", frames, format="extxyz")
    out = recompute(
        ase.io.read(tmp_path / "ref.xyz", ":"), lj_settings(3.4, 3.3), tmp_path / "r.csv"
    )
    own = {d.setting: d for d in out.differences if d.against == FILE_REFERENCE}
    assert own["lj sigma=3.4"].force_max_eV_per_A < 1e-6  # extended XYZ keeps 8 decimals
    assert abs(own["lj sigma=3.4"].energy_mean_diff_eV_per_atom) < 1e-8
    assert own["lj sigma=3.3"].force_rms_eV_per_A > 0.01


def test_refused_scf_is_a_row_not_retried_on_rerun(tmp_path):
    frames = clusters()
    refuse = {round(float(frames[1].positions[0, 0]), 9)}
    out = recompute(frames, lj_settings(3.4, refuse=refuse), tmp_path / "r.csv")
    assert out.refused == 1 and out.computed == 2
    rows = read_rows(tmp_path / "r.csv")
    assert [r["status"] for r in rows] == ["ok", "scf_not_converged", "ok"]
    assert "SCF not converged" in rows[1]["message"] and rows[1]["energy_eV"] == ""
    (summary,) = out.summaries
    assert (summary.n_ok, summary.n_refused) == (2, 1)
    Counting.log = []
    again = recompute(frames, lj_settings(3.4, refuse=refuse), tmp_path / "r.csv")
    assert again.computed == 0 and again.refused == 0 and Counting.log == []


def test_rows_of_another_trajectory_are_refused(tmp_path):
    recompute(clusters(seed=0), lj_settings(3.4), tmp_path / "r.csv")
    with pytest.raises(RecomputeError, match="holds frame 0 of another trajectory"):
        recompute(clusters(seed=1), lj_settings(3.4), tmp_path / "r.csv")


def test_reference_setting_by_a_unique_word():
    names = ["cp2k cutoff=400 functional=PBE", "cp2k cutoff=800 functional=PBE"]
    assert resolve_setting(names, None) == names[0]
    assert resolve_setting(names, "cutoff=800") == names[1]
    with pytest.raises(RecomputeError, match="matches 2 of the settings"):
        resolve_setting(names, "functional=PBE")
    with pytest.raises(RecomputeError, match="matches none"):
        resolve_setting(names, "cutoff=600")


def _cli(*args):
    return CliRunner().invoke(app, ["hpc", "recompute", *map(str, args)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--calculator", "lj"], "runs a DFT code"),
        (["--calculator", "cp2k", "--cutoff", "300", "--reference-setting", "cutoff=900"],
         "matches none of the settings"),
        (["--calculator", "cp2k", "--dft-command", "no-such-cp2k"],
         "'no-such-cp2k' is not on PATH"),
        (["--calculator", "cp2k", "--both-spins", "--spin"], "leave out --spin/--no-spin"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, options, message):
    ase.io.write(tmp_path / "t.xyz", clusters(), format="extxyz")
    result = _cli(tmp_path / "t.xyz", "--csv", tmp_path / "r.csv", *options)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.xyz"]


def test_figures_draw_the_records(tmp_path):
    from scalms.hpc.recompute import short_names
    from scalms.plots.hpc import net_force_vs_cutoff, save_recompute_figure

    out = recompute(clusters(), lj_settings(3.4, 3.3, 3.2), tmp_path / "r.csv")
    labels = short_names([s.setting for s in out.summaries])
    png = save_recompute_figure(out.differences, out.summaries, labels, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert short_names(["cp2k cutoff=400 spin=on", "cp2k cutoff=800 spin=on"]) == [
        "cutoff=400",
        "cutoff=800",
    ]
    records = [
        {"system": "Ga4", "cutoff_Ry": c, "net_force_eV_per_A": f, "wall_s": w}
        for c, f, w in ((400, 1.95, 29.0), (800, 0.055, 101.0), (1200, 0.007, 180.0))
    ]
    png = net_force_vs_cutoff(records, tmp_path / "net.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_cp2k_recomputes_h2_at_two_cutoffs(tmp_path, request):
    require_programs("cp2k.psmp")
    from scalms.hpc.dft.settings import DFTSettings
    from scalms.hpc.recompute import recompute_dft

    h2 = Atoms("H2", positions=[[0, 0, 0], [0.80, 0, 0]])  # stretched: a force along the bond
    ase.io.write(tmp_path / "h2.xyz", h2, format="extxyz")
    # a 3 Å vacuum keeps the grid small: about 10 s per single point on 2 busy cores. The
    # scratch is short: ASE names CP2K's PROJECT by its absolute path, which CP2K caps at 80
    # characters, and pytest's tmp_path is longer than that
    scratch = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    base = DFTSettings(threads=2, vacuum_A=3.0, workdir=scratch)
    out = recompute_dft(tmp_path / "h2.xyz", "cp2k", base, tmp_path / "r.csv", cutoffs=[200, 300])
    rows = read_rows(tmp_path / "r.csv")
    assert [r["cutoff"] for r in rows] == ["200", "300"]
    assert all(r["status"] == "ok" and int(r["scf_steps"]) > 0 for r in rows)
    for row in rows:
        forces = np.array(json.loads(row["forces_eV_per_A"]))
        assert forces[0, 0] > 0.5 and forces[1, 0] < -0.5  # a stretched bond pulls back
        assert float(row["net_force_eV_per_A"]) < 0.05
        assert float(row["energy_eV"]) == pytest.approx(-31.5, abs=1.0)  # H2, GTH-PBE
    # the first setting is the reference: zero against itself, a little off at the other cutoff
    first, second = (
        next(d for d in out.differences if f"cutoff={c}" in d.setting) for c in (200, 300)
    )
    assert first.against == second.against == first.setting == out.reference_setting
    assert first.force_max_eV_per_A == 0.0
    assert 0.0 < second.force_max_eV_per_A < 0.5
