"""Real ``rag worker`` processes for tests, and waiting for a job's state with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.core.config import JobsSettings, Settings
from app.jobs.processes import settings_json, worker_command

T = TypeVar("T")

BACKEND_DIR = Path(__file__).resolve().parents[2]
# Beats fast enough that a dead worker's job is taken over within seconds, and a silence long
# enough that a worker busy on a loaded machine is not taken for dead.
FAST_JOBS = JobsSettings(
    serve_workers=0, heartbeat_s=0.5, stalled_after_s=5.0, poll_s=0.2, shutdown_grace_s=5.0
)


def jsonl(lines: list[str]) -> bytes:
    """A ``.jsonl`` upload: one document per line, with the line's text."""
    rows = [
        json.dumps({"id": f"r{i}", "text": text}, ensure_ascii=False)
        for i, text in enumerate(lines)
    ]
    return ("\n".join(rows) + "\n").encode("utf-8")


@contextmanager
def worker_process(settings: Settings, schema: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``rag worker`` for ``schema`` with ``settings``, as the server starts its own; stopped
    (or, if it was killed, reaped) on exit."""
    command = worker_command(settings, schema=schema, parent_pid=os.getpid())
    env = {**os.environ, "PYTHONPATH": str(BACKEND_DIR)}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, cwd=BACKEND_DIR, env=env)
    assert child.stdin is not None
    child.stdin.write(settings_json(settings).encode("utf-8"))
    child.stdin.close()
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def poll(fetch: Callable[[], T], until: Callable[[T], bool], *, timeout_s: float = 120) -> T:
    """Call ``fetch`` until ``until`` holds for what it returns; fail with the last one at the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not there after {timeout_s} s: {value}")
        time.sleep(0.05)


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    *,
    timeout_s: float = 120,
) -> dict[str, Any]:
    """``GET /api/jobs/{id}`` once ``until(job)`` holds."""
    return poll(lambda: client.get(f"/api/jobs/{job_id}").json(), until, timeout_s=timeout_s)


def final(job: dict[str, Any]) -> bool:
    """Whether the job has ended."""
    return job["status"] in ("succeeded", "failed", "cancelled")
