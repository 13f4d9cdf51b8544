"""The load governor: keep a long training run from taking over the machine.

A month-long run on a shared workstation must leave room for everything else. The governor caps
the trainer in four independent ways:

- threads: ``torch.set_num_threads`` (and inter-op threads) bound the CPU cores used;
- niceness: the process (and every thread and data worker it starts later) runs at a lower
  CPU priority and, where ``psutil`` is present, the lowest best-effort I/O priority;
- duty cycle: after each step the trainer sleeps so that compute is at most ``duty_cycle`` of
  the wall time (0.5 = it computes half of the time, idles the other half);
- GPU: a per-process memory fraction, and a temperature / power ceiling read through NVML;
  above it the trainer pauses until the GPU has cooled (or its draw fallen) by a margin.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from app.core.errors import Unavailable
from app.core.logger import get_logger
from app.recipes.governor_settings import GovernorSettings

log = get_logger("finetune.governor")


class GpuSensor(Protocol):
    """Reads the GPU's current temperature (°C) and power draw (W)."""

    def read(self) -> tuple[float, float]:
        """Temperature and power of the watched GPU now."""
        ...


class NvmlSensor:
    """``GpuSensor`` over NVML (``pip install nvidia-ml-py``)."""

    def __init__(self, device_index: int = 0) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise Unavailable(
                "a GPU temperature or power ceiling needs NVML: pip install nvidia-ml-py"
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


@dataclass
class GovernorStats:
    """Where the wall time went, as the governor saw it."""

    compute_s: float = 0.0
    throttle_s: float = 0.0
    """Sleeps taken to hold the duty cycle."""
    thermal_pause_s: float = 0.0
    thermal_pauses: int = 0

    @property
    def duty(self) -> float:
        """Share of governed time spent computing."""
        total = self.compute_s + self.throttle_s + self.thermal_pause_s
        return self.compute_s / total if total else 1.0


class LoadGovernor:
    """Applies ``GovernorSettings`` to this process and paces the training loop."""

    def __init__(
        self,
        settings: GovernorSettings,
        *,
        sensor: GpuSensor | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.stats = GovernorStats()
        self._sensor = sensor
        self._sleep = sleep
        self._clock = clock

    def apply(self) -> list[str]:
        """Set threads, priority and GPU memory cap; returns what was done, for the run record.

        Call it before the model is loaded, so every thread torch starts inherits the priority.
        """
        import torch

        s = self.settings
        applied: list[str] = []
        if s.max_threads is not None:
            torch.set_num_threads(s.max_threads)
            # Inter-op threads can only be set before the first parallel op; intra-op threads
            # (set above) carry nearly all of the work anyway.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(s.max_threads)
            applied.append(f"threads={torch.get_num_threads()}")
        if s.niceness:
            applied.append(f"nice={os.nice(s.niceness)}")
            applied += _lower_io_priority()
        if s.gpu_memory_fraction is not None:
            if torch.cuda.is_available():
                torch.cuda.set_per_process_memory_fraction(s.gpu_memory_fraction)
                applied.append(f"gpu_memory_fraction={s.gpu_memory_fraction}")
            else:
                log.warning("no CUDA device: --gpu-memory-fraction has nothing to limit")
        if (s.max_gpu_temp_c is not None or s.max_gpu_power_w is not None) and self._sensor is None:
            self._sensor = NvmlSensor()
        if s.max_gpu_temp_c is not None:
            applied.append(f"max_gpu_temp_c={s.max_gpu_temp_c}")
        if s.max_gpu_power_w is not None:
            applied.append(f"max_gpu_power_w={s.max_gpu_power_w}")
        if s.duty_cycle < 1:
            applied.append(f"duty_cycle={s.duty_cycle}")
        return applied

    @contextmanager
    def step(self) -> Iterator[None]:
        """Wrap one optimizer step: wait out a hot GPU first, then pace to the duty cycle."""
        self.wait_until_cool()
        start = self._clock()
        yield
        self.stats.compute_s += self._clock() - start
        self._throttle()

    def _throttle(self) -> None:
        duty = self.settings.duty_cycle
        if duty >= 1:
            return
        # Sleep the idle time the duty cycle owes so far; pauses for heat count as idle too,
        # and accounting over the whole run keeps short and long steps fair.
        idle_target = self.stats.compute_s * (1 - duty) / duty
        owed = idle_target - self.stats.throttle_s - self.stats.thermal_pause_s
        if owed > 0:
            start = self._clock()
            self._sleep(owed)
            self.stats.throttle_s += self._clock() - start

    def wait_until_cool(self) -> None:
        """Block while the GPU is over a ceiling, until it is back under it by the margin."""
        if self._sensor is None:
            return
        temp, power = self._sensor.read()
        if not self._over(temp, power, margin=False):
            return
        self.stats.thermal_pauses += 1
        log.warning("GPU at %.0f°C / %.0f W is over the ceiling: pausing", temp, power)
        start = self._clock()
        while self._over(temp, power, margin=True):
            self._sleep(self.settings.poll_s)
            temp, power = self._sensor.read()
        paused = self._clock() - start
        self.stats.thermal_pause_s += paused
        log.info("GPU back at %.0f°C / %.0f W after %.0f s", temp, power, paused)

    def _over(self, temp: float, power: float, *, margin: bool) -> bool:
        s = self.settings
        hot = s.max_gpu_temp_c is not None and temp > s.max_gpu_temp_c - (
            s.temp_margin_c if margin else 0.0
        )
        hungry = s.max_gpu_power_w is not None and power > s.max_gpu_power_w * (
            (1 - s.power_margin) if margin else 1.0
        )
        return hot or hungry


def _lower_io_priority() -> list[str]:
    try:
        import psutil
    except ImportError:
        return []
    if not hasattr(psutil, "IOPRIO_CLASS_BE"):
        return []
    psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    return ["ionice=best-effort/7"]
