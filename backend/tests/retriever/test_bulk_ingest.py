"""Bulk loads on the embedded PostgreSQL: a file's documents written in batches inside one
transaction, the HNSW index built once after the rows, and searches right all along."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever import document_batches
from app.retriever.indexer import Indexer
from app.retriever.search_index import SEARCH_INDEX
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens
from tests.conftest import StoreFactory
from tests.utils.documents import nsmc_reviews

# A bulk load from 50 new chunks on an empty store; batches of 40 chunks, so that a file of a
# few hundred reviews is written (and reported) in several batches.
SETTINGS = RetrievalSettings(chunk_size=200, chunk_overlap=40, bulk_load_chunks=50)
BATCH_CHUNKS = 40


class Stop(Exception):
    """Raised by a progress callback, as a cancelled job's is."""


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_batches, "BATCH_CHUNKS", BATCH_CHUNKS)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dimension=64)


@pytest.fixture
def store(store_factory: StoreFactory, embedder: HashEmbedder) -> PGVectorStore:
    return store_factory(dimension=embedder.dimension, embedder_name=embedder.name)


@pytest.fixture
def indexer(store: PGVectorStore, embedder: HashEmbedder) -> Indexer:
    return Indexer(store, embedder, SETTINGS)


@pytest.fixture
def conn(pg_url: str, store: PGVectorStore) -> Iterator[psycopg.Connection]:
    """A connection of the test's own on the store's schema, outside the store's pool."""
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("SET search_path TO {}, public").format(sql.Identifier(store.schema))
        )
        yield connection


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()


def reviews(start: int, count: int, prefix: str) -> list[dict[str, Any]]:
    texts = nsmc_reviews(start + count)[start:]
    return [{"id": f"{prefix}-{i}", "text": t} for i, t in enumerate(texts)]


def search_index(conn: psycopg.Connection) -> tuple[int, bool] | None:
    """``(oid, valid)`` of the HNSW index, ``None`` when there is none."""
    row = conn.execute(
        "SELECT i.indexrelid::oid::int, i.indisvalid FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
        (SEARCH_INDEX,),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def dense_plan(conn: psycopg.Connection, vector: np.ndarray) -> str:
    literal = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    rows = conn.execute(
        "EXPLAIN SELECT id FROM chunks ORDER BY embedding <=> %s::vector LIMIT 5", (literal,)
    ).fetchall()
    return "\n".join(row[0] for row in rows)


def exact_top(
    embedder: HashEmbedder, records: list[dict[str, Any]], query: str, k: int
) -> list[str]:
    """The ``k`` records nearest to ``query`` by cosine, computed here (one chunk each)."""
    vectors = embedder.embed_array([r["text"] for r in records])
    scores = vectors @ embedder.embed_array([query])[0]
    order = sorted(range(len(records)), key=lambda i: (-scores[i], records[i]["id"]))
    return [records[i]["id"] for i in order[:k]]


def test_a_large_file_is_written_in_batches_and_indexed_after_its_rows(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection, embedder: HashEmbedder
) -> None:
    records = reviews(0, 300, "r")
    before = search_index(conn)
    calls: list[tuple[int, int]] = []
    results = indexer.ingest_bytes(
        "reviews.jsonl", jsonl(records), progress=lambda *c: calls.append(c)
    )
    assert [r.outcome for r in results] == ["indexed"] * len(records)
    assert store.count_chunks() == sum(r.chunks for r in results) >= len(records)

    # Reported batch by batch, and once at the end when everything is stored.
    assert len(calls) > 3 and calls[-1] == (300, 300)
    assert all(total == 300 for _, total in calls)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})

    # A new index, built after the rows, that dense search uses.
    after = search_index(conn)
    assert before is not None and after is not None
    assert after[1] is True and after[0] != before[0]
    query = records[123]["text"]
    assert SEARCH_INDEX in dense_plan(conn, embedder.embed_array([query])[0])
    [hit, *_] = store.search_dense(embedder.embed_query(query), k=3)
    assert hit.document_id == "r-123"
    assert "r-123" in {h.document_id for h in store.search_sparse(search_tokens(query), k=10)}

    again = indexer.ingest_bytes("reviews.jsonl", jsonl(records))
    assert {r.outcome for r in again} == {"unchanged"}
    assert search_index(conn) == after


