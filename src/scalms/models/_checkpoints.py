"""One-line explanations of why a PyTorch checkpoint would not load, shared by the adapters."""

from __future__ import annotations

import pickle
import re


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
