"""SevenNet: the embedded default. The ``sevenn`` wheel ships SevenNet-0 and a few other
checkpoints, so names such as ``7net-0`` load offline; any other model needs ``model_path``.

Options: ``modal`` (fidelity of multi-fidelity checkpoints), passed to both backends.
"""

from __future__ import annotations

import contextlib

from scalms.errors import ModelLoadError
from scalms.models.entry import ModelEntry


def _checkpoint(entry: ModelEntry) -> str:
    """The checkpoint sevenn loads: the user's file, or the bundled name."""
    return str(entry.model_path) if entry.model_path else entry.name


def _guard(entry: ModelEntry, load):
    try:
        return load()
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as err:
        raise ModelLoadError(
            f"SevenNet cannot load '{_checkpoint(entry)}' for model '{entry.name}': {err}"
        ) from None


def ase_calculator(entry: ModelEntry, device: str):
    from sevenn.calculator import SevenNetCalculator

    return _guard(
        entry, lambda: SevenNetCalculator(_checkpoint(entry), device=device, **entry.options)
    )


def torchsim_model(entry: ModelEntry, device: str):
    from sevenn.torchsim import SevenNetModel

    from scalms.models._torchsim import neighbor_list_for

    return _guard(
        entry,
        lambda: SevenNetModel(
            _checkpoint(entry),
            device=device,
            neighbor_list_fn=neighbor_list_for(device),
            **entry.options,
        ),
    )


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    """Species in the checkpoint's type map (SevenNet-0 knows 89 elements)."""
    from ase.data import chemical_symbols

    type_map = getattr(loaded, "type_map", None)
    if type_map is None:
        type_map = getattr(getattr(loaded, "model", None), "type_map", None)
    if not type_map:
        return None
    return frozenset(chemical_symbols[z] for z in type_map)


def locate_weights(entry: ModelEntry) -> str:
    """The checkpoint file behind ``entry``, without loading it."""
    if entry.model_path:
        return str(entry.model_path)
    from sevenn.util import pretrained_name_to_path

    try:
        return pretrained_name_to_path(entry.name)
    except ValueError:
        raise ModelLoadError(f"'{entry.name}' is not a checkpoint bundled with sevenn") from None


READOUT_MODULES = ("reduce_input_to_hidden", "readout_FCN")
"""Names sevenn gives the first module of its readout (linear or MLP), whose input is the node
features after the last interaction: scalars only, so invariant per-atom descriptors."""


class _ReadoutReached(Exception):
    """Raised by the hook to stop sevenn's forward once the readout's input is taken."""


class SevenNetDescriber:
    """Per-atom descriptors of a SevenNet model: the node features entering its readout.

    sevenn has no descriptor API, so a forward pre-hook on the readout module copies its input
    and stops the forward there (under ``torch.no_grad``): no energy readout, no force graph, no
    backward pass, about a fifth of a force call's cost.
    """

    def __init__(self, entry: ModelEntry, device: str):
        from e3nn.o3 import Irreps

        self.loaded = ase_calculator(entry, device)
        modules = dict(self.loaded.model.named_children())
        name = next((n for n in READOUT_MODULES if n in modules), None)
        if name is None:
            raise ModelLoadError(
                f"SevenNet model '{entry.name}' has no readout module named "
                f"{' or '.join(READOUT_MODULES)}; scalms cannot take descriptors from it"
            )
        irreps = Irreps(str(modules[name].irreps_in))
        if irreps.lmax != 0:
            raise ModelLoadError(
                f"SevenNet model '{entry.name}': its readout takes {irreps}, not scalars only, "
                "so its node features are not invariant descriptors"
            )
        layers = sum(n.endswith("_convolution") for n in modules)
        self.source = (
            f"sevenn node features entering the readout ('{name}' forward pre-hook): "
            f"scalars after {layers} interaction layers"
        )
        self.width: int | None = None
        self._features = None
        # A hook, because sevenn has no descriptor API: it copies the readout's input and stops
        # the forward there.
        modules[name].register_forward_pre_hook(self._take_features)

    def _take_features(self, module, inputs):
        import sevenn._keys as KEY

        self._features = inputs[0][KEY.NODE_FEATURE].detach().cpu().numpy()
        raise _ReadoutReached

    def __call__(self, atoms):
        """``(n_atoms, width)`` float32 node features of ``atoms``."""
        import torch

        self._features = None
        with torch.no_grad(), contextlib.suppress(_ReadoutReached):
            self.loaded.calculate(atoms)
        self.loaded.reset()  # the calculator holds no results of this half pass
        features = self._features
        if features is None or features.shape[0] != len(atoms):
            raise RuntimeError("sevenn's forward gave no node features of this frame's atoms")
        self.width = features.shape[1]
        return features


def describer(entry: ModelEntry, device: str) -> SevenNetDescriber:
    """Per-atom descriptors of ``entry``'s model: see :class:`SevenNetDescriber`."""
    return SevenNetDescriber(entry, device)
