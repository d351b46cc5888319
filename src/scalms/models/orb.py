"""ORB (orb-models): a local checkpoint file given as ``model_path``.

An ORB checkpoint (``.ckpt``) is a bare ``state_dict``: it does not say which architecture it
belongs to, so the adapter must be told. ``options.architecture`` names either

- one of orb-models's pretrained models (``orb-v3-conservative-inf-omat``, ``orb-v2``, ...; the
  keys of ``orb_models.forcefield.pretrained.ORB_PRETRAINED_MODELS``): the package's own loader
  for that model reads the local file instead of downloading. Defaults to the model's name in
  model_config.yaml when that is such a key.
- ``orb-v3-conservative`` or ``orb-v3-direct``: a model of custom size (fine-tuned or built
  here), with ``options.hyperparameters`` passed to ``orb_v3_<kind>_architecture`` and
  ``options.max_num_neighbors`` (default 120) for the graph.

Other options: ``precision`` (``float32-high`` default, ``float32-highest``, ``float64``),
``compile`` (torch.compile the model; default False), ``edge_method`` (graph construction,
e.g. ``knn_alchemi``, orb-models's default). Any element is accepted (ORB embeds all 118).
"""

from __future__ import annotations

from typing import Any

from scalms.errors import ModelLoadError
from scalms.models._checks import check_options, describe_load_error, local_weights, where
from scalms.models.entry import ModelEntry

CUSTOM_ARCHITECTURES = ("orb-v3-conservative", "orb-v3-direct")
OPTIONS = {
    "architecture",
    "hyperparameters",
    "max_num_neighbors",
    "precision",
    "compile",
    "edge_method",
}
PRECISIONS = ("float32-high", "float32-highest", "float64")


def _weights(entry: ModelEntry) -> str:
    """The local checkpoint; never a download (orb-models would fetch its default URL)."""
    return str(local_weights(entry, "ORB checkpoint (.ckpt)"))


def _settings(entry: ModelEntry) -> dict[str, Any]:
    check_options(entry, OPTIONS)
    precision = entry.options.get("precision", "float32-high")
    if precision not in PRECISIONS:
        raise ModelLoadError(
            f"{where(entry)}.options.precision: '{precision}'; choose one of {PRECISIONS}"
        )
    if not isinstance(entry.options.get("hyperparameters", {}), dict):
        raise ModelLoadError(
            f"{where(entry)}.options.hyperparameters: expected a mapping of keyword arguments "
            "of orb_v3_conservative_architecture / orb_v3_direct_architecture"
        )
    # compile defaults to False, unlike orb-models: torch.compile on a CPU builds C++ kernels
    # for minutes, which one static evaluation never earns back.
    return {"precision": precision, "compile": bool(entry.options.get("compile", False))}


def _load(entry: ModelEntry, device: str):
    """The ORB model (weights from the local file) and the atoms adapter it was trained with."""
    weights = _weights(entry)  # checked before the imports, which take seconds
    settings = _settings(entry)
    from orb_models.forcefield.forcefield_adapter import ForcefieldAtomsAdapter
    from orb_models.forcefield.pretrained import (
        ORB_PRETRAINED_MODELS,
        load_model,
        orb_v3_conservative_architecture,
        orb_v3_direct_architecture,
    )

    architecture = entry.options.get("architecture", entry.name)
    try:
        if architecture in CUSTOM_ARCHITECTURES:
            build = (
                orb_v3_conservative_architecture
                if architecture == "orb-v3-conservative"
                else orb_v3_direct_architecture
            )
            model = build(device=device, **dict(entry.options.get("hyperparameters") or {}))
            model = load_model(model, weights, device, **settings)
            adapter = ForcefieldAtomsAdapter(
                radius=6.0, max_num_neighbors=int(entry.options.get("max_num_neighbors", 120))
            )
            return model, adapter
        if architecture in ORB_PRETRAINED_MODELS:
            return ORB_PRETRAINED_MODELS[architecture](
                weights_path=weights, device=device, **settings
            )
    except Exception as err:
        # Whatever torch.load or load_state_dict raise on a corrupt file or the wrong
        # architecture (RuntimeError, UnpicklingError, EOFError, ...): the file is the problem.
        raise ModelLoadError(
            f"{where(entry)}: orb-models cannot load '{weights}' as '{architecture}': "
            + _describe(err)
        ) from None
    current = [name for name in ORB_PRETRAINED_MODELS if "-v1" not in name]  # v1: deprecated
    known = ", ".join((*CUSTOM_ARCHITECTURES, *current))
    raise ModelLoadError(
        f"{where(entry)}: the checkpoint does not record its architecture; set "
        f"options.architecture to one of: {known}"
    )


def _describe(err: BaseException) -> str:
    return describe_load_error(
        err, "check that options.architecture (and options.hyperparameters) match the checkpoint"
    )


def ase_calculator(entry: ModelEntry, device: str):
    model, adapter = _load(entry, device)
    from orb_models.forcefield.inference.calculator import ORBCalculator

    return ORBCalculator(
        model, adapter, edge_method=entry.options.get("edge_method"), device=device
    )


def torchsim_model(entry: ModelEntry, device: str):
    # ORB builds its own graph (edge_method), so TorchSim's neighbour list is not used here.
    model, adapter = _load(entry, device)
    import torch
    from torch_sim.models.orb import OrbModel

    dtype = torch.float64 if _settings(entry)["precision"] == "float64" else torch.float32
    return OrbModel(
        model,
        adapter,
        edge_method=entry.options.get("edge_method"),
        device=device,
        dtype=dtype,
    )


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    """None: ORB one-hot encodes all 118 elements, and a checkpoint records no subset."""
    return None


def locate_weights(entry: ModelEntry) -> str:
    """The checkpoint file behind ``entry``, without loading it."""
    return _weights(entry)
