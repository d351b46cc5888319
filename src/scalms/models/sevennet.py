"""SevenNet: the embedded default. The ``sevenn`` wheel ships SevenNet-0 and a few other
checkpoints, so names such as ``7net-0`` load offline; any other model needs ``model_path``.

Options: ``modal`` (fidelity of multi-fidelity checkpoints), passed to both backends.
"""

from __future__ import annotations

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
