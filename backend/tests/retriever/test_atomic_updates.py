"""A document's metadata and its chunks change together: readers see the previous version whole
or the new one whole, and an update interrupted anywhere (an error between its statements, a
cancelled job, a SIGKILL of ``rag ingest``) leaves the previous version, and nothing ``indexing``.
On the embedded PostgreSQL with the offline hash embedder and real Kiwi."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever import document_batches
from app.retriever.document_versions import derive_document_id
from app.retriever.indexer import Indexer
from app.retriever.store_writes import ChunkRow
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens
from tests.conftest import StoreFactory, drop_schema
from tests.utils.documents import nsmc_reviews

SETTINGS = RetrievalSettings(chunk_size=200, chunk_overlap=40)
BACKEND = Path(__file__).resolve().parents[2]


class Cancelled(Exception):
    """What a progress callback raises to stop the work, as a cancelled job's does."""


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dimension=64)


@pytest.fixture
def store(store_factory: StoreFactory, embedder: HashEmbedder) -> PGVectorStore:
    return store_factory(dimension=embedder.dimension, embedder_name=embedder.name)


@pytest.fixture
def indexer(store: PGVectorStore, embedder: HashEmbedder) -> Indexer:
    return Indexer(store, embedder, SETTINGS)


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()


def versioned(texts: list[str], version: int) -> list[dict[str, Any]]:
    """One record per text; version 2 changes every text and its metadata."""
    marker = "" if version == 1 else " 개정판입니다"
    return [
        {"id": f"d{i}", "text": text + marker, "metadata": {"version": version}}
        for i, text in enumerate(texts)
    ]


def snapshot(pg_url: str, schema: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every document row and every chunk, read in one snapshot by a reader of its own."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
        documents = conn.execute(
            "SELECT id, title, metadata, content_hash, status, chunk_count FROM documents"
            " ORDER BY id"
        ).fetchall()
        chunks = conn.execute(
            "SELECT document_id, text, metadata FROM chunks ORDER BY document_id, ordinal"
        ).fetchall()
    return documents, chunks


def assert_whole(documents: list[tuple[Any, ...]], chunks: list[tuple[Any, ...]]) -> None:
    """Each document's row and chunks describe one and the same version."""
    by_document: dict[str, list[tuple[Any, ...]]] = {}
    for chunk in chunks:
        by_document.setdefault(chunk[0], []).append(chunk)
    for document_id, title, metadata, _, status, chunk_count in documents:
        assert status != "indexing", document_id
        own = by_document.get(document_id, [])
        assert len(own) == chunk_count, document_id
        for _, _, chunk_metadata in own:
            assert chunk_metadata["title"] == title, document_id
            assert {k: chunk_metadata[k] for k in metadata} == metadata, document_id


def failing_copy(monkeypatch: pytest.MonkeyPatch, table: str, after: int = 0) -> None:
    """Make the ``after + 1``-th COPY into ``table`` fail, once the statements before it ran."""
    real_copy = psycopg.Cursor.copy
    seen = 0

    def copy(self: psycopg.Cursor, statement: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if isinstance(statement, str) and statement.startswith(f"COPY {table} "):
            seen += 1
            if seen > after:
                raise RuntimeError("injected: the connection broke mid-update")
        return real_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copy)


# ----- the two-step store API ------------------------------------------------------------------


def test_a_version_being_indexed_shows_nothing_until_its_chunks_replace_the_old(
    store: PGVectorStore,
) -> None:
    def begin(content_hash: str, title: str, version: int) -> None:
        store.begin_document(
            document_id="d",
            collection="c",
            source="d.txt",
            title=title,
            content_hash=content_hash,
            size_bytes=10,
            metadata={"version": version},
        )

    begin("v1", "첫판", 1)
    store.replace_chunks(
        "d", "v1", [ChunkRow(0, "old words", ["old"], np.ones(store.dimension), {})]
    )
    begin("v2", "개정판", 2)
    record = store.get_document("d")
    assert record is not None
    assert (record.title, record.metadata, record.content_hash) == ("첫판", {"version": 1}, "v1")
    assert (record.status, record.chunk_count) == ("indexing", 1)
    assert store.document_state("d") == ("v2", "indexing")
    [hit] = store.search_sparse(["old"], k=5)
    assert (hit.text, hit.metadata["title"], hit.metadata["version"]) == ("old words", "첫판", 1)

    store.replace_chunks(
        "d", "v2", [ChunkRow(0, "new words", ["new"], np.ones(store.dimension), {})]
    )
    record = store.get_document("d")
    assert record is not None
    assert (record.title, record.metadata, record.content_hash) == ("개정판", {"version": 2}, "v2")
    assert (record.status, record.chunk_count) == ("ready", 1)
    assert store.search_sparse(["old"], k=5) == []
    [hit] = store.search_sparse(["new"], k=5)
    assert (hit.metadata["title"], hit.metadata["version"]) == ("개정판", 2)


def test_a_version_that_fails_leaves_the_previous_one_whole(store: PGVectorStore) -> None:
    for content_hash, title in (("v1", "첫판"), ("v2", "개정판")):
        store.begin_document(
            document_id="d",
            collection="c",
            source="d.txt",
            title=title,
            content_hash=content_hash,
            size_bytes=10,
            metadata={"title_was": title},
        )
        if content_hash == "v1":
            store.replace_chunks(
                "d", "v1", [ChunkRow(0, "kept", ["kept"], np.ones(store.dimension), {})]
            )
    # PostgreSQL text cannot hold NUL: the COPY breaks after the old chunks were deleted.
    with pytest.raises(psycopg.DataError):
        store.replace_chunks(
            "d", "v2", [ChunkRow(0, "bad \x00", ["bad"], np.ones(store.dimension), {})]
        )
    store.mark_failed("d", "the text holds a NUL character")
    record = store.get_document("d")
    assert record is not None
    assert (record.title, record.metadata, record.content_hash) == (
        "첫판",
        {"title_was": "첫판"},
        "v1",
    )
    assert (record.status, record.chunk_count) == ("failed", 1)
    assert store.document_state("d") == ("v1", "failed")
    [hit] = store.search_sparse(["kept"], k=5)
    assert hit.metadata["title"] == "첫판"


# ----- the indexer -----------------------------------------------------------------------------


def test_an_update_that_breaks_between_its_statements_changes_nothing(
    indexer: Indexer, store: PGVectorStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = {"id": "rule", "text": "출장비는 하루 5만 원까지 지급합니다.", "metadata": {"v": 1}}
    [first] = indexer.ingest_bytes("rule.jsonl", jsonl([rule]), collection="c")
    before = store.get_document("rule")
    # The document's row is upserted and its old chunks deleted, then the COPY of the new
    # chunks breaks.
    failing_copy(monkeypatch, "chunks")
    changed = {"id": "rule", "text": "출장비는 하루 7만 원까지 지급합니다.", "metadata": {"v": 2}}
    [failed] = indexer.ingest_bytes("rule.jsonl", jsonl([changed]), collection="c")
    assert (first.outcome, failed.outcome) == ("indexed", "failed")
    assert failed.error is not None and "injected" in failed.error

    record = store.get_document("rule")
    assert record is not None and before is not None
    assert (record.title, record.metadata, record.content_hash, record.chunk_count) == (
        before.title,
        {"v": 1},
        before.content_hash,
        before.chunk_count,
    )
    assert (record.status, record.error) == ("failed", failed.error)
    [hit] = store.search_sparse(search_tokens("출장비 지급"), k=5)
    assert "5만 원" in hit.text and hit.metadata["v"] == 1
    assert_whole(*snapshot(pg_url, store.schema))


def test_a_file_update_that_breaks_in_a_later_batch_changes_nothing(
    indexer: Indexer, store: PGVectorStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(document_batches, "BATCH_CHUNKS", 10)
    texts = nsmc_reviews(60)
    indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 1)))
    before = store.list_documents()
    # Two batches of the new version are written inside the file's transaction; the third breaks.
    failing_copy(monkeypatch, "chunks", after=2)
    [failed] = indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 2)))
    assert failed.outcome == "failed" and "nothing from reviews.jsonl" in (failed.error or "")
    assert store.list_documents() == before
    assert store.search_sparse(search_tokens("개정판"), k=5) == []
    assert_whole(*snapshot(pg_url, store.schema))


