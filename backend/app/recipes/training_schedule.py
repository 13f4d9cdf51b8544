"""Training hours: the local-time windows a run may compute in, such as ``"22:00-08:00"``.

A schedule is a comma-separated list of ``HH:MM-HH:MM`` windows. A window whose end is not after
its start runs across midnight (``22:00-08:00`` is the night); ``24:00`` is accepted as an end.
Each window includes its start and excludes its end. Torch-free, so settings can be validated
without the trainer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from app.core.errors import InvalidInput

# Long enough for any sensible day plan; anything longer is refused before it is parsed.
MAX_SCHEDULE_CHARS = 500
_WINDOW = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Window:
    """One daily window, as minutes after local midnight; ``end`` may be 1440 (24:00)."""

    start: int
    end: int

    def contains(self, moment: time) -> bool:
        """Whether the time of day ``moment`` falls inside the window."""
        minutes = moment.hour * 60 + moment.minute + (moment.second + moment.microsecond / 1e6) / 60
        if self.start < self.end:
            return self.start <= minutes < self.end
        return minutes >= self.start or minutes < self.end


def parse_schedule(text: str) -> tuple[Window, ...]:
    """The windows of ``text``; ``InvalidInput`` naming the part that is not a window."""
    if len(text) > MAX_SCHEDULE_CHARS:
        raise InvalidInput(f"schedule is longer than {MAX_SCHEDULE_CHARS} characters")
    windows = []
    for part in text.split(","):
        part = part.strip()
        match = _WINDOW.fullmatch(part)
        if match is None:
            raise InvalidInput(
                f"schedule: {part!r} is not a window like 22:00-08:00 "
                "(several are separated by commas)"
            )
        start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
        start, end = _minutes(start_h, start_m, part), _minutes(end_h, end_m, part)
        if start == _DAY_MINUTES:
            raise InvalidInput(f"schedule: {part!r} cannot start at 24:00")
        if start == end % _DAY_MINUTES:
            raise InvalidInput(
                f"schedule: {part!r} is empty or the whole day; leave the schedule out to "
                "train at any hour"
            )
        windows.append(Window(start, end))
    return tuple(windows)


def _minutes(hour: int, minute: int, part: str) -> int:
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise InvalidInput(f"schedule: {part!r} holds a time that does not exist")
    return hour * 60 + minute


def inside(windows: Iterable[Window], now: datetime) -> bool:
    """Whether ``now`` (local time) is inside one of ``windows``."""
    moment = now.time()
    return any(window.contains(moment) for window in windows)


def next_start(windows: Iterable[Window], now: datetime) -> datetime:
    """The first window start after ``now``, in ``now``'s time zone."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    for window in windows:
        start = today + timedelta(minutes=window.start)
        starts.append(start if start > now else start + timedelta(days=1))
    return min(starts)