def test_a_small_file_is_inserted_into_the_index(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection, embedder: HashEmbedder
) -> None:
    indexer.ingest_bytes("reviews.jsonl", jsonl(reviews(0, 200, "r")))
    built = search_index(conn)
    # 20 new chunks next to 200: under the crossover, so the index stays and takes them.
    small = reviews(200, 20, "s")
    results = indexer.ingest_bytes("more.jsonl", jsonl(small))
    assert [r.outcome for r in results] == ["indexed"] * 20
    assert search_index(conn) == built
    [one] = indexer.ingest_bytes("one.txt", "고유한 단일 문서 펭귄사과".encode())
    assert one.outcome == "indexed" and search_index(conn) == built
    [hit, *_] = store.search_dense(embedder.embed_query(small[7]["text"]), k=3)
    assert hit.document_id == "s-7"


def test_searches_during_a_bulk_load_see_the_stored_rows_exactly(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection, embedder: HashEmbedder
) -> None:
    first = reviews(0, 30, "a")
    indexer.ingest_bytes("first.jsonl", jsonl(first))
    stored_chunks = store.count_chunks()
    seen: list[tuple[Any, ...]] = []

    def read() -> None:
        query = first[11]["text"]
        hits = store.search_dense(embedder.embed_query(query), k=5)
        seen.append(
            (
                search_index(conn),
                [h.document_id for h in hits],
                exact_top(embedder, first, query, 5),
                store.count_chunks(),
                store.get_document("b-0"),
            )
        )

    def look(done: int, total: int) -> None:
        # Mid-load, a reader of its own (the loading thread would see its own transaction):
        # the index is gone and the new rows are not committed.
        if not seen and done < total:
            reader = threading.Thread(target=read)
            reader.start()
            reader.join()

    results = indexer.ingest_bytes("second.jsonl", jsonl(reviews(30, 300, "b")), progress=look)
    assert {r.outcome for r in results} == {"indexed"}
    [(index, found, expected, chunks, document)] = seen
    assert index is None
    assert found == expected and found[0] == "a-11"
    assert (chunks, document) == (stored_chunks, None)
    assert search_index(conn) is not None and search_index(conn)[1] is True


def test_concurrent_bulk_loads_each_finish_and_leave_one_valid_index(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection, embedder: HashEmbedder
) -> None:
    files = {name: reviews(300 * n, 300, name) for n, name in enumerate(("x", "y"))}
    # Both loads wait here once, mid-load, so that they overlap with the index dropped.
    together = threading.Barrier(2, timeout=120)
    errors: list[BaseException] = []

    def load(name: str) -> None:
        met = False

        def meet(done: int, total: int) -> None:
            nonlocal met
            if not met and done < total:
                met = True
                together.wait()

        try:
            results = indexer.ingest_bytes(f"{name}.jsonl", jsonl(files[name]), progress=meet)
            assert {r.outcome for r in results} == {"indexed"}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(name,)) for name in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_chunks() == sum(d.chunk_count for d in store.list_documents()) >= 600
    index = search_index(conn)
    assert index is not None and index[1] is True
    query = files["y"][42]["text"]
    assert SEARCH_INDEX in dense_plan(conn, embedder.embed_array([query])[0])
    assert store.search_dense(embedder.embed_query(query), k=1)[0].document_id == "y-42"


def test_a_bulk_load_stopped_midway_stores_nothing_and_rebuilds_the_index(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection
) -> None:
    kept = reviews(0, 20, "k")
    indexer.ingest_bytes("kept.jsonl", jsonl(kept))
    before = store.list_documents()

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        indexer.ingest_bytes("stopped.jsonl", jsonl(reviews(20, 300, "s")), progress=stop)
    assert store.list_documents() == before
    assert store.count_chunks() == sum(d.chunk_count for d in before)
    index = search_index(conn)
    assert index is not None and index[1] is True


