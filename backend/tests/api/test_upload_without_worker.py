"""An upload that waits for its job, on a server with no worker: 503 at once, the job queued."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.api.conftest import make_settings
from tests.conftest import drop_schema
from tests.utils.live_server import live_server
from tests.utils.workers import FAST_JOBS, final, poll, wait_for_job, worker_process


@dataclass
class Server:
    app: FastAPI
    client: httpx.Client
    settings: Settings
    schema: str


@pytest.fixture
def server(pg_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server that starts no worker of its own (``JOBS_SERVE_WORKERS=0``)."""
    # A worker whose heartbeats a busy machine delays must still count as alive.
    jobs = FAST_JOBS.model_copy(update={"stalled_after_s": 60.0})
    settings = make_settings(pg_url, tmp_path / "data").model_copy(update={"jobs": jobs})
    schema = f"noworker_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Server(app, client, settings, schema)
    drop_schema(pg_url, schema)


def _upload(server: Server, name: str, **params: str) -> httpx.Response:
    body = f"# {name}\n\n작업자를 기다리는 문서입니다.\n".encode()
    return server.client.post(
        "/api/documents", params=params, files=[("files", (name, body, "text/markdown"))]
    )


def test_a_waiting_upload_without_a_worker_answers_at_once_and_its_job_stays_queued(
    server: Server,
) -> None:
    response = _upload(server, "a.md")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    job_id = error["params"]["id"]
    assert error["code"] == "no_worker"
    assert job_id in error["message"] and "rag worker" in error["message"]
    assert server.client.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
    # Not waiting needs no worker: the job is accepted as before.
    assert _upload(server, "b.md", wait="false").status_code == 202

    with worker_process(server.settings, server.schema):
        job = wait_for_job(server.client, job_id, final)
        assert job["status"] == "succeeded", job
        assert [(r["filename"], r["outcome"]) for r in job["results"]] == [("a.md", "indexed")]
        # With a worker's heartbeat in the database, an upload waits for its job again.
        served = _upload(server, "c.md")
        assert served.status_code == 200, served.text
        assert [r["outcome"] for r in served.json()["results"]] == ["indexed"]

    # A stopped worker leaves the database's list, at the latest when its heartbeat is stale.
    jobs = server.app.state.components.jobs
    poll(lambda: jobs.live_workers(server.settings.jobs.stalled_after_s), lambda n: n == 0)
    response = _upload(server, "d.md")
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_worker"
