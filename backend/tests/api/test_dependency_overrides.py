"""Routers read their parts through the typed dependencies, so an override reaches every route."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.api.deps import get_embedding_client, get_llm_client
from app.main import create_app
from app.models.fake import FakeLLM
from app.models.hash import HashEmbedder
from tests.api.conftest import make_settings
from tests.utils.live_server import live_server


@pytest.fixture(scope="module")
def overridden(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = make_settings(pg_url, tmp_path_factory.mktemp("data"))
    app = create_app(settings, schema=f"api_{uuid.uuid4().hex[:10]}", frontend_dir=None)
    unavailable = FakeLLM(available=False, name="override-llm")
    app.dependency_overrides[get_llm_client] = lambda: unavailable
    app.dependency_overrides[get_embedding_client] = lambda: HashEmbedder(64)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_status_reports_the_overridden_models(overridden: httpx.Client) -> None:
    status = overridden.get("/api/status").json()
    assert status["llm"]["name"] == "override-llm"
    assert status["embedding"]["dimension"] == 64


def test_ready_checks_the_overridden_llm(overridden: httpx.Client) -> None:
    ready = overridden.get("/ready")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["llm"]["ok"] is False
    assert checks["database"]["ok"] is True
    assert checks["embedding"]["ok"] is True
