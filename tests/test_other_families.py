"""ORB, MatterSim and NequIP: their adapters, in this interpreter and through the child protocol.

Pretrained weights cannot be downloaded here, so each family is tested with a tiny random or
briefly trained model of ML_training/models/ (made by ML_training/make_tiny_<family>.py): its
numbers mean nothing physically, but it goes through the same loaders as a real model.

Fast tests call the adapters in this interpreter, where the model packages are not installed:
the adapters check model_path before importing them. The slow tests run each family in its
managed environment (skipped when `scalms env create <family>` has not been run). A child
costs 20-40 s, so one run per family serves several checks: the tiny model, with both
backends, side by side with a corrupted weights file and an entry without model_path.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from scalms.config import ModelEntry, entry_problems
from scalms.errors import ModelLoadError
from scalms.evaluate import run_static
from scalms.io.static_results import is_complete, read_results, read_run_attrs
from scalms.models import FAMILIES
from scalms.testing import ENERGY_PER_ATOM_TOL_EV, FORCE_TOL_EV_PER_A, ga_bulk, ga_cluster

from .conftest import EXAMPLES, REPO, needs_env

MODELS = REPO / "ML_training" / "models"

TINY = {
    "orb": ModelEntry(
        name="orb-tiny",
        family="orb",
        model_path=MODELS / "orb-tiny-v3-conservative.ckpt",
        options={
            "architecture": "orb-v3-conservative",
            "hyperparameters": {
                "latent_dim": 32,
                "base_mlp_hidden_dim": 64,
                "head_mlp_hidden_dim": 32,
                "num_message_passing_steps": 2,
            },
        },
    ),
    "mattersim": ModelEntry(
        name="mattersim-tiny", family="mattersim", model_path=MODELS / "mattersim-tiny.pth"
    ),
    "nequip": ModelEntry(
        name="nequip-tiny", family="nequip", model_path=MODELS / "nequip-tiny-GaPt.nequip.zip"
    ),
}
NEQUIP_COMPILED = ModelEntry(
    name="nequip-tiny-torchscript",
    family="nequip",
    model_path=MODELS / "nequip-tiny-GaPt.nequip.pth",
)
"""The same weights as TINY["nequip"], compiled: loaded by from_compiled_model, not eagerly."""
EXTRA = {"nequip": [NEQUIP_COMPILED]}
FAMILY_KEYS = sorted(TINY)


def adapter(family: str):
    return importlib.import_module(FAMILIES[family].adapter)


# --- in this interpreter: no model package needed ---------------------------------------------


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_adapter_without_model_path_refuses_to_download_and_asks_for_model_path(family):
    entry = ModelEntry(name="some-pretrained-model", family=family)
    module = adapter(family)
    for load in (module.ase_calculator, module.torchsim_model):
        with pytest.raises(ModelLoadError) as caught:
            load(entry, "cpu")
        message = str(caught.value)
        assert "set model_path" in message and "offline" in message
        assert f"{FAMILIES[family].display}.models.some-pretrained-model" in message
    with pytest.raises(ModelLoadError, match="set model_path"):
        module.locate_weights(entry)


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_adapter_names_a_missing_weights_file(family, tmp_path):
    missing = tmp_path / "gone.bin"
    entry = ModelEntry(name="m", family=family, model_path=missing)
    with pytest.raises(ModelLoadError, match="file not found") as caught:
        adapter(family).ase_calculator(entry, "cpu")
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_locate_weights_gives_the_tiny_model_file_without_loading_it(family):
    entry = TINY[family]
    assert adapter(family).locate_weights(entry).endswith(entry.model_path.name)


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_unknown_option_is_refused_listing_the_allowed_ones(family):
    entry = ModelEntry(
        name="m", family=family, model_path=TINY[family].model_path, options={"colour": 1}
    )
    with pytest.raises(ModelLoadError, match=r"unknown \['colour'\]; allowed"):
        adapter(family).torchsim_model(entry, "cpu")


@pytest.mark.slow
@needs_env("orb")
def test_orb_checkpoint_without_a_known_architecture_asks_for_options_architecture(tmp_path):
    """An ORB checkpoint does not record its architecture: a custom name must say which."""
    entry = ModelEntry(name="my-orb", family="orb", model_path=TINY["orb"].model_path)
    structure = EXAMPLES / "Ga54Pt_icosahedron.xyz"
    (outcome,) = run_static([structure], [entry], tmp_path / "r.h5", device="cpu").outcomes
    assert not outcome.ok
    assert "set options.architecture" in outcome.reason


def test_nequip_ase_model_path_is_relative_to_model_path(tmp_path):
    (tmp_path / "m-batch.nequip.pt2").write_bytes(b"")
    entry = ModelEntry(
        name="m",
        family="nequip",
        model_path=tmp_path / "m-batch.nequip.pt2",
        options={"ase_model_path": "m-ase.nequip.pt2"},
    )
    assert adapter("nequip").locate_weights(entry) == str(tmp_path / "m-batch.nequip.pt2")
    with pytest.raises(ModelLoadError, match=r"options\.ase_model_path: file not found") as caught:
        adapter("nequip").ase_calculator(entry, "cpu")
    assert str(tmp_path / "m-ase.nequip.pt2") in str(caught.value)


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_config_check_asks_for_model_path_before_any_child_starts(family):
    (problem, *_) = entry_problems(ModelEntry(name="pretrained", family=family))
    assert "cannot happen offline" in problem and "set model_path" in problem


# --- through the child protocol, in each family's environment ---------------------------------


def side_by_side(family: str, tmp_path: Path):
    """One run_static: the tiny model(s), a corrupted file and an entry without model_path."""
    bad_file = tmp_path / ("corrupt" + "".join(TINY[family].model_path.suffixes))
    bad_file.write_bytes(b"\x00garbage, not a checkpoint\xff" * 64)
    bad = ModelEntry(
        name=f"{family}-corrupt", family=family, model_path=bad_file, options=TINY[family].options
    )
    no_path = ModelEntry(name=f"{family}-pretrained", family=family)
    bulk_file = tmp_path / "Ga32_bulk.extxyz"
    ga_bulk(repeat=2).write(bulk_file)
    structures = [EXAMPLES / "Ga54Pt_rattled.extxyz", bulk_file]
    entries = [TINY[family], *EXTRA.get(family, []), bad, no_path]
    run = run_static(structures, entries, tmp_path / "r.h5", backend="both", device="cpu")
    return run, {o.model: o for o in run.outcomes}, bad_file


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each family's side-by-side run, made on first use (module scope: one child per model)."""
    done = {}

    def get(family: str):
        if family not in done:
            done[family] = side_by_side(family, tmp_path_factory.mktemp(family))
        return done[family]

    return get