def test_readers_during_an_update_see_the_previous_version_whole(
    indexer: Indexer, store: PGVectorStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(document_batches, "BATCH_CHUNKS", 10)
    texts = nsmc_reviews(60)
    indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 1)))
    old = snapshot(pg_url, store.schema)
    during: list[Any] = []

    def read(done: int, total: int) -> None:
        if done < total:
            # Read by others while some batches of the new version are written.
            during.append(snapshot(pg_url, store.schema))
            sparse: list[Any] = []
            reader = threading.Thread(
                target=lambda: sparse.extend(store.search_sparse(search_tokens("개정판"), k=5))
            )
            reader.start()
            reader.join()
            during.append(sparse)

    results = indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 2)), progress=read)
    assert {r.outcome for r in results} == {"indexed"}
    assert len(during) > 2
    for seen in during[0::2]:
        assert seen == old
    assert all(found == [] for found in during[1::2])
    new_documents, new_chunks = snapshot(pg_url, store.schema)
    assert_whole(new_documents, new_chunks)
    assert {row[2]["version"] for row in new_documents} == {2}


def test_a_cancelled_update_stops_and_leaves_the_previous_version(
    indexer: Indexer,
    store: PGVectorStore,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(document_batches, "BATCH_CHUNKS", 10)
    texts = nsmc_reviews(40)
    indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 1)))
    before = store.list_documents()
    calls: list[tuple[int, int]] = []

    def cancel(done: int, total: int) -> None:
        calls.append((done, total))
        raise Cancelled

    with pytest.raises(Cancelled):
        indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 2)), progress=cancel)
    assert len(calls) == 1 and calls[0][0] < calls[0][1] == 40
    assert store.list_documents() == before
    assert_whole(*snapshot(pg_url, store.schema))

    # The same through a folder ingest: the callback's exception is not a failed file.
    (tmp_path / "reviews.jsonl").write_bytes(jsonl(versioned(texts, 2)))
    with pytest.raises(Cancelled):
        indexer.ingest_path(tmp_path, document_progress=cancel)
    assert store.list_documents() == before

    results = indexer.ingest_bytes("reviews.jsonl", jsonl(versioned(texts, 2)))
    assert {r.outcome for r in results} == {"indexed"}
    assert {d.metadata["version"] for d in store.list_documents()} == {2}


