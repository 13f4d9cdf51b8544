"""Common logging set-up: one format for the server, the CLI and the trainer."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _CurrentStderr(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is at that moment.

    The handler is installed once per process, but ``sys.stderr`` may be swapped later (a
    caller capturing the CLI's output, as tests do): bound to the stream it first saw, the
    handler would write into a closed one.
    """

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_rag_handler", False) for h in root.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._rag_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party libraries are chatty at INFO; their warnings still show.
    for noisy in (
        "httpx",
        "httpcore",
        "openai",
        "anthropic",
        "urllib3",
        "psycopg.pool",
        "pgserver",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the ``rag`` namespace."""
    return logging.getLogger(name if name.startswith("rag") else f"rag.{name}")
