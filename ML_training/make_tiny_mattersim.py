"""Write a tiny, untrained MatterSim (M3GNet) checkpoint for tests (no download, no training).

Run in the MatterSim environment:  .venvs/mattersim/bin/python ML_training/make_tiny_mattersim.py

The weights are random (seeded): the numbers mean nothing physically, but the file is written
by MatterSim's own ``Potential.save``, in the format of its published checkpoints
(``model_name``, ``model_args``, ``model`` state_dict, optimizer/EMA state), so it exercises
the same ``Potential.from_checkpoint`` loading as a real model. The architecture travels in the
file, so model_config.yaml needs nothing beyond ``model_path``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
from mattersim.forcefield.potential import Potential

OUT = Path(__file__).parent / "models" / "mattersim-tiny.pth"


def main() -> None:
    torch.manual_seed(0)
    model = M3Gnet(num_blocks=1, units=16, max_l=2, max_n=2, cutoff=5.0, device="cpu")
    # Untrained outputs are tiny (forces ~1e-3 eV/Å on the Ga-Pt examples); scale them to
    # ~0.2 eV/Å, so that comparing the two backends is not passed trivially.
    model.normalizer.scale.fill_(300.0)
    Potential(model, device="cpu").save(str(OUT))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
