"""Fixtures shared by every test package.

- ``pg_server`` / ``pg_url``: one real PostgreSQL 16 + pgvector per test session, embedded in a
  temporary folder (the same ``pgserver`` build the application uses without ``DATABASE_URL``).
- ``unique_schema``: a fresh schema name for one test, dropped afterwards. Modules that share a
  store between their tests name their own with ``new_schema_name()`` and clean up with
  ``drop_schema()``.
- ``store_factory``: opens ``PGVectorStore`` objects on fresh schemas and closes them after the test.
- ``shared_data``: the read-only data folder ``../shared/data`` next to the repository;
  ``require_shared(path)`` for one file of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from app.retriever.embedded_postgres import EmbeddedPostgres
from app.retriever.vector_store import PGVectorStore

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

StoreFactory = Callable[..., PGVectorStore]

# Servers built in tests start no training worker unless a test asks for one: most tests never
# train, and each worker is a process that loads the app.
os.environ.setdefault("FINETUNE_WORKERS", "0")


def require_shared(path: Path) -> Path:
    """``path`` under the shared data folder. A test without it is skipped, with the reason,
    except under CI (``CI=true``), where the data is always laid beside the checkout and a
    missing file is a broken set-up that must fail rather than pass as skips."""
    if not path.exists():
        message = f"shared data not found at {path.resolve()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def new_schema_name(prefix: str = "t") -> str:
    """A schema name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_schema(pg_url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it, if it exists."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def temporary_server(prefix: str) -> Iterator[EmbeddedPostgres]:
    """A running embedded PostgreSQL in a new folder, stopped and deleted on exit."""
    # Not under pytest's basetemp: pytest resets that folder to mode 0700 whenever a test run
    # starts, which would lock out the server's own system user when it runs as root.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(folder / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """The session's embedded PostgreSQL, stopped and deleted at the end."""
    with temporary_server("rag-test-pg-") as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: EmbeddedPostgres) -> str:
    """Connection URL of the session's PostgreSQL (superuser ``postgres``, database ``postgres``)."""
    return pg_server.url


@pytest.fixture
def unique_schema(pg_url: str) -> Iterator[str]:
    """A schema name for this test alone; the schema is dropped when the test ends."""
    schema = new_schema_name()
    yield schema
    drop_schema(pg_url, schema)


@pytest.fixture
def store_factory(pg_url: str) -> Iterator[StoreFactory]:
    """``store_factory(dimension=16, embedder_name="test:16", schema=None, **options)``: an open
    ``PGVectorStore`` on a fresh schema (or on ``schema``); all are closed and their fresh
    schemas dropped after the test."""
    stores: list[PGVectorStore] = []
    created: list[str] = []

    def make(
        *,
        dimension: int = 16,
        embedder_name: str | None = None,
        schema: str | None = None,
        **options: Any,
    ) -> PGVectorStore:
        if schema is None:
            schema = new_schema_name()
            created.append(schema)
        store = PGVectorStore(
            pg_url,
            dimension=dimension,
            embedder_name=embedder_name or f"test:{dimension}",
            schema=schema,
            **options,
        )
        store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    for schema in created:
        drop_schema(pg_url, schema)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (KorQuAD, NSMC), as ``require_shared`` finds it."""
    return require_shared(SHARED_DATA)
