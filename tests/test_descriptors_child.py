"""The ``descriptors`` child job: per-atom invariant descriptors of frames, in the model's own
environment, written as one HDF5 file.

Each model child costs 10-40 s of start-up (sevenn or mace import), so one SevenNet run checks
the layout, the width and both symmetries at once: the rotated and permuted frames are further
inputs of the same task.
"""

import importlib
import json
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from scipy.spatial.transform import Rotation

from scalms.config import ModelEntry, load_config, managed_python
from scalms.errors import NoDescriptors, ScalmsError
from scalms.models import FAMILIES
from scalms.models.loading import check_descriptors
from scalms.structural import descriptor_job
from scalms.testing import ga_cluster, write_model_config
from scalms.workers.parent import run_child
from scalms.workers.task import Task

from .conftest import REPO, needs_env

TINY_MACE = REPO / "ML_training" / "models" / "mace-tiny-GaPt.model"
SEVENNET_0_WIDTH = 128
"""Scalar node features entering SevenNet-0's readout (its 128x0e last-layer irreps)."""
SYMMETRY_TOL_FLOAT32 = 1e-3
"""Descriptors of a rotated or permuted float32 frame match the original to this (values ~1-10)."""


def _entries(tmp_path: Path) -> dict[str, ModelEntry]:
    config = write_model_config(
        tmp_path,
        "builtin:\n  models:\n    emt: {}\nSevenNet:\n  models:\n    7net-0: {}\n"
        f"MACE:\n  models:\n    mace-tiny-GaPt:\n      model_path: {TINY_MACE}\n",
    )
    return load_config(config).entries


def _rattled_frames(n_frames: int = 2) -> list[Atoms]:
    """Frames of one Ga53Pt2 cluster (same atoms, same order), each rattled differently."""
    base = ga_cluster(3, "Pt", 2)
    frames = []
    for seed in range(1, n_frames + 1):
        atoms = base.copy()
        atoms.rattle(stdev=0.1, seed=seed)
        frames.append(atoms)
    return frames


def _rotated(frames: list[Atoms]) -> list[Atoms]:
    """Each frame turned about its centre by one fixed rotation and shifted by 1.3 Å."""
    rotation = Rotation.from_euler("xyz", [30, 50, 70], degrees=True)
    turned = []
    for atoms in frames:
        atoms = atoms.copy()
        centre = atoms.get_center_of_mass()
        atoms.positions = rotation.apply(atoms.positions - centre) + centre + 1.3
        turned.append(atoms)
    return turned


