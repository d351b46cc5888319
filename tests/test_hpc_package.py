"""`scalms hpc package`: splits by source file, thresholds, required elements, reproducibility,
and bad input refused with nothing written."""

import itertools
import json
import subprocess

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from scalms.cli import app
from scalms.config import managed_python
from scalms.hpc.labels import ENERGY_KEY, FORCES_KEY
from scalms.hpc.package import (
    SOURCE_KEY,
    TEST,
    VALID,
    PackageError,
    Split,
    Thresholds,
    assign_files,
    filter_frames,
    package,
)
from scalms.models import FAMILIES

SETS = ("train", "valid", "test")


def frame(symbols: str, seed: int, *, max_force=1.0, net=(0.0, 0.0, 0.0), config_type="rattle"):
    """A labelled cluster whose forces sum to ``net`` and whose largest force is ``max_force``."""
    rng = np.random.default_rng(seed)
    atoms = Atoms(symbols, positions=rng.uniform(0, 6, (len(Atoms(symbols)), 3)))
    forces = rng.normal(size=(len(atoms), 3))
    forces -= forces.mean(axis=0)  # sums to zero
    forces *= max_force / np.linalg.norm(forces, axis=1).max()
    forces += np.asarray(net, dtype=float) / len(atoms)
    atoms.info[ENERGY_KEY] = float(rng.normal(-3.0 * len(atoms), 1.0))
    atoms.arrays[FORCES_KEY] = forces
    atoms.info["config_type"] = config_type
    return atoms


