"""Shared TorchSim settings for the adapters."""

from __future__ import annotations


def neighbor_list_for(device: str):
    """The TorchSim neighbour-list function to use on ``device``.

    TorchSim's default (nvalchemiops, Warp kernels) compiles its kernels for about 7 s at the
    first call of every process on a CPU; TorchSim's pure-torch linked-cell list finds the same
    pairs with no such cost, so CPUs use it and GPUs keep the default.
    """
    from torch_sim.neighbors import torch_nl_linked_cell, torchsim_nl

    return torchsim_nl if device.startswith("cuda") else torch_nl_linked_cell
