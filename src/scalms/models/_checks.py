"""Checks the adapters share: an entry's options and weights file, and why a checkpoint would
not load, each explained in one line."""

from __future__ import annotations

import pickle
import re
from collections.abc import Collection
from pathlib import Path

from scalms.errors import ModelLoadError
from scalms.models import FAMILIES
from scalms.models.entry import ModelEntry


def where(entry: ModelEntry) -> str:
    """The entry's place in model_config.yaml, as messages name it."""
    return f"{FAMILIES[entry.family].display}.models.{entry.name}"


def check_options(entry: ModelEntry, allowed: Collection[str]) -> None:
    """Refuse options the adapter does not know, listing the ones it does."""
    unknown = set(entry.options) - set(allowed)
    if unknown:
        raise ModelLoadError(
            f"{where(entry)}.options: unknown {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def local_weights(entry: ModelEntry, kind: str) -> Path:
    """``entry.model_path``, absolute; never a download. ``kind`` names the expected file."""
    family = FAMILIES[entry.family]
    if entry.model_path is None:
        raise ModelLoadError(
            f"{where(entry)}: no model_path, and {family.display} would have to download "
            f"'{entry.name}', which cannot happen offline; {family.weights_hint}"
        )
    if not entry.model_path.is_file():
        raise ModelLoadError(
            f"{where(entry)}.model_path: file not found: {entry.model_path}; "
            f"point model_path at the {kind}"
        )
    return entry.model_path.absolute()


def describe_load_error(err: BaseException, fix: str) -> str:
    """Why ``torch.load`` (or loading the state it returned) failed; ``fix`` ends the line for
    errors that are not about the file being unreadable."""
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if unsafe:
        # torch.load's weights_only=True (the default since PyTorch 2.6) refuses pickled
        # objects; loading them anyway would run code from the file, so scalms does not.
        return (
            f"the file stores a Python object ({unsafe.group(1)}) that torch.load refuses to "
            "unpickle with weights_only=True; if you trust the file, load it once with "
            "weights_only=False and torch.save it again with plain tensors and dicts only"
        )
    if isinstance(err, (pickle.UnpicklingError, EOFError)):
        return (
            "not a readable PyTorch checkpoint (corrupt, truncated or another format); "
            "copy the checkpoint again"
        )
    # torch's own messages run long (load_state_dict lists every key): keep the start.
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2])[:300].rstrip(".")
    return f"{type(err).__name__}: {text}; {fix}"