def write_files(folder, n_files, frames_per_file=5, symbols=lambda i: "Ga6", prefix="run"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        n = frames_per_file(i) if callable(frames_per_file) else frames_per_file
        frames = [frame(symbols(i), 1000 * i + j) for j in range(n)]
        ase.io.write(folder / f"{prefix}_{i:02d}.xyz", frames, format="extxyz")


def read_sets(folder):
    return {
        name: ase.io.read(folder / f"{name}.xyz", ":") if (folder / f"{name}.xyz").exists() else []
        for name in SETS
    }


def files_of(frames):
    return {atoms.info[SOURCE_KEY] for atoms in frames}


def test_split_puts_each_file_in_one_set_at_the_asked_percentages(tmp_path):
    write_files(tmp_path / "in", 20)
    (written,) = package(tmp_path / "in", tmp_path / "out", "*.xyz", "80-10-10")
    sets = read_sets(written.folder)
    assert [len(sets[name]) for name in SETS] == [80, 10, 10]
    owners = [files_of(sets[name]) for name in SETS]
    for a, b in itertools.combinations(owners, 2):
        assert not a & b, "a file in two sets"
    assert set().union(*owners) == {f"run_{i:02d}.xyz" for i in range(20)}
    record = json.loads((written.folder / "report.json").read_text())
    assert [record["sets"][name]["percent"] for name in SETS] == [80.0, 10.0, 10.0]
    assert sorted(record["sets"]["test"]["files"]) == sorted(owners[2])


def test_output_keeps_reference_under_mace_keys_and_config_type(tmp_path):
    source = [frame("Ga5Pt", seed) for seed in range(3)]
    write_files(tmp_path / "in", 9)
    ase.io.write(tmp_path / "in" / "run_pt.xyz", source, format="extxyz")
    (written,) = package(tmp_path / "in", tmp_path / "out", split="50-25-25")
    back = list(itertools.chain(*read_sets(written.folder).values()))
    assert all(a.calc is None for a in back)
    pt = [a for a in back if a.info[SOURCE_KEY] == "run_pt.xyz"]
    assert len(pt) == 3
    for original, copy in zip(source, pt, strict=True):
        # extended XYZ keeps 8 decimals of positions and forces
        assert copy.info[ENERGY_KEY] == pytest.approx(original.info[ENERGY_KEY], abs=1e-8)
        np.testing.assert_allclose(copy.arrays[FORCES_KEY], original.arrays[FORCES_KEY], atol=1e-7)
        np.testing.assert_allclose(copy.positions, original.positions, atol=1e-7)
        assert copy.info["config_type"] == "rattle"


def test_each_threshold_drops_the_frames_made_to_violate_it(tmp_path):
    thresholds = Thresholds(force_eV_per_A=5.0, net_force_eV_per_A=0.1)
    missing_energy = frame("Ga4", 3)
    del missing_energy.info[ENERGY_KEY]
    missing_forces = frame("Ga4", 4)
    del missing_forces.arrays[FORCES_KEY]
    frames = [
        frame("Ga4", 0, max_force=4.9),  # just under the cap: kept
        frame("Ga4", 1, max_force=5.5),
        frame("Ga4", 2, net=(0.0, 0.2, 0.0)),
        missing_energy,
        missing_forces,
        frame("Ga4", 5, net=(0.05, 0.05, 0.0)),  # |ΣF| 0.07: kept
    ]
    kept, isolated, dropped = filter_frames(frames, thresholds)
    assert [d.frame for d in dropped] == [1, 2, 3, 4]
    assert [d.reason for d in dropped] == [
        "max_force",
        "net_force",
        "missing_energy",
        "missing_forces",
    ]
    assert dropped[0].value == pytest.approx(5.5, rel=1e-6)
    assert dropped[1].value == pytest.approx(0.2, rel=1e-6)
    assert "REF_energy" in dropped[2].detail and "REF_forces" in dropped[3].detail
    assert len(kept) == 2 and not isolated
    # tighter caps drop the frames that passed
    _, _, tighter = filter_frames(frames, Thresholds(4.0, 0.05))
    assert {d.frame for d in tighter} == {0, 1, 2, 3, 4, 5}


def test_dropped_frames_are_reported_per_file_and_never_written(tmp_path):
    write_files(tmp_path / "in", 4, frames_per_file=3)
    bad = [frame("Ga4", 7, max_force=9.0), frame("Ga4", 8), frame("Ga4", 9, net=(1.0, 0, 0))]
    ase.io.write(tmp_path / "in" / "run_bad.xyz", bad, format="extxyz")
    (written,) = package(tmp_path / "in", tmp_path / "out", split="60-20-20")
    back = list(itertools.chain(*read_sets(written.folder).values()))
    assert len(back) == 4 * 3 + 1
    for atoms in back:
        forces = atoms.arrays[FORCES_KEY]
        assert np.linalg.norm(forces, axis=1).max() <= 5.0
        assert np.linalg.norm(forces.sum(axis=0)) <= 0.1
    record = json.loads((written.folder / "report.json").read_text())
    (entry,) = [f for f in record["files"] if f["name"] == "run_bad.xyz"]
    assert [(d["frame"], d["reason"]) for d in entry["dropped"]] == [
        (0, "max_force"),
        (2, "net_force"),
    ]
    assert entry["frames_kept"] == 1
    markdown = (written.folder / "report.md").read_text()
    assert "`run_bad.xyz` frame 0: max |F| 9 eV/Å above --force-threshold 5" in markdown


def test_isolated_atoms_go_to_train_untouched_by_the_thresholds(tmp_path):
    write_files(tmp_path / "in", 10)
    e0 = Atoms("Ga", positions=[[5.0, 5.0, 5.0]], cell=[10, 10, 10])
    e0.info.update({ENERGY_KEY: -0.28, "config_type": "IsolatedAtom"})
    e0.arrays[FORCES_KEY] = np.array([[0.0, 0.3, 0.0]])  # a net force, yet kept as it is
    ase.io.write(
        tmp_path / "in" / "run_05.xyz", [*ase.io.read(tmp_path / "in" / "run_05.xyz", ":"), e0]
    )
    for seed in range(4):
        (written,) = package(tmp_path / "in", tmp_path / f"out{seed}", split="80-10-10", seed=seed)
        sets = read_sets(written.folder)
        isolated = [a for a in sets["train"] if a.info["config_type"] == "IsolatedAtom"]
        assert len(isolated) == 1 and isolated[0].info[ENERGY_KEY] == pytest.approx(-0.28)
        assert not any(
            a.info["config_type"] == "IsolatedAtom" for a in sets["valid"] + sets["test"]
        )
        assert sum(len(f) for f in sets.values()) == 51


def test_listed_elements_are_in_valid_and_test_for_every_seed(tmp_path):
    def symbols(i):
        return {3: "Ga5Pt", 11: "Ga5Pt", 7: "Ga5Bi", 12: "Ga4PtBi", 15: "Ga5Bi"}.get(i, "Ga6")

    write_files(tmp_path / "in", 20, symbols=symbols)
    written = package(
        tmp_path / "in",
        tmp_path / "out",
        split="80-10-10",
        elements_in_test_valid="Pt,Bi",
        amount=5,
    )
    assert len(written) == 5
    for item in written:
        sets = read_sets(item.folder)
        for name in ("valid", "test"):
            present = {s for a in sets[name] for s in a.get_chemical_symbols()}
            assert {"Pt", "Bi"} <= present, (item.folder, name)
        record = json.loads((item.folder / "report.json").read_text())
        assert record["sets"]["test"]["elements"]["Pt"]["frames"] >= 5


def test_element_in_a_single_file_cannot_be_in_valid_and_test(tmp_path):
    write_files(tmp_path / "in", 10, symbols=lambda i: "Ga5Pt" if i == 4 else "Ga6")
    with pytest.raises(PackageError, match=r"Pt is in 1 file.*run_04\.xyz.*valid and test"):
        package(tmp_path / "in", tmp_path / "out", elements_in_test_valid="Pt")
    assert not (tmp_path / "out").exists()


def test_required_elements_that_take_every_file_leave_train_empty_and_fail():
    elements = [frozenset({"Pt"}), frozenset({"Pt", "Bi"}), frozenset({"Bi"})]
    with pytest.raises(PackageError, match="no file is left for train"):
        assign_files([5, 5, 5], elements, Split(80, 10, 10), ["Pt", "Bi"], 0)


def test_percentages_as_close_as_whole_files_allow():
    rng = np.random.default_rng(7)
    for trial in range(40):
        sizes = [int(s) for s in rng.integers(1, 40, int(rng.integers(3, 12)))]
        where = assign_files(sizes, [frozenset()] * len(sizes), Split(80, 10, 10), [], trial)
        assert set(where) == {0, 1, 2}
        total = sum(sizes)
        for s, share in enumerate((0.8, 0.1, 0.1)):
            count = sum(n for n, w in zip(sizes, where, strict=True) if w == s)
            assert abs(count - share * total) <= max(sizes), (sizes, where)
        # no single file moved elsewhere brings the counts closer (a local optimum)
        deviation = _deviation(sizes, where)
        for i, s in itertools.product(range(len(sizes)), range(3)):
            moved = list(where)
            moved[i] = s
            if set(moved) == {0, 1, 2}:
                assert _deviation(sizes, moved) >= deviation - 1e-9


def _deviation(sizes, where):
    total = sum(sizes)
    return sum(
        abs(sum(n for n, w in zip(sizes, where, strict=True) if w == s) - share * total)
        for s, share in enumerate((0.8, 0.1, 0.1))
    )


def test_required_elements_hold_after_the_balancing_moves():
    sizes = [30, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    elements = [frozenset({"Pt"})] + [frozenset()] * 8 + [frozenset({"Pt"})]
    for seed in range(10):
        where = assign_files(sizes, elements, Split(80, 10, 10), ["Pt"], seed)
        assert {where[0], where[9]} == {VALID, TEST}


def test_amount_gives_different_packagings_reproducible_by_seed(tmp_path):
    write_files(tmp_path / "in", 20)
    written = package(tmp_path / "in", tmp_path / "a", amount=3, seed=10)
    assignments = [json.loads((w.folder / "report.json").read_text()) for w in written]
    tests = [frozenset(r["sets"]["test"]["files"]) for r in assignments]
    assert len(set(tests)) == 3
    assert [r["seed"] for r in assignments] == [10, 11, 12]
    # the same seed again: the same bytes; seed 11 alone: the second packaging of seed 10
    (again,) = package(tmp_path / "in", tmp_path / "b", seed=11)
    for name in ("train.xyz", "valid.xyz", "test.xyz"):
        assert (again.folder / name).read_bytes() == (written[1].folder / name).read_bytes()


def test_extra_files_go_to_train_only(tmp_path):
    write_files(tmp_path / "in", 10)
    write_files(tmp_path / "more", 1, frames_per_file=4, prefix="extra")
    extra = tmp_path / "more" / "extra_00.xyz"
    (written,) = package(tmp_path / "in", tmp_path / "out", extra=[extra])
    sets = read_sets(written.folder)
    assert files_of(sets["train"]) >= {str(extra)}
    assert str(extra) not in files_of(sets["valid"]) | files_of(sets["test"])
    record = json.loads((written.folder / "report.json").read_text())
    # the share is of the split files; the extra frames come on top in train
    assert record["sets"]["train"]["frames"] == 40 + 4
    assert record["sets"]["train"]["percent"] == 80.0


def test_frames_with_calculator_results_are_packaged_under_ref_keys(tmp_path):
    write_files(tmp_path / "in", 9)
    frames = []
    for seed in range(2):
        atoms = frame("Ga4", 50 + seed)
        energy, forces = atoms.info.pop(ENERGY_KEY), atoms.arrays.pop(FORCES_KEY)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append((atoms, energy, forces))
    ase.io.write(tmp_path / "in" / "calc.xyz", [a for a, _, _ in frames], format="extxyz")
    (written,) = package(tmp_path / "in", tmp_path / "out", split="50-25-25")
    back = [
        a
        for a in itertools.chain(*read_sets(written.folder).values())
        if a.info[SOURCE_KEY] == "calc.xyz"
    ]
    assert len(back) == 2
    for copy, (_, energy, forces) in zip(back, frames, strict=True):
        assert copy.calc is None  # written under REF_*, not as calculator results
        assert copy.info[ENERGY_KEY] == pytest.approx(energy)
        np.testing.assert_allclose(copy.arrays[FORCES_KEY], forces, atol=1e-7)


def test_rerun_into_the_input_folder_never_packages_its_own_output(tmp_path):
    write_files(tmp_path / "in", 10)
    package(tmp_path / "in", tmp_path / "in" / "out", pattern="**/*.xyz")
    (again,) = package(tmp_path / "in", tmp_path / "in" / "out", pattern="**/*.xyz")
    assert sum(len(f) for f in read_sets(again.folder).values()) == 50


def _cli(*args):
    return CliRunner().invoke(app, ["hpc", "package", *map(str, args)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--split", "80-10-5"], "adds to 95, not 100"),
        (["--force-threshold", "0.01"], "every frame of the 10 file(s) was dropped"),
        (["--pattern", "*.traj"], "no file in"),
        (["--elements-in-test-valid", "Bi"], "Bi is in no kept frame"),
        (["--elements-in-test-valid", "Qq"], "Qq is not an element symbol"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, options, message):
    write_files(tmp_path / "in", 10)
    result = _cli(tmp_path / "in", "--out", tmp_path / "out", *options)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_cli_packages_and_prints_the_sets(tmp_path):
    write_files(tmp_path / "in", 10)
    result = _cli(tmp_path / "in", "--out", tmp_path / "out", "--amount", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "dataset_1" in result.output
    for k in range(2):
        assert (tmp_path / "out" / f"dataset_{k}" / "report.md").exists()
    fewer = _cli(tmp_path / "in", "--out", tmp_path / "out", "--amount", "1")
    assert fewer.exit_code == 0 and "also holds dataset_1 from an earlier" in fewer.output


MACE_PYTHON = managed_python(FAMILIES["mace"])


@pytest.mark.slow
@pytest.mark.mace
@pytest.mark.skipif(not MACE_PYTHON.exists(), reason="no mace environment")
def test_mace_reads_the_packaged_files_as_they_are(tmp_path):
    write_files(tmp_path / "in", 10)
    e0 = Atoms("Ga", cell=[10, 10, 10])
    e0.info.update({ENERGY_KEY: -0.28, "config_type": "IsolatedAtom"})
    ase.io.write(tmp_path / "e0.xyz", e0, format="extxyz")
    (written,) = package(tmp_path / "in", tmp_path / "out", extra=[tmp_path / "e0.xyz"])
    script = (
        "import sys, json\n"
        "from mace.data.utils import KeySpecification, load_from_xyz\n"
        "keys = KeySpecification.from_defaults()\n"
        "keys.update(info_keys={'energy': 'REF_energy'}, arrays_keys={'forces': 'REF_forces'})\n"
        "out = {}\n"
        "for name in ('train', 'valid', 'test'):\n"
        "    e0s, configs = load_from_xyz(f'{sys.argv[1]}/{name}.xyz', keys,"
        " extract_atomic_energies=True)\n"
        "    out[name] = [len(configs), {str(k): v for k, v in e0s.items()},"
        " float(configs[0].properties['forces'][0][0])]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(MACE_PYTHON), "-c", script, str(written.folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert [read[name][0] for name in SETS] == [40, 5, 5]
    assert read["train"][1] == {"31": pytest.approx(-0.28)}
    first = ase.io.read(written.folder / "valid.xyz", 0)
    assert read["valid"][2] == pytest.approx(first.arrays[FORCES_KEY][0][0])
