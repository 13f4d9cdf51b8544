"""The HNSW build after a bulk load: on parallel workers, with memory sized to the graph, and on
one process when the server cannot give a parallel build its shared memory."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever import search_index
from app.retriever.indexer import Indexer
from app.retriever.search_index import SEARCH_INDEX, build_search_index, drop_search_index
from app.retriever.vector_store import PGVectorStore
from tests.conftest import StoreFactory
from tests.utils.documents import nsmc_reviews

DIMENSION = 32
REVIEWS = 600


@pytest.fixture
def store(store_factory: StoreFactory) -> PGVectorStore:
    return store_factory(dimension=DIMENSION, embedder_name=HashEmbedder(DIMENSION).name)


@pytest.fixture
def conn(pg_url: str, store: PGVectorStore) -> Iterator[psycopg.Connection]:
    """An autocommit connection on the store's schema that receives the server's DEBUG1
    messages (pgvector says there how a build ran)."""
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("SET search_path TO {}, public").format(sql.Identifier(store.schema))
        )
        connection.execute("SET client_min_messages = debug1")
        yield connection


@pytest.fixture
def messages(conn: psycopg.Connection) -> list[str]:
    received: list[str] = []
    conn.add_notice_handler(lambda notice: received.append(notice.message_primary or ""))
    return received


@pytest.fixture
def stored_vectors(store: PGVectorStore, conn: psycopg.Connection) -> None:
    """``REVIEWS`` reviews stored, one chunk each, and no HNSW index."""
    embedder = HashEmbedder(dimension=DIMENSION)
    # Every chunk goes into the live index; the tests drop it and build it their way.
    settings = RetrievalSettings(bulk_load_chunks=0)
    records = [{"id": f"r{i}", "text": t} for i, t in enumerate(nsmc_reviews(REVIEWS))]
    payload = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    results = Indexer(store, embedder, settings).ingest_bytes("reviews.jsonl", payload)
    assert {r.outcome for r in results} == {"indexed"}
    drop_search_index(conn, store.schema)
    assert search_index.search_index_valid(conn, store.schema) is None


def index_state(conn: psycopg.Connection, schema: str) -> bool | None:
    return search_index.search_index_valid(conn, schema)


def chunk_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM chunks").fetchone()
    return int(row[0]) if row else 0


def table_options(conn: psycopg.Connection) -> list[str] | None:
    row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = 'chunks'::regclass").fetchone()
    return row[0] if row else None


@pytest.mark.usefixtures("stored_vectors")
@pytest.mark.parametrize(
    ("workers", "how"),
    [
        ("1", "using 1 parallel workers"),
        ("0", f'building index "{SEARCH_INDEX}" on table "chunks" serially'),
    ],
)
def test_the_build_runs_on_the_workers_the_server_allows_and_leaves_the_table_as_it_was(
    store: PGVectorStore, conn: psycopg.Connection, messages: list[str], workers: str, how: str
) -> None:
    conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(sql.Literal(workers)))
    assert build_search_index(conn, store.schema) is True
    assert index_state(conn, store.schema) is True
    # pgvector says how the build ran: the chunks' heap, small as it is, earns no worker by size.
    assert how in messages, messages
    assert table_options(conn) is None
    assert build_search_index(conn, store.schema) is False


@pytest.mark.usefixtures("stored_vectors")
def test_a_parallel_build_without_shared_memory_is_built_again_on_one_process(
    store: PGVectorStore, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = search_index._create_search_index
    tries: list[str] = []

    def no_shared_memory_in_parallel(connection: psycopg.Connection, schema: str) -> None:
        workers = connection.execute("SHOW max_parallel_maintenance_workers").fetchone()
        tries.append(workers[0] if workers else "")
        if tries[-1] != "0":
            # What a parallel build meets in a container whose /dev/shm is too small; the
            # invalid index left by a failed CONCURRENTLY build is there as it would be.
            connection.execute(
                sql.SQL(
                    "CREATE INDEX {} ON chunks USING hnsw (embedding vector_cosine_ops)"
                ).format(sql.Identifier(SEARCH_INDEX))
            )
            connection.execute(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
                (f"{schema}.{SEARCH_INDEX}",),
            )
            raise errors.DiskFull("could not resize shared memory segment: No space left on device")
        create(connection, schema)

    monkeypatch.setattr(search_index, "_create_search_index", no_shared_memory_in_parallel)
    # Not the server's default (cores - 1 on the embedded server) nor PostgreSQL's (2).
    conn.execute("SET max_parallel_maintenance_workers = 5")
    assert build_search_index(conn, store.schema) is True
    assert tries == ["5", "0"]
    assert index_state(conn, store.schema) is True
    assert table_options(conn) is None
    # The session's own setting is back for whatever it runs next.
    assert conn.execute("SHOW max_parallel_maintenance_workers").fetchone() == ("5",)


@pytest.mark.usefixtures("stored_vectors")
def test_the_build_memory_follows_the_stored_vectors(conn: psycopg.Connection) -> None:
    chunks = chunk_count(conn)
    assert REVIEWS <= chunks < 2 * REVIEWS
    # A few hundred vectors of 32 dimensions need far less than the least a build is given.
    assert search_index._build_memory(conn) == "64MB"
    conn.execute(
        "INSERT INTO chunks (document_id, collection, ordinal, text, metadata, token_count,"
        " embedding) SELECT document_id, collection, ordinal + 10000 * n, text, metadata,"
        " token_count, embedding FROM chunks, generate_series(1, 99) n"
    )
    # 100 × the chunks × (4 × 32 + 1,024 bytes) × 1.5, in MB.
    expected = 100 * chunks * (4 * DIMENSION + 1024) * 3 // 2 // 2**20
    assert expected > 64
    assert search_index._build_memory(conn) == f"{expected}MB"
