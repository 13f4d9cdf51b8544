"""``rag keys`` in its own process, against the database of a server that is running meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import get_settings
from app.main import create_app
from tests.conftest import drop_schema
from tests.utils.live_server import live_server
from tests.utils.workers import BACKEND_DIR


@pytest.fixture
def env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The same settings for the server here and the CLI processes, through the environment."""
    settings = {
        "DATABASE_URL": pg_url,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_DIMENSION": "64",
        "API_INDEX_SAMPLE_CORPUS": "false",
        "JOBS_SERVE_WORKERS": "0",
        # Each request asks the database, so a new or revoked key counts at once.
        "AUTH_CACHE_S": "0",
    }
    monkeypatch.chdir(tmp_path)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield {**os.environ, "PYTHONPATH": str(BACKEND_DIR)}
    get_settings.cache_clear()
    drop_schema(pg_url, "rag")


def _rag(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_keys_made_and_revoked_by_the_cli_count_on_a_running_server(
    env: dict[str, str],
) -> None:
    app = create_app(get_settings(), frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=600) as client:
        assert client.get("/api/documents").status_code == 200

        created = _rag(env, "create", "--role", "editor", "--collections", "a,b", "--json")
        assert created.returncode == 0, created.stderr
        made = json.loads(created.stdout)
        assert set(made) == {"id", "key", "role", "collections"}
        assert (made["role"], made["collections"]) == ("editor", ["a", "b"])
        assert made["key"].startswith(f"rag_{made['id']}_")

        assert client.get("/api/documents").status_code == 401
        signed = {"Authorization": f"Bearer {made['key']}"}
        assert (
            client.get("/api/documents", params={"collection": "a"}, headers=signed).status_code
            == 200
        )

        listed = _rag(env, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [entry] = json.loads(listed.stdout)
        assert entry["id"] == made["id"] and entry["revoked_at"] is None
        assert made["key"] not in listed.stdout

        revoked = _rag(env, "revoke", made["id"])
        assert revoked.returncode == 0, revoked.stderr
        assert client.get("/api/documents", headers=signed).status_code == 401
        assert _rag(env, "revoke", made["id"]).returncode == 1


def test_a_plain_create_prints_only_the_key_on_stdout(env: dict[str, str]) -> None:
    created = _rag(env, "create", "--role", "reader", "--name", "대시보드")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("rag_") and len(created.stdout.split()) == 1
    assert "shown only this once" in created.stderr
    listed = _rag(env, "list")
    assert "대시보드" in listed.stdout and "reader" in listed.stdout
