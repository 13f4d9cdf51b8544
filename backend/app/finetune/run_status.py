"""``status.json``: where a run stands, for whoever follows it (the job's worker, a person).

Replaced atomically after every step and on every change of the governor's state::

    {"step": 120, "total_steps": 4000, "state": "paused", "reason": "schedule",
     "since": "2026-12-01T08:00:00+09:00", "resumes_at": "2026-12-01T22:00:00+09:00",
     "eta_s": 5231.4, "updated_at": "2026-12-01T08:00:00+09:00"}

``state`` is the governor's (``running``, ``paused``), then ``stopped`` (a checkpoint is saved
and ``--resume`` continues) or ``finished``. ``eta_s`` is the recent wall time per step (duty-cycle
sleeps included, pauses not) times the steps left; ``null`` until this process has done a step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from app.finetune.governor import GovernorState
from app.finetune.run_files import write_json

# Steps the ETA averages over: enough to smooth out one slow step, few enough to follow a
# change of pace (another duty cycle after --resume, a busier machine).
RECENT_STEPS = 20


class RunStatus:
    """Keeps ``status.json`` up to date; ``path=None`` keeps the figures without writing them
    (the processes of a several-process run other than the main one)."""

    def __init__(
        self,
        path: Path | None,
        *,
        step: int,
        total_steps: int,
        state: GovernorState,
        now: Callable[[], datetime],
    ) -> None:
        self.path = path
        self.step = step
        self.total_steps = total_steps
        self._state: dict[str, Any] = state.to_dict()
        self._now = now
        self._recent: deque[float] = deque(maxlen=RECENT_STEPS)

    def step_done(self, step: int, wall_s: float) -> None:
        """Record that ``step`` is done after ``wall_s`` seconds of compute and pacing."""
        self.step = step
        self._recent.append(wall_s)
        self.write()

    def governor_changed(self, state: GovernorState) -> None:
        """Show the governor's new state; a stop is shown by ``close`` once its checkpoint is
        saved, so that "stopped" always means "safe to resume"."""
        if state.state == "stopped":
            return
        self._state = state.to_dict()
        self.write()

    def close(self, state: Literal["finished", "stopped"]) -> None:
        """The run's last status."""
        self._state = {
            "state": state,
            "reason": None,
            "since": self._now().isoformat(timespec="seconds"),
            "resumes_at": None,
        }
        self.write()

    @property
    def eta_s(self) -> float | None:
        """Seconds of training left at the recent pace; ``None`` before the first step."""
        if not self._recent:
            return None
        per_step = sum(self._recent) / len(self._recent)
        return round(per_step * (self.total_steps - self.step), 1)

    def to_dict(self) -> dict[str, Any]:
        """The contents of ``status.json`` now."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            **self._state,
            "eta_s": self.eta_s,
            "updated_at": self._now().isoformat(timespec="seconds"),
        }

    def write(self) -> None:
        """Replace ``status.json`` with the status now."""
        if self.path is not None:
            write_json(self.path, self.to_dict())
