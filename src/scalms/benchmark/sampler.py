"""Resource use of a running child over time: a sampler thread in the parent.

CPU and resident memory are read with psutil for the watched process and all its descendants,
process by process, so other programs on the machine do not count. GPU utilisation and memory
come from NVML (``nvidia-ml-py``): per process where the driver reports it (memory of each
compute process, utilisation samples per process), and from the whole device otherwise. Each
sample says which it was (``gpu_memory_scope``, ``gpu_util_scope``: ``process``, ``device``, or
``none`` when there is no NVML or no GPU). NVML reports the host's process ids, so inside a
container whose ids differ, memory falls back to the device's figure, labelled so.

The thesis's benchmark read GPU figures for the whole device only; a classical model that uses
no GPU was its control. Here the label tells which is which.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

MB = 1024.0**2


@dataclass
class Sample:
    """One reading. CPU in percent of one core (200 = two cores busy), memory in MiB."""

    time_s: float
    """Seconds since the sampler started."""
    cpu_percent: float
    rss_MB: float
    n_processes: int
    gpu_util_percent: float
    gpu_memory_MB: float
    gpu_util_scope: str
    gpu_memory_scope: str
    label: dict[str, Any] = field(default_factory=dict)
    """What the child was doing (model, structure, phase), as last announced."""

    def row(self) -> dict[str, Any]:
        """Flat dict for a CSV row: the label's fields as columns."""
        data = asdict(self)
        label = data.pop("label")
        return {**data, **label}


class GpuProbe:
    """GPU figures of one NVML device, per process where possible.

    ``available`` is False (and ``reason`` says why) where NVML cannot be loaded or the device
    does not exist: every reading is then NaN with scope ``none``.
    """

    def __init__(self, index: int = 0):
        self.index = index
        self.available = False
        self.reason = ""
        self._last_seen_us = 0
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.name = pynvml.nvmlDeviceGetName(self._handle)
            self.available = True
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'scalms[benchmark]')"
        except Exception as err:  # NVMLError_LibraryNotFound on machines without a driver
            self.reason = f"NVML unavailable: {err}"

    def close(self) -> None:
        if self.available:
            with contextlib.suppress(Exception):  # shutting down must not fail a benchmark
                self._nvml.nvmlShutdown()
            self.available = False

    def _process_memory_MB(self, pids: set[int]) -> float | None:
        nvml = self._nvml
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except nvml.NVMLError:
            return None
        used = [p.usedGpuMemory for p in processes if p.pid in pids]
        if not used or any(u is None for u in used):
            return None  # our processes are not listed (container ids) or the driver hides it
        return sum(used) / MB

    def _process_util_percent(self, pids: set[int]) -> float | None:
        nvml = self._nvml
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_seen_us)
        except nvml.NVMLError:
            return None  # not supported, or no sample since the last call
        if samples:
            self._last_seen_us = max(s.timeStamp for s in samples)
        latest: dict[int, tuple[int, int]] = {}
        for s in samples:
            if s.pid in pids and s.timeStamp >= latest.get(s.pid, (-1, 0))[0]:
                latest[s.pid] = (s.timeStamp, s.smUtil)
        if not latest:
            return None
        return float(sum(util for _, util in latest.values()))

    def read(self, pids: set[int]) -> tuple[float, float, str, str]:
        """(utilisation %, memory MiB, utilisation scope, memory scope) for ``pids``."""
        if not self.available:
            return float("nan"), float("nan"), "none", "none"
        nvml = self._nvml
        memory = self._process_memory_MB(pids)
        memory_scope = "process"
        if memory is None:
            memory = nvml.nvmlDeviceGetMemoryInfo(self._handle).used / MB
            memory_scope = "device"
        util = self._process_util_percent(pids)
        util_scope = "process"
        if util is None:
            util = float(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            util_scope = "device"
        return util, float(memory), util_scope, memory_scope


class ResourceSampler:
    """Samples the watched process tree every ``interval_s`` seconds on a daemon thread.

    ``watch(pid)`` points it at a process (the child; its descendants are found at every
    sample), ``label(...)`` says what that process is doing now; samples are taken only while a
    process is watched. Use as a context manager, or ``start()`` and ``stop()``.
    """

    def __init__(self, interval_s: float = 0.5, gpu_index: int = 0, gpu: bool = True):
        if not interval_s > 0:
            raise ValueError(f"the sampling interval must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.gpu = GpuProbe(gpu_index) if gpu else None
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._root: psutil.Process | None = None
        self._processes: dict[int, psutil.Process] = {}
        self._label: dict[str, Any] = {}
        self._started = 0.0

    @property
    def gpu_note(self) -> str:
        """Why there are no GPU figures ("" when there are)."""
        if self.gpu is None:
            return "GPU sampling switched off"
        return "" if self.gpu.available else self.gpu.reason

    def watch(self, pid: int | None) -> None:
        """Sample ``pid`` and its descendants from now on (None: stop sampling)."""
        with self._lock:
            if pid is None:
                self._root = None
            elif self._root is None or self._root.pid != pid:
                try:
                    self._root = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    self._root = None
                self._processes = {}
                if self._root is not None:
                    self._tree()  # the first cpu_percent call of a process only starts its clock

    def label(self, **fields: Any) -> None:
        """Replace the label attached to the following samples."""
        with self._lock:
            self._label = dict(fields)

    def _tree(self) -> list[psutil.Process]:
        """The watched process and its descendants, reusing the Process objects that carry
        each one's CPU clock from the previous sample."""
        try:
            found = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return []
        tree = []
        for process in found:
            known = self._processes.get(process.pid)
            try:
                if known is None or known.create_time() != process.create_time():
                    known = process
                    self._processes[process.pid] = known
                    known.cpu_percent(None)
            except psutil.Error:  # ended while being listed
                continue
            tree.append(known)
        return tree

    def sample(self) -> Sample | None:
        """Take one sample now (the thread calls this); None when nothing is watched."""
        with self._lock:
            if self._root is None:
                return None
            cpu = rss = 0.0
            alive = []
            for process in self._tree():
                try:
                    with process.oneshot():
                        cpu += process.cpu_percent(None)
                        rss += process.memory_info().rss
                    alive.append(process.pid)
                except psutil.Error:  # ended between listing and reading
                    continue
            if not alive:
                return None
            label = dict(self._label)
        util, memory, util_scope, memory_scope = (
            self.gpu.read(set(alive)) if self.gpu else (float("nan"), float("nan"), "none", "none")
        )
        reading = Sample(
            time_s=time.perf_counter() - self._started,
            cpu_percent=cpu,
            rss_MB=rss / MB,
            n_processes=len(alive),
            gpu_util_percent=util,
            gpu_memory_MB=memory,
            gpu_util_scope=util_scope,
            gpu_memory_scope=memory_scope,
            label=label,
        )
        with self._lock:
            self.samples.append(reading)
        return reading

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a sampler must never take the benchmark down
                continue

    def start(self) -> ResourceSampler:
        self._started = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop the thread and return every sample taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.gpu is not None:
            self.gpu.close()
        return list(self.samples)

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
