"""Noticing that the process that started this one has gone, even after a ``kill -9`` of it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def watch_parent(parent_pid: int, on_gone: Callable[[], None], *, every_s: float = 0.5) -> None:
    """Call ``on_gone`` once, from a daemon thread, when this process is no longer the child of
    ``parent_pid``."""
    gone = threading.Event()

    def watch() -> None:
        # An orphan is adopted by init (or a subreaper): its parent id changes.
        while not gone.wait(every_s):
            if os.getppid() != parent_pid:
                gone.set()
                on_gone()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
