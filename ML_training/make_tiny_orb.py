"""Write a tiny, untrained ORB-v3 conservative checkpoint for tests (no download, no training).

Run in the ORB environment:  .venvs/orb/bin/python ML_training/make_tiny_orb.py

The weights are random (seeded): the numbers mean nothing physically, but the file has the
exact format of ORB's published checkpoints (a plain ``state_dict`` for the architecture built
by ``orb_models.forcefield.pretrained.orb_v3_conservative_architecture``), so it exercises the
same loading code as a real model. model_config.yaml must repeat the hyperparameters::

    ORB:
      models:
        orb-tiny:
          model_path: ML_training/models/orb-tiny-v3-conservative.ckpt
          options:
            architecture: orb-v3-conservative
            hyperparameters: {latent_dim: 32, base_mlp_hidden_dim: 64,
                              head_mlp_hidden_dim: 32, num_message_passing_steps: 2}
"""

from __future__ import annotations

from pathlib import Path

import torch
from orb_models.forcefield.pretrained import orb_v3_conservative_architecture

HYPERPARAMETERS = {
    "latent_dim": 32,
    "base_mlp_hidden_dim": 64,
    "head_mlp_hidden_dim": 32,
    "num_message_passing_steps": 2,
}
OUT = Path(__file__).parent / "models" / "orb-tiny-v3-conservative.ckpt"


def main() -> None:
    torch.manual_seed(0)
    model = orb_v3_conservative_architecture(device="cpu", **HYPERPARAMETERS)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
