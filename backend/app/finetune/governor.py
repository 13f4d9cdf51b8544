"""The load governor: keep a long training run from taking over the machine.

A month-long run on a shared workstation must leave room for everything else. The governor caps
the trainer's share of the machine:

- threads: ``torch.set_num_threads`` (and inter-op threads) bound the CPU cores used;
- niceness: the process (and every thread and data worker it starts later) runs at a lower
  CPU priority and, where ``psutil`` is present, the lowest best-effort I/O priority;
- duty cycle: after each step the trainer sleeps so that compute is at most ``duty_cycle`` of
  the wall time (0.5 = it computes half of the time, idles the other half);
- GPU: a per-process memory fraction;

and, before each step, makes it wait while one of these holds, in this order of precedence:

- ``user``: the run's ``control.json`` says ``{"paused": true}``;
- ``schedule``: the local time is outside the training hours (``22:00-08:00``);
- ``cpu_load``: other processes use more than ``max_cpu_load`` of all cores;
- ``gpu_busy``: other processes hold more than ``max_other_gpu_mib`` on the GPU;
- ``gpu_temperature`` / ``gpu_power``: the GPU is over its ceiling (read through NVML).

A load pause ends once the load has stayed low for ``resume_after_s``; a heat pause once the
GPU is a margin under its ceiling. Each change of state goes to ``on_state``; a set ``stop``
event ends any wait at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from app.core.logger import get_logger
from app.finetune.governor_sensors import (
    ControlFile,
    CpuLoadSensor,
    GpuSensor,
    NvmlSensor,
    PsutilCpuSensor,
)
from app.recipes.governor_settings import GovernorSettings
from app.recipes.training_schedule import inside, next_start

log = get_logger("finetune.governor")

PauseReason = Literal["user", "schedule", "cpu_load", "gpu_busy", "gpu_temperature", "gpu_power"]
PAUSE_REASONS: tuple[PauseReason, ...] = get_args(PauseReason)
"""Every reason to pause, highest precedence first."""
GovernorStateName = Literal["running", "paused", "stopped"]


def local_now() -> datetime:
    """The local time, with its UTC offset."""
    return datetime.now().astimezone()


@dataclass(frozen=True)
class GovernorState:
    """Whether the run computes, and if not, why and since when."""

    state: GovernorStateName
    reason: PauseReason | None
    since: datetime
    resumes_at: datetime | None = None
    """For a schedule pause: when the next training window opens."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form, times in ISO 8601."""
        return {
            "state": self.state,
            "reason": self.reason,
            "since": self.since.isoformat(timespec="seconds"),
            "resumes_at": self.resumes_at and self.resumes_at.isoformat(timespec="seconds"),
        }


