"""Train a tiny NequIP model on Lennard-Jones Ga-Pt clusters, and package it, for tests.

Run in the NequIP environment:  .venvs/nequip/bin/python ML_training/make_tiny_nequip.py
(about two minutes on two cores; add ``--compile`` to also write AOTInductor files, which takes
several minutes more and needs a C++ compiler).

NequIP's loaders need a file made by its own workflow, so this script runs it end to end:
label rattled copies of examples/Ga54Pt_rattled.extxyz with ASE's Lennard-Jones calculator,
``nequip-train`` a very small NequIP model for a few epochs (the numbers mean nothing
physically), then ``nequip-package build`` the checkpoint into
``ML_training/models/nequip-tiny-GaPt.nequip.zip``, the portable format that both scalms
backends load in eager mode, and compile it to TorchScript,
``ML_training/models/nequip-tiny-GaPt.nequip.pth``, the compiled format that serves both
backends. ``nequip-compile --mode torchscript`` refuses PyTorch >= 2.10, so the script calls
the function that command would (``save_torchscript_model``), with the same metadata.

With ``--compile``, ``nequip-compile --mode aotinductor`` also writes
``nequip-tiny-GaPt-{ase,batch}.nequip.pt2`` into the scratch folder (over 2 MB each, so not
kept in the repository): an AOTInductor file serves one target only, ``ase`` for the ASE
calculator and ``batch`` for TorchSim.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

HERE = Path(__file__).parent
EXAMPLE = HERE.parent / "examples" / "Ga54Pt_rattled.extxyz"
OUT = HERE / "models" / "nequip-tiny-GaPt.nequip.zip"
TORCHSCRIPT = HERE / "models" / "nequip-tiny-GaPt.nequip.pth"
BIN = Path(sys.executable).parent

CONFIG = """\
run: [train]
seed: 1
cutoff_radius: 5.0
chemical_symbols: [Ga, Pt]
model_type_names: ${chemical_symbols}

data:
  _target_: nequip.data.datamodule.NequIPDataModule
  seed: ${seed}
  split_dataset:
    dataset:
      _target_: nequip.data.dataset.ASEDataset
      file_path: DATA_FILE
      transforms:
        - _target_: nequip.data.transforms.NeighborListTransform
          r_max: ${cutoff_radius}
        - _target_: nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper
          model_type_names: ${model_type_names}
          chemical_species_to_atom_type_map: {Ga: Ga, Pt: Pt}
    train: 8
    val: 4
  train_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 4}
  val_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 4}
  stats_manager:
    _target_: nequip.data.CommonDataStatisticsManager
    type_names: ${model_type_names}

trainer:
  _target_: lightning.Trainer
  max_epochs: 3
  accelerator: cpu
  enable_progress_bar: false
  logger: false
  callbacks:
    - _target_: lightning.pytorch.callbacks.ModelCheckpoint
      dirpath: CKPT_DIR
      save_last: true

training_module:
  _target_: nequip.train.EMALightningModule
  loss:
    _target_: nequip.train.EnergyForceLoss
    per_atom_energy: true
    coeffs: {total_energy: 1.0, forces: 1.0}
  val_metrics:
    _target_: nequip.train.EnergyForceMetrics
    coeffs: {total_energy_mae: 1.0, forces_mae: 1.0}
  optimizer:
    _target_: torch.optim.Adam
    lr: 0.01
  model:
    _target_: nequip.model.NequIPGNNModel
    seed: ${seed}
    model_dtype: float64
    type_names: ${model_type_names}
    r_max: ${cutoff_radius}
    l_max: 1
    parity: true
    num_layers: 2
    num_features: 8
    radial_mlp_depth: 1
    radial_mlp_width: 8
    per_type_energy_shifts: ${training_data_stats:per_atom_energy_mean}
    per_type_energy_scales: ${training_data_stats:forces_rms}
    avg_num_neighbors: ${training_data_stats:num_neighbors_mean}

global_options:
  allow_tf32: false
"""


def training_data(path: Path, n_frames: int = 12) -> None:
    """Rattled Ga54Pt clusters with Lennard-Jones energies and forces."""
    rng = np.random.default_rng(0)
    base = read(EXAMPLE, index=0)
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = LennardJones(sigma=2.4, epsilon=0.1, rc=6.0, smooth=True)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    write(path, frames, format="extxyz")


def run(*command: str | Path, cwd: Path) -> None:
    print("$", " ".join(map(str, command)), flush=True)
    subprocess.run([str(c) for c in command], cwd=cwd, check=True)


def torchscript(package: Path, out: Path) -> None:
    """What ``nequip-compile --mode torchscript --device cpu`` does, minus its version check."""
    from nequip.model.inference_models.torchscript import save_torchscript_model
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.utils.global_state import get_latest_global_state, set_global_state

    set_global_state(allow_tf32=False)
    model = load_saved_model(str(package), "eager", "sole_model")
    metadata = {**model.metadata, **get_latest_global_state(only_metadata_related=True)}
    metadata = {k: str(int(v)) if isinstance(v, bool) else v for k, v in metadata.items()}
    save_torchscript_model(model, metadata, str(out), "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also write .nequip.pt2 files")
    parser.add_argument("--workdir", type=Path, help="keep scratch files here (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiny-nequip-") as scratch:
        work = (args.workdir or Path(scratch)).absolute()
        work.mkdir(parents=True, exist_ok=True)
        training_data(work / "data.extxyz")
        config = CONFIG.replace("DATA_FILE", str(work / "data.extxyz"))
        (work / "tiny.yaml").write_text(config.replace("CKPT_DIR", str(work / "ckpt")))
        hydra_dir = f"hydra.run.dir={work / 'hydra'}"
        run(BIN / "nequip-train", "-cp", work, "-cn", "tiny", hydra_dir, cwd=work)
        checkpoint = work / "ckpt" / "last.ckpt"
        OUT.parent.mkdir(parents=True, exist_ok=True)
        run(BIN / "nequip-package", "build", checkpoint, OUT.absolute(), cwd=work)
        print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")
        torchscript(OUT, TORCHSCRIPT)
        print(f"wrote {TORCHSCRIPT} ({TORCHSCRIPT.stat().st_size / 1e6:.2f} MB)")
        if args.compile:
            for target in ("ase", "batch"):
                compiled = work / f"nequip-tiny-GaPt-{target}.nequip.pt2"
                run(
                    BIN / "nequip-compile", OUT.absolute(), compiled,
                    "--mode", "aotinductor", "--device", "cpu", "--target", target,
                    cwd=work,
                )  # fmt: skip
                print(f"wrote {compiled} ({compiled.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
