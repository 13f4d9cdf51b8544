"""What the load governor watches: the GPU (through NVML), the CPU use of other processes, and
the run's ``control.json``, through which whoever drives the run pauses it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from app.core.errors import Unavailable
from app.core.logger import get_logger

log = get_logger("finetune.governor")

_MIB = 1024 * 1024
# control.json holds one flag; anything much bigger is not a control file.
_MAX_CONTROL_BYTES = 4096


class GpuSensor(Protocol):
    """Reads the watched GPU."""

    def read(self) -> tuple[float, float]:
        """Temperature (°C) and power draw (W) now."""
        ...

    def other_processes_mib(self) -> float:
        """GPU memory held by compute processes other than this one, in MiB."""
        ...


class CpuLoadSensor(Protocol):
    """Reads how busy other processes keep the machine's CPUs."""

    def read(self) -> float:
        """Share of all cores (0-1) that other processes used since the previous reading."""
        ...


def watched_gpu_index() -> int:
    """NVML's index of the GPU torch calls ``cuda:0``. NVML numbers every GPU of the host and
    ignores ``CUDA_VISIBLE_DEVICES``, so a run limited to GPU 3 must watch NVML's GPU 3."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else 0


class NvmlSensor:
    """``GpuSensor`` over NVML (``pip install nvidia-ml-py``)."""

    def __init__(self, device_index: int | None = None) -> None:
        device_index = watched_gpu_index() if device_index is None else device_index
        try:
            import pynvml
        except ImportError as exc:
            raise Unavailable(
                "a GPU temperature, power or memory limit needs NVML: pip install nvidia-ml-py"
            ) from exc
        try:
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        except pynvml.NVMLError as exc:
            raise Unavailable(f"NVML cannot reach GPU {device_index}: {exc}") from exc
        self._nvml = pynvml

    def read(self) -> tuple[float, float]:
        """Temperature from the GPU die sensor, power in watts (NVML reports milliwatts)."""
        temp = self._nvml.nvmlDeviceGetTemperature(self._handle, self._nvml.NVML_TEMPERATURE_GPU)
        power = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        return float(temp), power

    def other_processes_mib(self) -> float:
        """Memory of the GPU's compute processes but this one.

        NVML names processes by their ids in the host's process namespace: inside a container
        that does not share it, this process is not recognised and its own memory counts too.
        """
        own = os.getpid()
        processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        # usedGpuMemory is None where the driver may not tell (some virtualised GPUs).
        used = sum(p.usedGpuMemory or 0 for p in processes if p.pid != own)
        return used / _MIB


class PsutilCpuSensor:
    """``CpuLoadSensor`` from the machine's CPU times less this process's own (``psutil``)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        """Machine CPU seconds (all cores), busy machine CPU seconds, this process's CPU seconds."""
        times = self._psutil.cpu_times()
        # On Linux guest time is already inside user / nice: leave it out of the sum.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        idle = times.idle + getattr(times, "iowait", 0.0)
        own = self._process.cpu_times()
        return total, total - idle, own.user + own.system

    def read(self) -> float:
        """Other processes' share of all cores since the previous reading (or construction)."""
        total, busy, own = self._sample()
        last_total, last_busy, last_own = self._last
        self._last = (total, busy, own)
        elapsed = total - last_total
        if elapsed <= 0:
            return 0.0
        others = (busy - last_busy) - (own - last_own)
        return min(max(others / elapsed, 0.0), 1.0)


class ControlFile:
    """``{"paused": bool}`` in a file another process replaces atomically.

    A missing, unreadable or malformed file means "not paused"; the file is read again only when
    its modification time (or size, or inode: a rename) changes, so checking before every step
    costs one ``stat``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._paused = False

    def paused(self) -> bool:
        """Whether the file asks the run to pause now."""
        try:
            info = os.stat(self.path)
        except OSError:
            self._seen, self._paused = None, False
            return False
        seen = (info.st_mtime_ns, info.st_size, info.st_ino)
        if seen != self._seen:
            self._seen, self._paused = seen, self._read()
        return self._paused

    def _read(self) -> bool:
        try:
            with self.path.open("rb") as f:
                raw = f.read(_MAX_CONTROL_BYTES + 1)
        except OSError:
            return False
        if len(raw) > _MAX_CONTROL_BYTES:
            log.warning("%s is over %d bytes: ignored", self.path, _MAX_CONTROL_BYTES)
            return False
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python allows
            log.warning("%s is not JSON: ignored", self.path)
            return False
        paused = data.get("paused") if isinstance(data, dict) else None
        if not isinstance(paused, bool):
            log.warning('%s does not hold {"paused": true|false}: ignored', self.path)
            return False
        return paused
