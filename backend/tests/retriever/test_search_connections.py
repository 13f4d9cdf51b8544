"""How searches use their connections: ef_search per session, and a dropped connection survived."""

from __future__ import annotations

import psycopg

from app.retriever.vector_store import PGVectorStore
from tests.conftest import StoreFactory
from tests.retriever.test_vector_store import add_document, chunk, unit


def _filled(store_factory: StoreFactory) -> PGVectorStore:
    # One pooled connection, so that every search and every look below takes the same one.
    store = store_factory(pool_min=1, pool_max=1, ef_search=30)
    for i in range(6):
        add_document(store, f"d{i}", [chunk(0, f"사과 단어{i}", unit(i))])
    return store


def _session(store: PGVectorStore) -> tuple[int, str]:
    """Backend id and ``hnsw.ef_search`` of the store's one pooled connection."""
    with store._db.require_open().connection() as conn:
        row = conn.execute("SELECT pg_backend_pid(), current_setting('hnsw.ef_search')").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def test_connections_start_with_the_store_ef_search_and_keep_it(
    store_factory: StoreFactory,
) -> None:
    store = _filled(store_factory)
    assert _session(store)[1] == "30"
    # k 100 asks HNSW for 200 candidates: set for that search's transaction alone.
    assert len(store.search_dense(unit(2), k=100)) == 6
    assert [h.document_id for h in store.search_dense(unit(2), k=1)] == ["d2"]
    assert _session(store)[1] == "30"


def test_a_search_on_a_connection_the_server_dropped_runs_again(
    store_factory: StoreFactory, pg_url: str
) -> None:
    store = _filled(store_factory)
    for search in (
        lambda: [h.document_id for h in store.search_dense(unit(3), k=1)],
        lambda: [h.document_id for h in store.search_sparse(["단어3"], k=1)],
    ):
        dropped, _ = _session(store)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (dropped,))
        assert search() == ["d3"]
        assert _session(store)[0] != dropped
