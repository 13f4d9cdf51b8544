"""The database stops mid-run: requests get 503 in the error shape, then work again after it returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.retriever.embedded_postgres import EmbeddedPostgres
from tests.api.conftest import make_settings
from tests.conftest import temporary_server
from tests.utils.live_server import live_server


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own: stopping the session's would break other tests."""
    with temporary_server("rag-outage-") as server:
        yield server


def _wait_for(
    client: httpx.Client, path: str, status: int, timeout_s: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_database_down_gives_503_then_recovers(
    own_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    settings = make_settings(own_server.url, tmp_path)
    settings.database.connect_timeout_s = 1.0
    app = create_app(settings, schema="outage", frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        upload = client.post(
            "/api/documents",
            files=[("files", ("a.txt", "정전 시험 문서입니다.".encode(), "text/plain"))],
        )
        assert upload.status_code == 200

        own_server.stop()
        search = client.post("/api/search", json={"query": "정전"})
        assert search.status_code == 503
        assert search.json()["error"]["code"] == "database_unavailable"
        assert client.get("/api/documents").status_code == 503
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        # The local user is an admin: the reason names where the database lives.
        assert "rag-outage-" in ready.json()["checks"]["database"]["detail"]
        # Through a proxy the request is no longer the local user's: it reads no location.
        proxied = client.get("/ready", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 503
        assert proxied.json()["checks"]["database"] == {
            "ok": False,
            "detail": "The database does not answer.",
        }
        assert client.get("/health").status_code == 200

        own_server.start()
        assert _wait_for(client, "/ready", 200).status_code == 200
        search = client.post("/api/search", json={"query": "정전"})
        assert search.status_code == 200 and search.json()["results"]
