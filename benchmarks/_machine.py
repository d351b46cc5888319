"""What machine a benchmark ran on, recorded beside its figures (imported by the scripts here,
which Python runs with this folder first on its path)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """Architecture, CPU model (from /proc/cpuinfo where there is one) and core count."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()} {model}, {os.cpu_count()} cores".strip()