def test_opening_the_store_rebuilds_an_index_a_crash_left_missing(
    indexer: Indexer,
    store: PGVectorStore,
    store_factory: StoreFactory,
    conn: psycopg.Connection,
    embedder: HashEmbedder,
) -> None:
    records = reviews(0, 300, "m")
    indexer.ingest_bytes("m.jsonl", jsonl(records))
    # What a bulk load killed before its end leaves behind.
    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SEARCH_INDEX)))
    query = records[5]["text"]
    assert [h.document_id for h in store.search_dense(embedder.embed_query(query), k=3)] == (
        exact_top(embedder, records, query, 3)
    )
    store_factory(dimension=embedder.dimension, embedder_name=embedder.name, schema=store.schema)
    index = search_index(conn)
    assert index is not None and index[1] is True
    assert SEARCH_INDEX in dense_plan(conn, embedder.embed_array([query])[0])


def test_a_rebuild_keeps_the_rows_of_uploads_running_beside_it(
    indexer: Indexer, store: PGVectorStore, conn: psycopg.Connection, embedder: HashEmbedder
) -> None:
    indexer.ingest_bytes("base.jsonl", jsonl(reviews(0, 200, "base")), collection="a")
    bulk = reviews(200, 300, "bulk")
    # Under the crossover next to 200 stored chunks: these go into the live index, or into the
    # table while a bulk load has the index dropped.
    beside = {"a": reviews(500, 20, "same"), "b": reviews(520, 20, "other")}
    written: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def upload_beside(done: int, total: int) -> None:
        # Mid-load, with the index dropped: the other uploads run and commit now.
        if not written and done < total:
            assert search_index(conn) is None
            for collection, records in beside.items():
                thread = threading.Thread(target=upload, args=(collection, records))
                thread.start()
                thread.join()

    def upload(collection: str, records: list[dict[str, Any]]) -> None:
        try:
            results = indexer.ingest_bytes(
                f"{collection}-beside.jsonl", jsonl(records), collection=collection
            )
            written[collection] = [r.outcome for r in results]
        except BaseException as exc:
            errors.append(exc)

    results = indexer.ingest_bytes(
        "bulk.jsonl", jsonl(bulk), collection="a", progress=upload_beside
    )
    assert errors == []
    assert {r.outcome for r in results} == {"indexed"}
    assert written == {"a": ["indexed"] * 20, "b": ["indexed"] * 20}
    index = search_index(conn)
    assert index is not None and index[1] is True
    documents = store.list_documents()
    assert len(documents) == 540
    assert store.count_chunks() == sum(d.chunk_count for d in documents)
    # Every row of the uploads beside the rebuild is in the new index: dense search through
    # it finds each of them next to its own vector (among the few reviews of the same words).
    for records in beside.values():
        for record in records:
            vector = embedder.embed_array([record["text"]])[0]
            assert SEARCH_INDEX in dense_plan(conn, vector)
            assert record["id"] in {h.document_id for h in store.search_dense(vector, k=5)}


class CountingEmbedder(HashEmbedder):
    """The hash embedder, telling when it has embedded the chunks of a second batch."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.calls = 0
        self.second_batch = threading.Event()

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        vectors = super().embed_array(texts)
        self.calls += 1
        if self.calls == 2:
            self.second_batch.set()
        return vectors


def test_the_next_batch_is_embedded_while_the_current_one_is_stored(
    store: PGVectorStore, embedder: HashEmbedder
) -> None:
    counting = CountingEmbedder(embedder.dimension)
    # One embedding call per batch of BATCH_CHUNKS chunks.
    indexer = Indexer(store, counting, SETTINGS, batch_size=BATCH_CHUNKS * 10)
    ahead: list[bool] = []

    def look(done: int, total: int) -> None:
        # Called once the first batch is written, before the loop asks for the second: it is
        # built meanwhile, not after. Without that, this waits the whole timeout and fails.
        if not ahead:
            ahead.append(counting.second_batch.wait(timeout=120))

    results = indexer.ingest_bytes("reviews.jsonl", jsonl(reviews(0, 200, "p")), progress=look)
    assert {r.outcome for r in results} == {"indexed"}
    assert ahead == [True]
    assert counting.calls > 2
