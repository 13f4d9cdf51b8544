"""Worker processes: a job whose worker is killed is finished by another; workers die with the
server that started them, and stop when asked.

The job is held mid-way by holding the store's lock on one of its documents (as a concurrent
upload of that file would), so the kill lands while the job runs, whatever the machine's speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from app.core.config import Settings
from app.jobs.processes import settings_json
from app.main import create_app
from app.retriever.document_versions import derive_document_id
from tests.api.conftest import make_settings
from tests.utils.documents import nsmc_reviews
from tests.utils.live_server import live_server
from tests.utils.workers import (
    BACKEND_DIR,
    FAST_JOBS,
    final,
    jsonl,
    poll,
    wait_for_job,
    worker_process,
)


@dataclass
class Server:
    app: FastAPI
    client: httpx.Client
    settings: Settings
    schema: str


@pytest.fixture
def server(pg_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server without workers of its own: the test starts and kills them."""
    settings = make_settings(pg_url, tmp_path / "data").model_copy(update={"jobs": FAST_JOBS})
    schema = f"worker_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Server(app, client, settings, schema)


def _upload(server: Server, files: list[tuple[str, bytes]]) -> str:
    response = server.client.post(
        "/api/documents",
        params={"wait": "false"},
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _query(pg_url: str, schema: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(query, params).fetchall()


def test_a_killed_worker_s_job_is_finished_by_another(server: Server, pg_url: str) -> None:
    files = [
        ("reviews.jsonl", jsonl(nsmc_reviews(300))),
        ("b.md", "# 둘째\n\n두 번째 파일입니다.".encode()),
        ("c.md", "# 셋째\n\n세 번째 파일입니다.".encode()),
    ]
    store = server.app.state.components.store
    lock = ExitStack()
    lock.enter_context(store.document_lock(derive_document_id("default", "b.md")))
    with lock:
        with worker_process(server.settings, server.schema) as first:
            job_id = _upload(server, files)
            # The reviews are stored; the worker now waits for b.md's lock.
            running = wait_for_job(server.client, job_id, lambda j: len(j["results"]) == 300)
            assert running["status"] == "running"
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=30) == -signal.SIGKILL
        with worker_process(server.settings, server.schema):
            # Let go only now: the second worker alone can finish the job.
            lock.close()
            job = wait_for_job(server.client, job_id, final)
    assert job["status"] == "succeeded", job
    assert [r["filename"] for r in job["results"]] == ["reviews.jsonl"] * 300 + ["b.md", "c.md"]
    assert job["progress"] == {"done": 302, "total": 302}
    # Started twice (more if a busy worker was once taken for dead): a takeover happened.
    [(runs,)] = _query(pg_url, server.schema, "SELECT runs FROM jobs WHERE id = %s", job_id)
    assert runs >= 2
    statuses = _query(pg_url, server.schema, "SELECT status, count(*) FROM documents GROUP BY 1")
    assert statuses == [("ready", 302)]
    assert _query(pg_url, server.schema, "SELECT count(*) FROM job_files") == [(0,)]


_PARENT = """
import sys, time
from app.core.config import Settings
from app.jobs.processes import settings_json
from app.jobs.processes import WorkerProcesses
workers = WorkerProcesses(Settings.model_validate_json(sys.stdin.read()), schema=sys.argv[1], count=2)
workers.start()
print(" ".join(map(str, workers.pids)), flush=True)
time.sleep(3600)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_die_with_the_server_that_started_them(server: Server) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, server.schema],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=BACKEND_DIR,
        env={**os.environ, "PYTHONPATH": str(BACKEND_DIR)},
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    parent.stdin.write(settings_json(server.settings))
    parent.stdin.close()
    with parent.stdout:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
    # As `kill -9` of the server: it gets no chance to stop them.
    parent.kill()
    parent.wait()
    assert poll(lambda: [_gone(pid) for pid in pids], all, timeout_s=60)