def _descriptor_task(entry: ModelEntry, folder: Path, inputs: dict[str, list[Atoms]]) -> Task:
    """A task describing ``inputs`` (label -> frames), each written as its own extended XYZ."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for label, frames in inputs.items():
        path = folder / f"{label}.extxyz"
        write(path, frames, format="extxyz")
        specs.append({"label": label, "path": str(path)})
    output = folder / "run" / "descriptors.h5"
    return Task("descriptors", entry, output, "cpu", 0, {"inputs": specs})


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """The job's attributes, and each input's descriptors and ``path`` from its own file."""
    with h5py.File(path, "r") as handle:
        attrs = dict(handle.attrs)
    arrays, paths = {}, {}
    for label in json.loads(attrs["inputs"]):
        with h5py.File(descriptor_job.input_output(path, label), "r") as handle:
            assert handle.attrs["complete"] and handle.attrs["width"] == attrs["width"]
            arrays[label] = handle["descriptors"][()]
            paths[label] = handle.attrs["path"]
    return attrs, arrays, paths


def test_check_descriptors_refuses_builtin_naming_the_families_that_give_them(tmp_path):
    entries = _entries(tmp_path)
    with pytest.raises(NoDescriptors) as refused:
        check_descriptors(entries["emt"])
    assert str(refused.value) == (
        "model 'emt' (builtin) gives no per-atom descriptors in scalms; "
        "families that do: MACE, SevenNet"
    )
    check_descriptors(entries["7net-0"])
    check_descriptors(entries["mace-tiny-GaPt"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_descriptors_flag_matches_the_adapter_offering_describer(family):
    # adapters import their model package only inside functions, so this runs in any environment
    adapter = importlib.import_module(FAMILIES[family].adapter)
    assert hasattr(adapter, "describer") == FAMILIES[family].descriptors


def test_descriptor_job_refuses_builtin_model_and_writes_nothing(tmp_path):
    task = _descriptor_task(_entries(tmp_path)["emt"], tmp_path, {"frames": _rattled_frames(1)})
    with pytest.raises(NoDescriptors):
        descriptor_job.run(task, "cpu")
    assert not task.output.parent.exists()


def test_input_whose_frames_reorder_atoms_is_refused(tmp_path):
    first, second = _rattled_frames(2)
    pt, ga = int(np.flatnonzero(first.symbols == "Pt")[0]), 0
    order = np.arange(len(second))
    order[[pt, ga]] = order[[ga, pt]]  # same composition, a Pt and a Ga swapped in the list
    path = tmp_path / "swapped.extxyz"
    write(path, [first, second[order]], format="extxyz")
    with pytest.raises(ScalmsError, match=r"input 'swapped' .*frame 1 .*same atoms in the same"):
        descriptor_job.read_inputs({"inputs": [{"label": "swapped", "path": str(path)}]})


def test_repeated_input_label_is_refused(tmp_path):
    path = tmp_path / "a.extxyz"
    write(path, _rattled_frames(1), format="extxyz")
    spec = {"label": "a", "path": str(path)}
    with pytest.raises(ScalmsError, match="unique"):
        descriptor_job.read_inputs({"inputs": [spec, spec]})


@pytest.mark.slow
@pytest.mark.sevennet
@needs_env("sevennet")
def test_sevennet_descriptors_are_invariant_per_atom_rows_in_a_complete_file(tmp_path):
    frames = _rattled_frames(2)
    permutation = np.random.default_rng(3).permutation(len(frames[0]))
    inputs = {
        "frames": frames,
        "rotated": _rotated(frames),
        "permuted": [atoms[permutation] for atoms in frames],
    }
    task = _descriptor_task(_entries(tmp_path)["7net-0"], tmp_path, inputs)
    events = []
    result = run_child(task, task.output.parent, timeout_s=900, on_event=events.append)
    assert result.ok, f"{result.reason()}; log: {result.log.read_text()[-2000:]}"

    attrs, arrays, paths = _read(task.output)
    n_atoms = len(frames[0])
    assert attrs["format"] == "scalms-descriptors" and attrs["version"] == 1
    assert (attrs["model"], attrs["family"], attrs["device"]) == ("7net-0", "sevennet", "cpu")
    assert "pre-hook" in attrs["source"] and attrs["width"] == SEVENNET_0_WIDTH
    assert attrs["n_atom_frames"] == 3 * 2 * n_atoms
    assert attrs["load_time_s"] > 0 and attrs["compute_time_s"] > 0
    assert "sevenn" in json.loads(attrs["versions"]) and attrs["complete"]
    assert paths == {label: str(tmp_path / f"{label}.extxyz") for label in inputs}
    progress = [e for e in events if e["event"] == "progress"]
    assert (progress[-1]["done"], progress[-1]["total"]) == (6, 6)
    assert sorted(p.name for p in task.output.parent.iterdir()) == sorted(
        ["child.log", "descriptors.h5", "task.json", *(f"descriptors.{k}.h5" for k in inputs)]
    )  # no temporary file left beside the results

    original = arrays["frames"]
    assert original.shape == (2, n_atoms, SEVENNET_0_WIDTH) and original.dtype == np.float32
    assert np.isfinite(original).all() and not np.allclose(original[0], original[1])
    np.testing.assert_allclose(arrays["rotated"], original, rtol=0, atol=SYMMETRY_TOL_FLOAT32)
    np.testing.assert_allclose(
        arrays["permuted"], original[:, permutation], rtol=0, atol=SYMMETRY_TOL_FLOAT32
    )
    pt = frames[0].symbols == "Pt"
    for frame in original:
        pt_to_ga = np.linalg.norm(frame[pt][:, None] - frame[~pt][None], axis=2)
        ga_to_ga = np.linalg.norm(frame[~pt][:, None] - frame[~pt][None], axis=2)
        # a Pt atom's row lies further from every Ga row than a typical Ga row from another
        assert pt_to_ga.min() > np.median(ga_to_ga)


def _tiny_mace_expected_width() -> int:
    """Scalar channels of the hidden features times interaction layers, read from the model
    file in the mace environment (mace's descriptors: the invariants of every layer)."""
    probe = (
        "import json, sys, mace, torch\n"
        "from e3nn import o3\n"
        "model = torch.load(sys.argv[1], map_location='cpu', weights_only=False)\n"
        "hidden = o3.Irreps(str(model.products[0].linear.irreps_out))\n"
        "print(json.dumps([int(model.num_interactions), "
        "sum(mul for mul, irrep in hidden if irrep.l == 0)]))\n"
    )
    python = managed_python(FAMILIES["mace"])
    done = subprocess.run(
        [str(python), "-c", probe, str(TINY_MACE)], capture_output=True, text=True, check=True
    )
    layers, scalar_channels = json.loads(done.stdout.strip().splitlines()[-1])
    return layers * scalar_channels


@pytest.mark.slow
@pytest.mark.mace
@needs_env("mace")
def test_tiny_mace_descriptor_width_is_scalar_channels_times_layers(tmp_path):
    frames = _rattled_frames(2)
    task = _descriptor_task(
        _entries(tmp_path)["mace-tiny-GaPt"],
        tmp_path,
        {"frames": frames, "rotated": _rotated(frames)},
    )
    result = run_child(task, task.output.parent, timeout_s=900)
    assert result.ok, f"{result.reason()}; log: {result.log.read_text()[-2000:]}"

    attrs, arrays, _ = _read(task.output)
    expected = _tiny_mace_expected_width()
    assert attrs["width"] == expected
    assert arrays["frames"].shape == (2, len(frames[0]), expected)
    assert attrs["source"].startswith("mace get_descriptors(invariants_only=True)")
    assert np.isfinite(arrays["frames"]).all() and attrs["complete"]
    # float64 model: rotation changes its invariants only by round-off
    np.testing.assert_allclose(arrays["rotated"], arrays["frames"], rtol=0, atol=1e-5)