ENV_FAMILIES = [pytest.param(f, marks=[pytest.mark.slow, needs_env(f)]) for f in FAMILY_KEYS]


@pytest.mark.parametrize("family", ENV_FAMILIES)
def test_tiny_model_gives_the_same_numbers_with_torchsim_and_ase(family, runs):
    run, outcomes, _ = runs(family)
    name = TINY[family].name
    assert outcomes[name].ok, outcomes[name].reason
    results, attrs = read_results(run.out), read_run_attrs(run.out)
    assert attrs[f"{name}@torchsim"]["backend"] == "torchsim"  # no silent fallback to ASE
    torchsim, ase = results[f"{name}@torchsim"], results[f"{name}@ase"]
    assert set(torchsim) == {"Ga54Pt_rattled", "Ga32_bulk"}
    for label, frames in torchsim.items():
        for a, b in zip(frames, ase[label], strict=True):
            assert np.isfinite(a.get_potential_energy()), label
            de = abs(a.get_potential_energy() - b.get_potential_energy()) / len(a)
            assert de < ENERGY_PER_ATOM_TOL_EV, f"{label}: {de:.2e} eV/atom"
            np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=FORCE_TOL_EV_PER_A)
    (a,) = torchsim["Ga32_bulk"]
    (b,) = ase["Ga32_bulk"]
    np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-5)  # eV/Å³


@pytest.mark.parametrize("family", ENV_FAMILIES)
def test_corrupted_weights_fail_alone_with_a_readable_reason(family, runs):
    run, outcomes, bad_file = runs(family)
    bad = outcomes[f"{family}-corrupt"]
    assert not bad.ok
    assert str(bad_file) in bad.reason and "corrupt" in bad.reason
    assert "Traceback" not in bad.reason and "crashed" not in bad.reason
    assert outcomes[TINY[family].name].ok  # the good model beside it is unaffected
    assert is_complete(run.out)
    assert not any(name.startswith(f"{family}-corrupt") for name in read_results(run.out))


@pytest.mark.parametrize("family", ENV_FAMILIES)
def test_entry_without_model_path_fails_asking_for_model_path(family, runs):
    _, outcomes, _ = runs(family)
    outcome = outcomes[f"{family}-pretrained"]
    assert not outcome.ok
    assert "set model_path" in outcome.reason and "offline" in outcome.reason


@pytest.mark.slow
@needs_env("nequip")
def test_nequip_compiled_model_gives_the_numbers_of_the_packaged_one(runs):
    run, outcomes, _ = runs("nequip")
    assert outcomes[NEQUIP_COMPILED.name].ok, outcomes[NEQUIP_COMPILED.name].reason
    results = read_results(run.out)
    for backend in ("torchsim", "ase"):
        compiled = results[f"{NEQUIP_COMPILED.name}@{backend}"]
        packaged = results[f"{TINY['nequip'].name}@{backend}"]
        for label, frames in compiled.items():
            for a, b in zip(frames, packaged[label], strict=True):
                de = abs(a.get_potential_energy() - b.get_potential_energy()) / len(a)
                assert de < ENERGY_PER_ATOM_TOL_EV, f"{backend} {label}: {de:.2e} eV/atom"
                np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-6)


@pytest.mark.slow
@needs_env("nequip")
def test_nequip_refuses_an_element_outside_its_species_map(tmp_path):
    structure = tmp_path / "Ga54Au.xyz"
    ga_cluster(shells=3, solute="Au", n_solute=1).write(structure)
    run = run_static([structure], [TINY["nequip"]], tmp_path / "r.h5", device="cpu")
    (outcome,) = run.outcomes
    assert not outcome.ok
    assert "does not know element(s)" in outcome.reason and "Au" in outcome.reason