def test_a_single_document_reports_its_progress_once_stored(
    indexer: Indexer, store: PGVectorStore
) -> None:
    document_id = derive_document_id("default", "one.txt")
    calls: list[tuple[int, int, Any]] = []

    def record(done: int, total: int) -> None:
        calls.append((done, total, store.document_state(document_id)))

    [result] = indexer.ingest_bytes("one.txt", "한 문서입니다.".encode(), progress=record)
    assert result.outcome == "indexed" and result.document_id == document_id
    [(done, total, state)] = calls
    assert (done, total) == (1, 1) and state is not None and state[1] == "ready"


# ----- a killed `rag ingest` -------------------------------------------------------------------


@pytest.fixture
def cli_env(pg_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a ``rag`` command on the test server, as a user would set it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_", "LLM_", "EMBEDDING_", "RETRIEVAL_", "API_", "RAG_", "JOBS_")
        )
    }
    env.update(
        DATABASE_URL=pg_url,
        RAG_DATA_DIR=str(tmp_path / "data"),
        EMBEDDING_DIMENSION="128",
        LLM_PROVIDER="extractive",
        API_INDEX_SAMPLE_CORPUS="false",
        PYTHONPATH=str(BACKEND),
    )
    yield env
    drop_schema(pg_url, "rag")


def wait_for(monitor: psycopg.Connection, condition: Callable[[], bool], what: str) -> None:
    for _ in range(6000):
        if condition():
            return
        monitor.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"gave up waiting until {what}")


def test_a_killed_rag_ingest_leaves_every_document_whole_and_none_indexing(
    pg_url: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    embedder = HashEmbedder(dimension=128)
    # The server: open on the schema the command writes to, before, during and after.
    server = PGVectorStore(pg_url, dimension=128, embedder_name=embedder.name, schema="rag")
    server.open()
    try:
        texts = nsmc_reviews(5000)
        reviews = tmp_path / "reviews.jsonl"
        reviews.write_bytes(jsonl(versioned(texts, 1)))
        first = Indexer(server, embedder, RetrievalSettings()).ingest_path(reviews)
        assert {r.outcome for r in first} == {"indexed"}
        before = server.list_documents()
        reviews.write_bytes(jsonl(versioned(texts, 2)))

        with psycopg.connect(pg_url, autocommit=True) as monitor:
            others = {
                row[0] for row in monitor.execute("SELECT pid FROM pg_stat_activity").fetchall()
            }

            def command_backends(*, writing_chunks: bool = False) -> list[int]:
                """The sessions the command opened; with ``writing_chunks``, those inside a
                transaction that has written and last ran a COPY into ``chunks``."""
                rows = monitor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    " AND (NOT %s OR (backend_xid IS NOT NULL AND query LIKE 'COPY chunks %%'))",
                    (writing_chunks,),
                ).fetchall()
                return [row[0] for row in rows if row[0] not in others]

            with (tmp_path / "ingest.log").open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "ingest", str(reviews), "--quiet"],
                    cwd=tmp_path,
                    env=cli_env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            try:
                # Killed once it has written chunks of the new version in its transaction.
                wait_for(
                    monitor,
                    lambda: (
                        process.poll() is not None or bool(command_backends(writing_chunks=True))
                    ),
                    "rag ingest writes chunks",
                )
                assert process.poll() is None, (tmp_path / "ingest.log").read_text()
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
            wait_for(monitor, lambda: not command_backends(), "the killed command's sessions end")

        assert server.list_documents() == before
        assert all(d.status == "ready" and d.metadata == {"version": 1} for d in before)
        assert_whole(*snapshot(pg_url, "rag"))
        assert server.search_sparse(search_tokens("개정판"), k=5) == []
        query = texts[1234]
        assert server.search_dense(embedder.embed_query(query), k=1)[0].document_id == "d1234"
    finally:
        server.close()
    # Whatever the command dropped of the HNSW index, the next start builds again.
    reopened = PGVectorStore(pg_url, dimension=128, embedder_name=embedder.name, schema="rag")
    reopened.open()
    try:
        with psycopg.connect(pg_url) as conn:
            valid = conn.execute(
                "SELECT i.indisvalid FROM pg_index i"
                " WHERE i.indexrelid = to_regclass('rag.chunks_embedding')"
            ).fetchone()
        assert valid == (True,)
    finally:
        reopened.close()
