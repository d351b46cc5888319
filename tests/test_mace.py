"""MACE through its own environment and the real child protocol, with the tiny Ga-Pt model of
ML_training/ (made by ML_training/make_tiny_mace.py).

Each child costs 20-40 s of start-up, so one run serves several checks: the good model and a
corrupted weights file evaluate the same structures side by side.
"""

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from scalms.config import ModelEntry, load_config
from scalms.evaluate import run_static
from scalms.io.static_results import is_complete, read_results, read_run_attrs
from scalms.testing import (
    ENERGY_PER_ATOM_TOL_EV,
    FORCE_TOL_EV_PER_A,
    ga_bulk,
    ga_cluster,
    write_model_config,
)

from .conftest import EXAMPLES, REPO, needs_env

pytestmark = [pytest.mark.mace, needs_env("mace")]

MODEL_FILE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
LABELS = REPO / "ML_training" / "data" / "GaPt_test.extxyz"
NAME = "mace-tiny-GaPt"


def tiny_mace(tmp_path: Path) -> ModelEntry:
    """The tiny model's entry, read from a model config as a user would write it."""
    config = write_model_config(
        tmp_path,
        f"MACE:\n  models:\n    {NAME}:\n      model_path: {MODEL_FILE}\n"
        "      options: {default_dtype: float64}\n",
    )
    return load_config(config).entries[NAME]


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    """The tiny MACE and a corrupted copy, both backends, on Ga-Pt clusters and a periodic cell."""
    tmp_path = tmp_path_factory.mktemp("mace")
    bad_file = tmp_path / "bad.model"
    bad_file.write_bytes(b"\x00garbage, not a pickle\xff" * 64)
    bad = ModelEntry(name="mace-corrupt", family="mace", model_path=bad_file)
    bulk_file = tmp_path / "Ga32_bulk.extxyz"
    ga_bulk(repeat=2).write(bulk_file)
    structures = [
        EXAMPLES / "Ga54Pt_rattled.extxyz",
        EXAMPLES / "Ga144Pt3_icosahedron.xyz",
        bulk_file,
    ]
    out = tmp_path / "r.h5"
    run = run_static(structures, [tiny_mace(tmp_path), bad], out, backend="both", device="cpu")
    return run, {o.model: o for o in run.outcomes}, bad_file


def test_torchsim_and_ase_give_the_same_energies_forces_and_stress(side_by_side):
    run, outcomes, _ = side_by_side
    assert outcomes[NAME].ok, outcomes[NAME].reason
    results = read_results(run.out)
    attrs = read_run_attrs(run.out)
    assert attrs[f"{NAME}@torchsim"]["backend"] == "torchsim"  # no silent fallback to ASE
    assert attrs[f"{NAME}@ase"]["versions"]["mace-torch"] == "0.3.16"
    torchsim, ase = results[f"{NAME}@torchsim"], results[f"{NAME}@ase"]
    assert set(torchsim) == {"Ga54Pt_rattled", "Ga144Pt3_icosahedron", "Ga32_bulk"}
    for label, frames in torchsim.items():
        for a, b in zip(frames, ase[label], strict=True):
            de = abs(a.get_potential_energy() - b.get_potential_energy()) / len(a)
            assert de < ENERGY_PER_ATOM_TOL_EV, label
            np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=FORCE_TOL_EV_PER_A)
    (a,) = torchsim["Ga32_bulk"]
    (b,) = ase["Ga32_bulk"]
    np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-5)  # eV/Å³


def test_tiny_model_follows_its_sevennet_labels_roughly(side_by_side):
    """Not pure noise: on the example clusters it lands near the SevenNet-0 labels of
    ML_training/data (ML_training/README.md gives the measured errors)."""
    run, _, _ = side_by_side
    results = read_results(run.out)[f"{NAME}@ase"]
    labelled = read(LABELS, ":")
    for frame in results["Ga54Pt_rattled"] + results["Ga144Pt3_icosahedron"]:
        (ref,) = [
            a
            for a in labelled
            if len(a) == len(frame) and np.allclose(a.positions, frame.positions, atol=1e-6)
        ]
        de = abs(frame.get_potential_energy() - ref.info["REF_energy"]) / len(frame)
        assert de < 0.05, f"{de * 1000:.0f} meV/atom from SevenNet-0"
        df = np.abs(frame.get_forces() - ref.arrays["REF_forces"]).mean()
        assert df < 0.3, f"force MAE {df:.2f} eV/Å against SevenNet-0"


def test_corrupted_weights_fail_alone_with_the_path_in_the_reason(side_by_side):
    run, outcomes, bad_file = side_by_side
    bad = outcomes["mace-corrupt"]
    assert not bad.ok
    assert "cannot load MACE weights file" in bad.reason and str(bad_file) in bad.reason
    assert "Traceback" not in bad.reason
    assert outcomes[NAME].ok  # the good model before it is unaffected
    assert is_complete(run.out)
    assert not any(name.startswith("mace-corrupt") for name in read_results(run.out))


def test_element_unknown_to_the_model_is_refused_naming_it(tmp_path):
    structure = tmp_path / "Ga54Au.xyz"
    ga_cluster(shells=3, solute="Au", n_solute=1).write(structure)
    run = run_static([structure], [tiny_mace(tmp_path)], tmp_path / "r.h5", device="cpu")
    (outcome,) = run.outcomes
    assert not outcome.ok
    assert "does not know element(s)" in outcome.reason and "Au" in outcome.reason
