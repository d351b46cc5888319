"""NequIP (and Allegro, any NequIP-framework model): a local model file given as ``model_path``.

Which loader runs depends on the file name, as in NequIP itself:

- ``*.nequip.pt2`` (``nequip-compile --mode aotinductor``) or ``*.nequip.pth`` (TorchScript,
  older ``nequip-compile``): ``NequIPCalculator.from_compiled_model`` and
  ``NequIPTorchSimCalc.from_compiled_model`` (what ``torch_sim.models.nequip_framework``
  re-exports). An AOTInductor file is built for one device and one target: ``--target ase``
  for the ASE calculator, ``--target batch`` for TorchSim. ``options.ase_model_path`` names a
  second compiled file for the ASE calculator, so that both backends can run.
- ``*.nequip.zip`` (``nequip-package build``) or a training checkpoint (``.ckpt``): the model
  is rebuilt in eager mode by NequIP's ``_from_saved_model`` loader; one file serves both
  backends on any device, slower than a compiled model.

Options: ``chemical_species_to_atom_type_map`` (default: the model's type names are the
elements), ``neighborlist_backend`` (default ``matscipy`` on a CPU; TorchSim's ``alchemiops``
on a GPU), ``neighborlist_backend_kwargs``, ``ase_model_path`` (relative to model_path's
folder), and for packaged models ``compile_mode`` (``eager`` default, ``compile``) and
``allow_tf32``. Elements: those in the species map.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from scalms.errors import BackendUnavailable, ModelLoadError
from scalms.models._checks import check_options, where
from scalms.models.entry import ModelEntry

COMPILED_SUFFIXES = (".nequip.pt2", ".nequip.pth")
OPTIONS = {
    "chemical_species_to_atom_type_map",
    "neighborlist_backend",
    "neighborlist_backend_kwargs",
    "ase_model_path",
    "compile_mode",
    "allow_tf32",
}
SAVED_MODEL_ONLY = {"compile_mode", "allow_tf32"}


def _model_file(entry: ModelEntry, backend: str) -> Path:
    """The file ``backend`` loads: model_path, or options.ase_model_path for ASE."""
    if entry.model_path is None:
        raise ModelLoadError(
            f"{where(entry)}: no model_path, and NequIP would have to download "
            f"'{entry.name}' (nequip.net), which cannot happen offline; set model_path to a "
            "compiled model (.nequip.pt2 / .nequip.pth from nequip-compile) or a packaged "
            "model (.nequip.zip from nequip-package)"
        )
    path = entry.model_path
    key = "model_path"
    if backend == "ase" and entry.options.get("ase_model_path"):
        path = entry.model_path.parent / Path(str(entry.options["ase_model_path"])).expanduser()
        key = "options.ase_model_path"
    if not path.is_file():
        raise ModelLoadError(
            f"{where(entry)}.{key}: file not found: {path}; point it at the NequIP model file"
        )
    return path


def _is_compiled(path: Path) -> bool:
    return path.name.endswith(COMPILED_SUFFIXES)


def _options(entry: ModelEntry, path: Path, device: str) -> dict[str, Any]:
    """Keyword arguments for NequIP's loaders."""
    check_options(entry, OPTIONS)
    # True: the type names are element symbols, said explicitly to silence NequIP's warning.
    species = entry.options.get("chemical_species_to_atom_type_map", True)
    # On a CPU, TorchSim's default alchemiops list compiles Warp kernels at the first call of
    # every process (see scalms.models._torchsim); matscipy is NequIP's own default.
    backend = entry.options.get(
        "neighborlist_backend", "alchemiops" if device.startswith("cuda") else "matscipy"
    )
    kwargs: dict[str, Any] = {
        "chemical_species_to_atom_type_map": species,
        "neighborlist_backend": backend,
        "neighborlist_backend_kwargs": entry.options.get("neighborlist_backend_kwargs"),
    }
    if _is_compiled(path):
        misplaced = SAVED_MODEL_ONLY & set(entry.options)
        if misplaced:
            raise ModelLoadError(
                f"{where(entry)}.options: {sorted(misplaced)} apply to packaged models "
                f"(.nequip.zip) only; '{path.name}' is already compiled"
            )
    else:
        kwargs["compile_mode"] = entry.options.get("compile_mode", "eager")
        kwargs["allow_tf32"] = bool(entry.options.get("allow_tf32", False))
    return kwargs


def _load(entry: ModelEntry, device: str, backend: str):
    """NequIP's ASE calculator or TorchSim model, loaded from the model file."""
    path = _model_file(entry, backend)  # checked before the imports, which take seconds
    kwargs = _options(entry, path, device)
    if backend == "ase":
        from nequip.integrations.ase import NequIPCalculator as cls
    else:
        # NequIP builds its neighbour list in its own transforms (neighborlist_backend), so
        # TorchSim's neighbor_list_fn has no place here.
        from torch_sim.models.nequip_framework import NequIPFrameworkModel as cls
    try:
        if _is_compiled(path):
            return cls.from_compiled_model(str(path), device=device, **kwargs)
        return cls._from_saved_model(str(path), device=device, **kwargs)
    except Exception as err:
        # A corrupt file, another target or device, or a foreign format each raise something
        # different (ValueError, RuntimeError, BadZipFile, UnpicklingError, ...).
        # A model compiled for the other backend's target is that backend's problem only:
        # BackendUnavailable lets `auto` fall back to ASE rather than fail.
        error = BackendUnavailable if "keys do not match metadata" in str(err) else ModelLoadError
        raise error(
            f"{where(entry)}: NequIP cannot load '{path}' for {backend}: "
            + _describe(err, path, backend)
        ) from None


def _describe(err: BaseException, path: Path, backend: str) -> str:
    """Why loading failed, and the fix, in one line."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if "keys do not match metadata" in text:
        target = "ase" if backend == "ase" else "batch"
        fix = (
            "compile one with --target ase and set options.ase_model_path to it"
            if backend == "ase"
            else "use a model compiled with --target batch, or the ASE backend"
        )
        return (
            f"it was compiled (nequip-compile) for another target; {backend} needs "
            f"--target {target}: {fix}"
        )
    if isinstance(err, (pickle.UnpicklingError, EOFError, zipfile.BadZipFile)) or re.search(
        r"zip archive|central directory|PytorchStreamReader|magic number", text
    ):
        return (
            "not a readable NequIP model file (corrupt, truncated or another format); "
            "copy it again, or give a .nequip.pt2 / .nequip.pth / .nequip.zip file"
        )
    return f"{type(err).__name__}: {text[:300]}"


def ase_calculator(entry: ModelEntry, device: str):
    return _load(entry, device, "ase")


def torchsim_model(entry: ModelEntry, device: str):
    return _load(entry, device, "torchsim")


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    """The elements the species-to-type mapper knows (atomic numbers with a model type)."""
    from ase.data import chemical_symbols

    for transform in getattr(loaded, "transforms", []):
        table = getattr(transform, "lookup_table", None)
        if table is not None:
            return frozenset(chemical_symbols[int(z)] for z in (table >= 0).nonzero().flatten())
    return None


def locate_weights(entry: ModelEntry) -> str:
    """The model file behind ``entry`` (for TorchSim), without loading it."""
    return str(_model_file(entry, "torchsim"))
