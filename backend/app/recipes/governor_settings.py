"""The load governor's settings: how much of the machine a training run may take.

Torch-free, so that the app can validate a run's settings without loading the trainer; the
governor that applies them is ``app.finetune.governor``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.errors import InvalidInput
from app.recipes.settings_fields import option
from app.recipes.training_schedule import Window, parse_schedule

# The argument group of ``rag finetune train --help`` these settings appear in.
_GOVERNOR = "load governor (may change on --resume)"


@dataclass(frozen=True)
class GovernorSettings:
    """Limits on the trainer's use of the machine; ``None`` means no limit."""

    max_threads: int | None = field(
        default=None,
        metadata=option(group=_GOVERNOR, help="CPU threads for compute (default: all)"),
    )
    niceness: int = field(
        default=10,
        metadata=option(
            group=_GOVERNOR,
            flag="nice",
            help="raise the process niceness by N, 0-19 (default {default})",
        ),
    )
    """Added to the process's nice value (0-19; higher yields more to other processes)."""
    duty_cycle: float = field(
        default=1.0,
        metadata=option(
            group=_GOVERNOR, help="compute at most this share of wall time (default 1.0)"
        ),
    )
    gpu_memory_fraction: float | None = field(
        default=None, metadata=option(group=_GOVERNOR, help="cap on this GPU's memory (0-1]")
    )
    max_gpu_temp_c: float | None = field(
        default=None,
        metadata=option(
            group=_GOVERNOR, flag="max-gpu-temp", help="pause above this GPU temperature (°C)"
        ),
    )
    max_gpu_power_w: float | None = field(
        default=None,
        metadata=option(
            group=_GOVERNOR, flag="max-gpu-power", help="pause above this GPU power draw (W)"
        ),
    )
    schedule: str | None = field(
        default=None,
        metadata=option(
            group=_GOVERNOR,
            help="train only inside these local hours, e.g. 22:00-08:00 or "
            "22:00-08:00,12:00-13:00 (default: any hour)",
        ),
    )
    max_cpu_load: float | None = field(
        default=None,
        metadata=option(
            group=_GOVERNOR,
            help="pause while other processes use more than this share of all cores (0-1]",
        ),
    )
    """Measured as the machine's busy CPU time minus this process's own, over a poll interval."""
    max_other_gpu_mib: float | None = field(
        default=None,
        metadata=option(
            group=_GOVERNOR,
            help="pause while other processes hold more than this much memory on the GPU (MiB)",
        ),
    )
    resume_after_s: float = field(
        default=60.0,
        metadata=option(
            group=_GOVERNOR,
            flag="resume-after",
            help="after a load pause, resume once the load has stayed low this many seconds "
            "(default {default})",
        ),
    )
    temp_margin_c: float = 5.0
    """After a temperature pause, resume only once this many degrees under the ceiling."""
    power_margin: float = 0.1
    """After a power pause, resume only once this fraction under the ceiling."""
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_threads is not None and self.max_threads < 1:
            raise InvalidInput(f"max_threads must be at least 1, got {self.max_threads}")
        if not 0 <= self.niceness <= 19:
            raise InvalidInput(f"niceness must be between 0 and 19, got {self.niceness}")
        if not 0 < self.duty_cycle <= 1:
            raise InvalidInput(f"duty_cycle must be in (0, 1], got {self.duty_cycle}")
        if self.gpu_memory_fraction is not None and not 0 < self.gpu_memory_fraction <= 1:
            raise InvalidInput(
                f"gpu_memory_fraction must be in (0, 1], got {self.gpu_memory_fraction}"
            )
        if self.max_cpu_load is not None and not 0 < self.max_cpu_load <= 1:
            raise InvalidInput(f"max_cpu_load must be in (0, 1], got {self.max_cpu_load}")
        for name in ("max_other_gpu_mib", "resume_after_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInput(f"{name} must be at least 0, got {value}")
        if self.schedule is not None:
            parse_schedule(self.schedule)
        for name in ("max_gpu_temp_c", "max_gpu_power_w", "poll_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidInput(f"{name} must be positive, got {value}")
        if self.temp_margin_c < 0 or not 0 <= self.power_margin < 1:
            raise InvalidInput(
                f"temp_margin_c must be at least 0 (got {self.temp_margin_c}) and power_margin "
                f"in [0, 1) (got {self.power_margin})"
            )

    @property
    def windows(self) -> tuple[Window, ...]:
        """The parsed ``schedule``; empty when the run may train at any hour."""
        return () if self.schedule is None else parse_schedule(self.schedule)
