"""A real server on the embedded database, one fresh schema per test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    LLMSettings,
    RetrievalSettings,
    Settings,
)
from app.main import create_app
from tests.utils.live_server import live_server


@dataclass
class Api:
    """A running server and an HTTP client for it."""

    url: str
    client: httpx.Client
    settings: Settings
    schema: str


def make_settings(pg_url: str, data_dir: Path, **api: object) -> Settings:
    """Offline settings for tests: fake LLM, small hash embedder, tiny upload limits."""
    return Settings(
        database=DatabaseSettings(url=pg_url, data_dir=data_dir),
        llm=LLMSettings(provider="fake"),
        embedding=EmbeddingSettings(provider="hash", dimension=256),
        retrieval=RetrievalSettings(chunk_size=200, chunk_overlap=40, top_k=3),
        api=APISettings(index_sample_corpus=False, max_upload_mb=1.0, max_files=3, **api),
    )


@pytest.fixture(scope="module")
def api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(pg_url, tmp_path_factory.mktemp("data"))
    schema = f"api_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Api(url, client, settings, schema)
