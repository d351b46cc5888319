"""Torch device names as the parent accepts them: checked before any child starts.

A neutral module: the parent sides of static evaluation, dynamics, geometry and the benchmarks
all check a device, and none of them should import another's parent side to do it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from scalms.errors import ScalmsError

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""``auto`` (a GPU where torch sees one), ``cpu``, ``cuda`` or ``cuda:N``."""


def check_device(device: str) -> None:
    """Refuse a device name before any child spends its start-up on it."""
    if not DEVICE.match(device):
        raise ScalmsError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N")


_DEVICE_FILES = ("nvidia[0-9]*", "kfd", "dxg")
"""Device files of NVIDIA GPUs, of AMD GPUs under ROCm (which torch also calls ``cuda``), and of
GPUs under WSL2."""


def gpu_visible(dev: Path = Path("/dev")) -> bool:
    """True when a CUDA or ROCm GPU may be used by this process, answered from the device
    files the drivers create: torch (20-30 s into a child) is not needed to know."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if any(any(dev.glob(pattern)) for pattern in _DEVICE_FILES):
        return True
    return shutil.which("nvidia-smi") is not None


def check_gpu(device: str) -> None:
    """Refuse ``cuda``/``cuda:N`` where no GPU is visible, before any child starts."""
    if device.startswith("cuda") and not gpu_visible():
        raise ScalmsError(
            f"--device {device}: no GPU is visible on this machine (no /dev/nvidia*, /dev/kfd "
            "or /dev/dxg, or CUDA_VISIBLE_DEVICES hides them); use --device cpu or auto"
        )
