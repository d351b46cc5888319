"""MACE: a model file (``model_path``) loaded by mace-torch for ASE and by TorchSim's MaceModel.

Foundation models (mace-mp, mace-omat, ...) download at run time, which cannot happen offline,
so every MACE entry needs ``model_path``: a whole model saved with ``torch.save`` (the ``.model``
files mace writes), not a training checkpoint holding only a state dict.

Weights files must be trusted: loading one unpickles it (arbitrary code), and importing mace sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process.

Options (``options:`` in model_config.yaml):

- ``default_dtype``: ``float64`` (default) or ``float32``; the precision of both backends.
- ``head``: the head of a multi-head model (default: the one called "Default"); both backends.
- ``enable_cueq``, ``enable_oeq``, ``compile_mode``: GPU kernels and ``torch.compile``, passed
  to both backends (the kernels need the cuequivariance/openequivariance packages).
- ``fullgraph``, ``pad_num_atoms``, ``pad_num_edges``, ``warmup``, ``compute_atomic_stresses``:
  ``MACECalculator`` settings that only the ASE backend has.
"""

from __future__ import annotations

from typing import Any

from scalms.errors import ModelLoadError
from scalms.models._checks import check_options
from scalms.models.entry import ModelEntry

DTYPES = ("float64", "float32")
SHARED_OPTIONS = {"default_dtype", "head", "enable_cueq", "enable_oeq", "compile_mode"}
ASE_OPTIONS = {"fullgraph", "pad_num_atoms", "pad_num_edges", "warmup", "compute_atomic_stresses"}


def _options(entry: ModelEntry) -> dict[str, Any]:
    """The entry's options, checked, with ``default_dtype`` filled in."""
    check_options(entry, SHARED_OPTIONS | ASE_OPTIONS)
    options = {"default_dtype": "float64", **entry.options}
    if options["default_dtype"] not in DTYPES:
        raise ModelLoadError(
            f"MACE.models.{entry.name}.options.default_dtype: "
            f"'{options['default_dtype']}' is not one of {', '.join(DTYPES)}"
        )
    return options


def _load_module(entry: ModelEntry, device: str):
    """The ``torch.nn.Module`` in ``entry.model_path``, or a :class:`ModelLoadError` saying why not.

    Loading here rather than inside mace gives one clear message for every way a file can be
    wrong (missing, truncated, not a pickle, a state dict instead of a model), where mace
    raises a different exception for each.
    """
    path = entry.model_path
    if path is None:
        raise ModelLoadError(
            f"MACE model '{entry.name}' has no model_path; MACE foundation models download at "
            "run time, which cannot happen offline: point model_path at a .model file"
        )
    if not path.is_file():
        raise ModelLoadError(
            f"MACE weights file not found: {path} (model '{entry.name}'); fix model_path"
        )
    import mace  # noqa: F401  first: e3nn 0.4.4 needs mace's torch.load setting to import
    import torch

    try:
        module = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # unpickling raises many types; each means the file is unusable
        raise ModelLoadError(
            f"cannot load MACE weights file {path} (model '{entry.name}'): "
            f"{type(err).__name__}: {str(err).rstrip('.')}. Is it a complete MACE .model file?"
        ) from None
    if not (
        isinstance(module, torch.nn.Module)
        and hasattr(module, "atomic_numbers")
        and hasattr(module, "r_max")
    ):
        found = type(module).__name__
        raise ModelLoadError(
            f"{path} (model '{entry.name}') holds a {found}, not a MACE model; a training "
            "checkpoint has only weights: give the .model file mace writes beside it"
        )
    return module


def _check_head(entry: ModelEntry, module, options: dict[str, Any]) -> None:
    """Refuse a head the model lacks: MACECalculator would warn and use another one, TorchSim
    would refuse, and the two backends must not differ."""
    heads = list(getattr(module, "heads", ["Default"]))
    head = options.get("head")
    if head is not None and head not in heads:
        raise ModelLoadError(
            f"MACE.models.{entry.name}.options.head: '{head}' is not a head of "
            f"{entry.model_path}; its heads: {', '.join(map(str, heads))}"
        )


def _guard(entry: ModelEntry, build):
    """Turn mace's errors about settings (head, dtype, kernels) into one message."""
    try:
        return build()
    except (ValueError, ImportError, AssertionError, RuntimeError) as err:
        raise ModelLoadError(
            f"MACE cannot set up model '{entry.name}' ({entry.model_path}): "
            f"{type(err).__name__}: {err}"
        ) from None


def ase_calculator(entry: ModelEntry, device: str):
    """mace's ``MACECalculator`` on the loaded model (given as a module: no path globbing)."""
    from mace.calculators import MACECalculator

    options = _options(entry)
    module = _load_module(entry, device)
    _check_head(entry, module, options)
    return _guard(entry, lambda: MACECalculator(models=[module], device=device, **options))


def torchsim_model(entry: ModelEntry, device: str):
    """TorchSim's ``MaceModel`` on the same file, with the same dtype and head."""
    import torch
    from torch_sim.models.mace import MaceModel

    from scalms.models._torchsim import neighbor_list_for

    options = _options(entry)
    shared = {k: v for k, v in options.items() if k in SHARED_OPTIONS - {"default_dtype"}}
    module = _load_module(entry, device)
    _check_head(entry, module, options)
    return _guard(
        entry,
        lambda: MaceModel(
            module,
            device=torch.device(device),
            dtype=getattr(torch, options["default_dtype"]),
            neighbor_list_fn=neighbor_list_for(device),
            **shared,
        ),
    )


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    """The elements of the model's atomic-number table (both wrappers keep a ``z_table``)."""
    from ase.data import chemical_symbols

    table = getattr(loaded, "z_table", None)
    if table is None:
        return None
    return frozenset(chemical_symbols[int(z)] for z in table.zs)


def locate_weights(entry: ModelEntry) -> str:
    """The weights file behind ``entry``, without loading it."""
    if entry.model_path is None:
        raise ModelLoadError(
            f"MACE model '{entry.name}' has no model_path; point it at a .model file"
        )
    return str(entry.model_path)


class MaceDescriber:
    """Per-atom descriptors of a MACE model through mace's own API:
    ``MACECalculator.get_descriptors(atoms, invariants_only=True)``, the scalar channels of the
    node features after every interaction, concatenated (channels x interactions values).

    mace computes them with a full model call (forces included): one force call per frame.
    """

    def __init__(self, entry: ModelEntry, device: str):
        self.loaded = ase_calculator(entry, device)
        from e3nn.o3 import Irreps  # after mace: e3nn 0.4.4 imports only once mace is in

        if self.loaded.model_type != "MACE":
            raise ModelLoadError(
                f"MACE model '{entry.name}' is a {self.loaded.model_type} model; mace gives "
                "descriptors of energy (MACE) models only"
            )
        module = self.loaded.models[0]
        hidden = Irreps(str(module.products[0].linear.irreps_out))
        channels = sum(mul for mul, irrep in hidden if irrep.l == 0)
        layers = int(module.num_interactions)
        self.source = (
            f"mace get_descriptors(invariants_only=True): {channels} scalar channels x "
            f"{layers} interaction layers"
        )
        self.width: int | None = None

    def __call__(self, atoms):
        """``(n_atoms, width)`` descriptors of ``atoms``, in the model's dtype."""
        values = self.loaded.get_descriptors(atoms, invariants_only=True)
        self.width = values.shape[1]
        return values


def describer(entry: ModelEntry, device: str) -> MaceDescriber:
    """Per-atom descriptors of ``entry``'s model: see :class:`MaceDescriber`."""
    return MaceDescriber(entry, device)
