"""The worker processes a server starts: ``rag worker`` children that live and die with it.

Each child gets the server's settings on its standard input (so that a server built from
settings in code, as tests do, has workers with the same ones) and the server's pid: it stops
when that process is gone, even after a ``kill -9`` that gave the server no chance to stop it.
A child that dies on its own is started again; its job is taken over as a dead worker's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from app.core.config import Settings
from app.core.logger import get_logger

log = get_logger(__name__)

# How often a dead child is looked for (and, at most, restarted).
_CHECK_EVERY_S = 1.0


def settings_json(settings: Settings) -> str:
    """``settings`` as JSON that ``Settings.model_validate_json`` reads back whole, secrets too."""

    def plain(value: Any) -> str:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot pass {type(value).__name__} to a worker")

    return json.dumps(settings.model_dump(), default=plain)


def worker_command(
    settings: Settings,
    *,
    schema: str,
    parent_pid: int,
    kinds: tuple[str, ...] = ("ingest",),
    concurrency: int | None = None,
) -> list[str]:
    """The command line of one child worker running jobs of ``kinds``."""
    return [
        sys.executable,
        "-m",
        "app.cli",
        "--log-level",
        settings.api.log_level,
        "worker",
        "--schema",
        schema,
        "--concurrency",
        str(concurrency or settings.jobs.concurrency),
        "--queues",
        ",".join(kinds),
        "--settings-stdin",
        "--parent-pid",
        str(parent_pid),
    ]


class WorkerProcesses:
    """``count`` child workers for the store in ``schema``, running jobs of ``kinds``;
    ``start()``, then ``stop()``. Training workers (``finetune``) are given the time their
    training processes need to save a checkpoint when they stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        schema: str,
        count: int,
        kinds: tuple[str, ...] = ("ingest",),
    ) -> None:
        self._settings = settings
        self._schema = schema
        self._count = count
        self._kinds = kinds
        training = "finetune" in kinds
        self._concurrency = settings.finetune.concurrency if training else None
        self._grace_s = settings.jobs.shutdown_grace_s
        if training:
            self._grace_s = max(self._grace_s, settings.finetune.stop_grace_s + 5)
        self._children: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        """Process ids of the children running now."""
        with self._lock:
            return [child.pid for child in self._children if child.poll() is None]

    def start(self) -> None:
        """Start the children and the thread that restarts those that die."""
        if self._count == 0:
            return
        with self._lock:
            self._children = [self._spawn() for _ in range(self._count)]
        self._monitor = threading.Thread(target=self._watch, name="worker-monitor", daemon=True)
        self._monitor.start()
        log.info("started %d %s workers: %s", self._count, "/".join(self._kinds), self.pids)

    def stop(self) -> None:
        """Ask every child to stop (SIGTERM), wait for them, and kill those that outstay."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join()
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        # A child's own deadline is the grace period; a little more for its exit.
        for child in children:
            try:
                child.wait(timeout=self._grace_s + 5)
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop; killing it", child.pid)
                child.kill()
                child.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = worker_command(
            self._settings,
            schema=self._schema,
            parent_pid=os.getpid(),
            kinds=self._kinds,
            concurrency=self._concurrency,
        )
        child = subprocess.Popen(command, stdin=subprocess.PIPE)
        assert child.stdin is not None
        child.stdin.write(settings_json(self._settings).encode("utf-8"))
        child.stdin.close()
        return child

    def _watch(self) -> None:
        while not self._stopping.wait(_CHECK_EVERY_S):
            with self._lock:
                for index, child in enumerate(self._children):
                    if child.poll() is not None and not self._stopping.is_set():
                        log.warning(
                            "worker %d exited with %s; starting another",
                            child.pid,
                            child.returncode,
                        )
                        self._children[index] = self._spawn()