@dataclass
class GovernorStats:
    """Where the wall time went, as the governor saw it."""

    compute_s: float = 0.0
    throttle_s: float = 0.0
    """Sleeps taken to hold the duty cycle."""
    paused_s: dict[str, float] = field(default_factory=dict)
    """Time spent paused, by reason."""
    pauses: dict[str, int] = field(default_factory=dict)
    """Pauses begun, by reason."""
    idle_credit_s: float = 0.0
    """Pause time that stood in for duty-cycle sleep (at most what the next step owed)."""

    @property
    def thermal_pause_s(self) -> float:
        """Time paused for the GPU's temperature or power."""
        return self.paused_s.get("gpu_temperature", 0.0) + self.paused_s.get("gpu_power", 0.0)

    @property
    def thermal_pauses(self) -> int:
        """Pauses begun for the GPU's temperature or power."""
        return self.pauses.get("gpu_temperature", 0) + self.pauses.get("gpu_power", 0)

    @property
    def duty(self) -> float:
        """Share of the time not paused that was spent computing."""
        total = self.compute_s + self.throttle_s + self.idle_credit_s
        return self.compute_s / total if total else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``run.json``, seconds rounded to the millisecond."""
        return {
            "compute_s": round(self.compute_s, 3),
            "throttle_s": round(self.throttle_s, 3),
            "paused_s": {reason: round(s, 3) for reason, s in self.paused_s.items()},
            "pauses": dict(self.pauses),
        }


class _LoadGate:
    """Closes when a load goes over its limit; opens once it has stayed at or under the limit
    for ``resume_after_s`` (so a load that dips for a moment does not restart the run)."""

    def __init__(self, limit: float, resume_after_s: float) -> None:
        self.limit = limit
        self.resume_after_s = resume_after_s
        self.closed = False
        self._low_since: float | None = None

    def update(self, load: float, at: float) -> bool:
        """Take a reading made at ``at`` (monotonic seconds); whether the gate is closed."""
        if load > self.limit:
            self.closed, self._low_since = True, None
        elif self.closed:
            if self._low_since is None:
                self._low_since = at
            if at - self._low_since >= self.resume_after_s:
                self.closed, self._low_since = False, None
        return self.closed


class LoadGovernor:
    """Applies ``GovernorSettings`` to this process and paces the training loop.

    ``clock`` (monotonic seconds) times steps and pauses, ``now`` (local time) decides the
    schedule and stamps states; ``sleep`` defaults to waiting on ``stop``, so that a stop ends
    a pause or a duty-cycle sleep at once.
    """

    def __init__(
        self,
        settings: GovernorSettings,
        *,
        sensor: GpuSensor | None = None,
        cpu_sensor: CpuLoadSensor | None = None,
        control_path: Path | None = None,
        stop: threading.Event | None = None,
        on_state: Callable[[GovernorState], None] | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = local_now,
    ) -> None:
        self.settings = settings
        self.stats = GovernorStats()
        self.stop = stop or threading.Event()
        self.on_state = on_state
        """Called with each new state, before the governor waits in it."""
        self.now = now
        self._sensor = sensor
        self._cpu_sensor = cpu_sensor
        self._control = ControlFile(control_path) if control_path is not None else None
        self._sleep = sleep or self.stop.wait
        self._clock = clock
        self._windows = settings.windows
        self.state = GovernorState("running", None, now())
        self._cpu_gate = self._gate(settings.max_cpu_load)
        self._gpu_gate = self._gate(settings.max_other_gpu_mib)
        self._cpu_read_at: float | None = None
        self._hot = self._hungry = False
        self._pause_credit_s = 0.0

    def _gate(self, limit: float | None) -> _LoadGate | None:
        return None if limit is None else _LoadGate(limit, self.settings.resume_after_s)

    def apply(self) -> list[str]:
        """Set threads, priority and GPU memory cap, start the sensors the limits need; returns
        what was done, for the run record.

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
        watches_gpu = (s.max_gpu_temp_c, s.max_gpu_power_w, s.max_other_gpu_mib) != (None,) * 3
        if watches_gpu and self._sensor is None:
            self._sensor = NvmlSensor()
        if s.max_cpu_load is not None and self._cpu_sensor is None:
            # Started now, so its first reading covers the loading of the model.
            self._cpu_sensor = PsutilCpuSensor()
        for name in (
            "max_gpu_temp_c",
            "max_gpu_power_w",
            "schedule",
            "max_cpu_load",
            "max_other_gpu_mib",
        ):
            if getattr(s, name) is not None:
                applied.append(f"{name}={getattr(s, name)}")
        if s.duty_cycle < 1:
            applied.append(f"duty_cycle={s.duty_cycle}")
        return applied

    def wait_to_run(self) -> bool:
        """Block while a reason to pause holds, polling every ``poll_s``; ``False`` once a stop
        has been requested (at once, even in the middle of a pause), ``True`` to go on."""
        while not self.stop.is_set():
            reason = self._pause_reason()
            if reason is None:
                self._enter("running", None)
                return True
            self._enter("paused", reason)
            start = self._clock()
            self._sleep(self.settings.poll_s)
            paused = self._clock() - start
            self.stats.paused_s[reason] = self.stats.paused_s.get(reason, 0.0) + paused
            self._pause_credit_s += paused
        self._enter("stopped", None)
        return False

    @contextmanager
    def step(self) -> Iterator[None]:
        """Wrap one optimizer step (after ``wait_to_run``): time it, then pace to the duty cycle."""
        start = self._clock()
        yield
        self.stats.compute_s += self._clock() - start
        self._throttle()

    def _throttle(self) -> None:
        # A pause just before this step stands in for the idle time the step owes, but no more:
        # a long pause must not buy hours of full-speed compute afterwards.
        credit, self._pause_credit_s = self._pause_credit_s, 0.0
        duty = self.settings.duty_cycle
        if duty >= 1:
            return
        # Accounting over the whole run keeps short and long steps fair.
        idle_target = self.stats.compute_s * (1 - duty) / duty
        owed = idle_target - self.stats.throttle_s - self.stats.idle_credit_s
        credit = min(credit, max(owed, 0.0))
        self.stats.idle_credit_s += credit
        owed -= credit
        if owed > 0:
            start = self._clock()
            self._sleep(owed)
            self.stats.throttle_s += self._clock() - start

    def _pause_reason(self) -> PauseReason | None:
        """The highest reason to pause now. Every sensor is read, so that each load's
        hysteresis keeps time even while a higher reason holds."""
        holding: set[PauseReason] = set()
        if self._control is not None and self._control.paused():
            holding.add("user")
        if self._windows and not inside(self._windows, self.now()):
            holding.add("schedule")
        if self._cpu_gate is not None and self._cpu_sensor is not None:
            at = self._clock()
            # While running, read at most once a poll interval: the sensor measures the load
            # since its previous reading, and a single step is too short a window.
            due = self._cpu_read_at is None or at - self._cpu_read_at >= self.settings.poll_s
            if due or self.state.state == "paused":
                self._cpu_gate.update(self._cpu_sensor.read(), at)
                self._cpu_read_at = at
            if self._cpu_gate.closed:
                holding.add("cpu_load")
        if self._sensor is not None:
            holding |= self._gpu_reasons(self._sensor)
        return next((reason for reason in PAUSE_REASONS if reason in holding), None)

    def _gpu_reasons(self, sensor: GpuSensor) -> set[PauseReason]:
        s = self.settings
        reasons: set[PauseReason] = set()
        if self._gpu_gate is not None and self._gpu_gate.update(
            sensor.other_processes_mib(), self._clock()
        ):
            reasons.add("gpu_busy")
        if s.max_gpu_temp_c is None and s.max_gpu_power_w is None:
            return reasons
        temp, power = sensor.read()
        # Once over a ceiling, stay paused until a margin under it.
        if s.max_gpu_temp_c is not None:
            self._hot = temp > s.max_gpu_temp_c - (s.temp_margin_c if self._hot else 0.0)
            if self._hot:
                reasons.add("gpu_temperature")
        if s.max_gpu_power_w is not None:
            limit = s.max_gpu_power_w * ((1 - s.power_margin) if self._hungry else 1.0)
            self._hungry = power > limit
            if self._hungry:
                reasons.add("gpu_power")
        return reasons

    def _enter(self, state: GovernorStateName, reason: PauseReason | None) -> None:
        if (state, reason) == (self.state.state, self.state.reason):
            return
        now = self.now()
        resumes_at = next_start(self._windows, now) if reason == "schedule" else None
        previous, self.state = self.state, GovernorState(state, reason, now, resumes_at)
        if reason is not None:
            self.stats.pauses[reason] = self.stats.pauses.get(reason, 0) + 1
            log.warning("pausing training: %s", _why(reason, self.settings, resumes_at))
        elif previous.state == "paused":
            log.info("resuming training after a pause (%s)", previous.reason)
        if self.on_state is not None:
            self.on_state(self.state)


def _why(reason: PauseReason, s: GovernorSettings, resumes_at: datetime | None) -> str:
    match reason:
        case "user":
            return "paused through control.json"
        case "schedule":
            opens = resumes_at.isoformat(timespec="minutes") if resumes_at else "?"
            return f"outside the training hours {s.schedule}; the next window opens at {opens}"
        case "cpu_load":
            return f"other processes use more than {s.max_cpu_load} of the CPUs"
        case "gpu_busy":
            return f"other processes hold more than {s.max_other_gpu_mib} MiB on the GPU"
        case "gpu_temperature":
            return f"the GPU is over {s.max_gpu_temp_c} °C"
        case "gpu_power":
            return f"the GPU draws over {s.max_gpu_power_w} W"


def _lower_io_priority() -> list[str]:
    try:
        import psutil
    except ImportError:
        return []
    if not hasattr(psutil, "IOPRIO_CLASS_BE"):
        return []
    psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    return ["ionice=best-effort/7"]
