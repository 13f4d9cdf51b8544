"""A document's id is unique within its collection: migration 0012 turns a populated schema of the
previous version (ids unique across collections) into one keyed by (id, collection), in place."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from app.core.errors import Conflict
from app.retriever.store_writes import ChunkRow, DocumentWrite
from app.retriever.vector_store import PGVectorStore
from tests.conftest import drop_schema, new_schema_name
from tests.utils.old_schemas import migrate_before

DIM = 8
_KEY_VERSION = 12


def _schema_before_keys(pg_url: str, schema: str) -> None:
    """``schema`` migrated to the version before 0012, holding two documents with their chunks,
    written the way that version wrote them (postings and statistics kept by its triggers)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        migrate_before(conn, schema, _KEY_VERSION, dimension=DIM)
        conn.execute("INSERT INTO store_info (embedder, dimension) VALUES ('test:8', 8)")
        conn.execute("INSERT INTO collections VALUES ('a'), ('b')")
        corpus = {"rule": ("a", ["leave", "days"]), "card": ("b", ["card", "leave"])}
        for name, (collection, tokens) in corpus.items():
            conn.execute(
                "INSERT INTO documents (id, collection, source, title, content_hash,"
                " size_bytes, metadata, status, chunk_count)"
                " VALUES (%s, %s, 'rules.jsonl', %s, 'h', 1, '{}', 'ready', 1)",
                (name, collection, name),
            )
            chunk = conn.execute(
                "INSERT INTO chunks (document_id, collection, ordinal, text, metadata,"
                " token_count, embedding) VALUES (%s, %s, 0, %s, '{}', %s, %s) RETURNING id",
                (name, collection, " ".join(tokens), len(tokens), str([1.0] * DIM)),
            ).fetchone()
            assert chunk is not None
            for term in tokens:
                conn.execute(
                    "INSERT INTO chunk_terms (term, collection, chunk_id, tf, token_count)"
                    " VALUES (%s, %s, %s, 1, %s)",
                    (term, collection, chunk[0], len(tokens)),
                )


def _write(store: PGVectorStore, document_id: str, collection: str, text: str) -> None:
    row = ChunkRow(0, text, text.split(), np.ones(DIM, dtype=np.float32), {})
    document = DocumentWrite(document_id, collection, "new.jsonl", text, "h2", 1, {}, [row])
    store.write_documents([document])


def test_a_populated_schema_gets_ids_unique_within_each_collection(pg_url: str) -> None:
    schema = new_schema_name("keys")
    try:
        _schema_before_keys(pg_url, schema)
        store = PGVectorStore(pg_url, dimension=DIM, embedder_name="test:8", schema=schema)
        store.open()
        try:
            # What was stored is all there and searchable.
            assert [(d.id, d.collection) for d in store.list_documents()] == [
                ("rule", "a"),
                ("card", "b"),
            ]
            [hit] = store.search_sparse(["days"], k=5, collection="a")
            assert (hit.document_id, hit.text) == ("rule", "leave days")
            assert store.count_chunks() == 2

            # The id "rule" is free in collection b now: a second document, not a conflict.
            _write(store, "rule", "b", "leave policy")
            assert [r.collection for r in store.documents_with_id("rule")] == ["a", "b"]
            assert {h.text for h in store.search_sparse(["leave"], k=5, collection="b")} == {
                "card leave",
                "leave policy",
            }
            with pytest.raises(Conflict):
                store.get_document("rule")

            # Chunks follow their own document's key: deleting one leaves the other's.
            assert store.delete_document("rule", collection="a") is True
            assert store.search_sparse(["days"], k=5) == []
            assert store.get_document("rule").collection == "b"
            assert store.count_chunks() == 2
            with psycopg.connect(pg_url) as conn:
                key = conn.execute(
                    "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i"
                    " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                    " WHERE i.indrelid = %s::regclass AND i.indisprimary",
                    (f"{schema}.documents",),
                ).fetchone()
            assert key == (["id", "collection"],)
        finally:
            store.close()
    finally:
        drop_schema(pg_url, schema)
