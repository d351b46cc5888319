"""MatterSim: a local checkpoint file (``.pth``) given as ``model_path``.

The file is what MatterSim's ``Potential.save`` writes (its published
``mattersim-v1.0.0-1M.pth`` / ``-5M.pth`` are such files): it carries the M3GNet
hyperparameters, so nothing else is needed. Both backends load it with
``mattersim.forcefield.potential.Potential.from_checkpoint``; the ASE calculator is
``MatterSimCalculator``, the TorchSim model ``mattersim.torchsim.TorchSimWrapper`` (what
``torch_sim.models.mattersim.MatterSimModel`` re-exports).

Options: ``dtype`` (``float32`` default, or ``float64``: both backends run the model in it),
``direct_graph`` (ASE: build the graph with the tensor code the TorchSim model uses instead of
MatterSim's PyG data loader; default False, MatterSim's default), ``compile`` (ASE:
torch.compile the model; default False). Elements: atomic numbers 1 to the model's ``max_z``
(94 for the published models).
"""

from __future__ import annotations

from scalms.errors import ModelLoadError
from scalms.models._checks import check_options, describe_load_error, local_weights, where
from scalms.models.entry import ModelEntry

OPTIONS = {"dtype", "direct_graph", "compile"}
DTYPES = ("float32", "float64")


def _weights(entry: ModelEntry) -> str:
    """The local checkpoint. Never a model name: MatterSim downloads named checkpoints. The
    path is absolute, so that Potential.from_checkpoint never mistakes it for the published
    name ("mattersim-v1.0.0-1m.pth") and downloads that instead."""
    return str(local_weights(entry, "MatterSim checkpoint (.pth)"))


def _dtype(entry: ModelEntry) -> str:
    check_options(entry, OPTIONS)
    dtype = entry.options.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ModelLoadError(f"{where(entry)}.options.dtype: '{dtype}'; choose one of {DTYPES}")
    return dtype


def _potential(entry: ModelEntry, device: str):
    """The MatterSim ``Potential`` in the requested dtype, without its training state."""
    weights = _weights(entry)  # checked before the import, which takes seconds
    dtype = _dtype(entry)
    from mattersim.forcefield.potential import Potential

    try:
        potential = Potential.from_checkpoint(weights, device=device, load_training_state=False)
    except Exception as err:
        # A corrupt or foreign file raises anything from UnpicklingError to KeyError
        # ('model_args') or AssertionError (model_name): the file is the problem either way.
        raise ModelLoadError(
            f"{where(entry)}: MatterSim cannot load '{weights}': {_describe(err)}"
        ) from None
    if dtype == "float64":
        potential.model.double()
    return potential


def _describe(err: BaseException) -> str:
    return describe_load_error(
        err,
        "model_path must be a checkpoint written by MatterSim's Potential.save "
        "(with model_name, model_args and model)",
    )


def ase_calculator(entry: ModelEntry, device: str):
    potential = _potential(entry, device)
    from mattersim.forcefield.potential import MatterSimCalculator

    return MatterSimCalculator(
        potential=potential,
        device=device,
        dtype=_dtype(entry),
        direct_graph=bool(entry.options.get("direct_graph", False)),
        compile=bool(entry.options.get("compile", False)),
    )


def torchsim_model(entry: ModelEntry, device: str):
    # MatterSim builds its own graph (both cutoffs, three-body indices), so TorchSim's
    # neighbour list is not used here.
    potential = _potential(entry, device)
    import torch
    from mattersim.torchsim import TorchSimWrapper

    # dtype here is that of the state and outputs only; the model keeps its own. float64
    # because MatterSim 1.2.5 builds the graph in the state's dtype, and in float32 its cdist
    # puts an atom some 0.01 Å from itself once coordinates reach ~30 Å, so the self-loop
    # survives (cutoff 0.01 Å) and the energy is NaN.
    return TorchSimWrapper(model=potential, device=device, dtype=torch.float64)


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    """Atomic numbers 1..max_z: the size of the model's one-hot element embedding."""
    from ase.data import chemical_symbols

    potential = getattr(loaded, "potential", None) or getattr(loaded, "model", None)
    max_z = getattr(getattr(potential, "model", None), "max_z", None)
    if not max_z:
        return None
    return frozenset(chemical_symbols[1 : int(max_z) + 1])


def locate_weights(entry: ModelEntry) -> str:
    """The checkpoint file behind ``entry``, without loading it."""
    return _weights(entry)
