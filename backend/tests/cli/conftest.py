"""The ``rag`` command in this process, with its settings given through the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import get_settings
from tests.conftest import drop_schema


@pytest.fixture
def cli_env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings through the environment, as a user would give them, in ``tmp_path`` (the working
    folder); the ``rag`` schema they fill is dropped afterwards. Fixtures may set more variables
    before the first command reads the settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMBEDDING_DIMENSION", "128")
    monkeypatch.setenv("LLM_PROVIDER", "extractive")
    monkeypatch.setenv("API_INDEX_SAMPLE_CORPUS", "false")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    drop_schema(pg_url, "rag")
