"""Load a model entry's adapter inside the child process, and check it against structures."""

from __future__ import annotations

import importlib
import platform
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from scalms.errors import ModelLoadError, NoDescriptors, UnsupportedElements
from scalms.models import FAMILIES, descriptor_families
from scalms.models.entry import ModelEntry

BACKENDS = ("torchsim", "ase")


def adapter_for(entry: ModelEntry) -> ModuleType:
    """The adapter module of ``entry``'s family (imports nothing heavy by itself)."""
    return importlib.import_module(FAMILIES[entry.family].adapter)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` where torch sees a GPU and ``cpu`` elsewhere."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' requested but torch sees no CUDA GPU here")
    return device


def load(entry: ModelEntry, backend: str, device: str):
    """The ASE calculator or TorchSim model of ``entry`` on ``device``."""
    module = adapter_for(entry)
    if backend == "ase":
        return module.ase_calculator(entry, device)
    if backend == "torchsim":
        return module.torchsim_model(entry, device)
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


class Describer(Protocol):
    """Per-atom invariant descriptors of one model, made by ``adapter.describer(entry, device)``.

    Rows follow the atoms of the frame; values do not change when the frame is rotated or
    translated, and permuting the atoms permutes the rows.
    """

    source: str
    """One line saying how the descriptors are taken (the call or layer, channels, layers)."""
    loaded: Any
    """The loaded model, as ``adapter.elements(entry, loaded)`` takes it."""
    width: int | None
    """Descriptor values per atom, or None until the first call."""

    def __call__(self, atoms: Atoms) -> np.ndarray:
        """``(n_atoms, width)`` descriptors of ``atoms`` (float32 or float64)."""
        ...


def check_descriptors(entry: ModelEntry) -> None:
    """Raise :class:`NoDescriptors` when ``entry``'s family gives no per-atom descriptors.

    Parent side: reads the family registry only, imports no model package.
    """
    family = FAMILIES[entry.family]
    if not family.descriptors:
        raise NoDescriptors(
            f"model '{entry.name}' ({family.display}) gives no per-atom descriptors in scalms; "
            f"families that do: {', '.join(descriptor_families())}"
        )


def load_describer(entry: ModelEntry, device: str) -> Describer:
    """The describer of ``entry`` on ``device`` (child side: imports the model package)."""
    check_descriptors(entry)
    return adapter_for(entry).describer(entry, device)


def check_elements(entry: ModelEntry, loaded, frames: dict[str, list[Atoms]]) -> None:
    """Raise :class:`UnsupportedElements` naming structures with elements the model lacks."""
    known = adapter_for(entry).elements(entry, loaded)
    if known is None:
        return
    problems = []
    for label, atoms_list in frames.items():
        present = {s for atoms in atoms_list for s in atoms.get_chemical_symbols()}
        missing = sorted(present - set(known))
        if missing:
            problems.append(f"{label}: {', '.join(missing)}")
    if problems:
        raise UnsupportedElements(
            f"model '{entry.name}' does not know element(s) in " + "; ".join(problems)
        )


def software_versions(entry: ModelEntry) -> dict[str, str]:
    """Versions of the software that produced a result, stored beside it."""
    packages = ["scalms", "torch", "torch-sim-atomistic", "ase", "numpy", "h5py"]
    distribution = FAMILIES[entry.family].distribution
    if distribution:
        packages.append(distribution)
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
