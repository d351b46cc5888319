"""Out-of-memory errors told apart from other failures, for every job that retries smaller."""

from __future__ import annotations


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's ``OutOfMemoryError`` (CUDA and other accelerators), and for the
    "out of memory" messages of backends that raise a plain ``RuntimeError`` (older torch,
    MPS, XLA), wrapped or not."""
    while err is not None:
        out_of_memory = _torch_oom_type()
        if out_of_memory is not None and isinstance(err, out_of_memory):
            return True
        if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def _torch_oom_type() -> type[BaseException] | None:
    """``torch.OutOfMemoryError`` if torch is already imported: the parent never imports it."""
    import sys

    torch = sys.modules.get("torch")
    return getattr(torch, "OutOfMemoryError", None) if torch is not None else None
