"""Where the database comes from, and what happens when it goes away and comes back."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app.core.config import DatabaseSettings
from app.core.errors import DatabaseUnavailable
from app.retriever.embedded_postgres import describe_conninfo, embedded_server, resolve_database_url
from app.retriever.vector_store import ChunkRow, PGVectorStore
from tests.conftest import drop_schema, new_schema_name


def embedded_settings(data_dir: Path) -> DatabaseSettings:
    """Settings without ``DATABASE_URL`` whose embedded server lives in ``data_dir``."""
    # model_copy: the field is read from RAG_DATA_DIR / DATABASE_DATA_DIR, not from its own name.
    return DatabaseSettings(url=None).model_copy(update={"data_dir": data_dir})


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """A data folder outside pytest's basetemp (see ``pg_server`` in conftest for why)."""
    folder = Path(tempfile.mkdtemp(prefix="rag-test-data-"))
    yield folder
    embedded_server(embedded_settings(folder)).stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def own_server_url(data_dir: Path) -> str:
    """An embedded server of this module's own, so stopping it disturbs no other test."""
    return resolve_database_url(embedded_settings(data_dir))


def test_database_url_is_used_as_given() -> None:
    url = "postgresql://rag:secret@db.example:5433/rag"
    assert resolve_database_url(DatabaseSettings(url=url)) == url


def test_a_malformed_database_url_is_reported() -> None:
    with pytest.raises(DatabaseUnavailable, match="not a valid PostgreSQL URL"):
        resolve_database_url(DatabaseSettings(url="host=db port"))


def test_descriptions_of_urls_leave_the_password_out() -> None:
    described = describe_conninfo("postgresql://rag:secret@db.example:5433/rag")
    assert described == "rag@db.example:5433/rag"
    assert "secret" not in described


def test_without_url_an_embedded_server_runs_in_the_data_dir(
    data_dir: Path, own_server_url: str
) -> None:
    settings = embedded_settings(data_dir)
    assert resolve_database_url(settings) == own_server_url
    assert embedded_server(settings).pgdata == (data_dir / "pg").resolve()
    assert (data_dir / "pg" / "PG_VERSION").read_text().strip() == "16"
    with psycopg.connect(own_server_url) as conn:
        available = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    assert available is not None
    assert tuple(int(p) for p in available[0].split(".")) >= (0, 6, 0)


def test_an_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    store = PGVectorStore(
        f"postgresql://postgres@/postgres?host={tmp_path}",
        dimension=8,
        embedder_name="test:8",
        connect_timeout_s=2,
    )
    with pytest.raises(DatabaseUnavailable, match="failed"):
        store.open()
    with pytest.raises(DatabaseUnavailable, match="not open"):
        store.ping()


def test_a_server_without_pgvector_rights_is_reported_clearly(pg_url: str) -> None:
    role = new_schema_name("nosuper")
    database = new_schema_name("db")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        store = PGVectorStore(
            make_conninfo(pg_url, user=role, dbname=database), dimension=8, embedder_name="test:8"
        )
        with pytest.raises(DatabaseUnavailable, match="pgvector/pgvector image") as raised:
            store.open()
        assert raised.value.code == "pgvector_missing"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}"')
            admin.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def store_on_own_server(own_server_url: str) -> Iterator[PGVectorStore]:
    schema = new_schema_name()
    store = PGVectorStore(
        own_server_url, dimension=4, embedder_name="test:4", schema=schema, connect_timeout_s=2
    )
    store.open()
    yield store
    store.close()
    drop_schema(own_server_url, schema)


def test_the_store_recovers_by_itself_after_the_server_restarts(
    data_dir: Path, store_on_own_server: PGVectorStore
) -> None:
    store = store_on_own_server
    server = embedded_server(embedded_settings(data_dir))
    store.begin_document(
        document_id="d",
        collection="c",
        source="d.txt",
        title="D",
        content_hash="h",
        size_bytes=1,
        metadata={},
    )
    store.replace_chunks("d", "h", [ChunkRow(0, "서울", ["서울"], np.ones(4), {})])
    store.ping()

    server.stop()
    assert not server.running
    with pytest.raises(DatabaseUnavailable):
        store.ping()
    with pytest.raises(DatabaseUnavailable):
        store.search_sparse(["서울"], k=1)
    with pytest.raises(DatabaseUnavailable), store.document_lock("d"):
        pass

    server.start()
    assert server.running
    store.ping()
    hits = store.search_sparse(["서울"], k=1)
    assert [h.document_id for h in hits] == ["d"]
    assert store.count_chunks() == 1
