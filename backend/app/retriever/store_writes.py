"""The vector store's write path: documents with all their chunks, many per transaction, by COPY.

What readers see of a document changes in one transaction. ``write_documents`` upserts the
documents' rows (title, source, metadata, content hash, status, chunk count), swaps their chunks
and writes the chunks' BM25 postings together, so search and the document list show a document's
previous version whole or its new one whole, and a write that is interrupted (an error, a
cancelled job, a killed process) leaves the previous one as it was. ``begin_document`` parks a
version that is about to be indexed in the row's ``pending`` column, not in what is shown;
``replace_chunks`` makes it the shown version together with its chunks.

Every function here runs on the caller's connection and inside the caller's transaction; the
HNSW index that bulk loads drop and build again is ``search_index``'s.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from app.core.errors import Conflict, InvalidInput, NotFound
from app.retriever.types import DocumentStatus

# Btree entries have a size limit; longer tokens (long URLs) are compared on their start.
MAX_TERM_CHARS = 200
_STAGED_DOCUMENTS = "rag_incoming_documents"


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One chunk to store: its text, BM25 tokens, vector and chunk-level metadata."""

    ordinal: int
    text: str
    tokens: list[str]
    embedding: Sequence[float] | np.ndarray
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """One version of a document with all of its chunks, to be made visible in one go."""

    document_id: str
    collection: str
    source: str
    title: str
    content_hash: str
    size_bytes: int
    metadata: dict[str, Any]
    chunks: Sequence[ChunkRow]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What the store holds of a document of a collection: its latest version's hash and status."""

    content_hash: str
    status: DocumentStatus


@dataclass(frozen=True, slots=True)
class _PreparedChunk:
    """A ``ChunkRow`` checked and shaped for COPY."""

    ordinal: int
    text: str
    metadata: Jsonb
    vector: np.ndarray
    term_counts: Counter[str]
    token_count: int


def term_counts(tokens: Sequence[str]) -> Counter[str]:
    """How often each token occurs, tokens cut to what the postings index holds."""
    return Counter(token[:MAX_TERM_CHARS] for token in tokens if token)


def json_object(value: dict[str, Any], what: str) -> dict[str, Any]:
    """``value`` as plain JSON (tuples become lists); ``InvalidInput`` if it is not an object of JSON."""
    if not isinstance(value, dict):
        raise InvalidInput(f"The {what} must be a JSON object.")
    try:
        # Round-tripping turns tuples into lists and rejects what JSON cannot hold.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"The {what} must be plain JSON: {exc}") from None


def as_vector(
    embedding: Sequence[float] | np.ndarray, *, dimension: int, embedder_name: str, what: str
) -> np.ndarray:
    """``embedding`` as a float32 vector of the index's dimension; ``InvalidInput`` otherwise."""
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.shape != (dimension,):
        raise InvalidInput(
            f"The {what} has shape {vector.shape}; this index holds vectors of "
            f"{dimension} dimensions ({embedder_name})."
        )
    if not np.all(np.isfinite(vector)):
        raise InvalidInput(f"The {what} contains NaN or infinite values.")
    return vector


def document_versions(
    conn: psycopg.Connection, collection: str, document_ids: Sequence[str]
) -> dict[str, StoredVersion]:
    """The stored state of each of ``document_ids`` that ``collection`` holds."""
    rows = conn.execute(
        "SELECT id, coalesce(pending->>'content_hash', content_hash), status"
        " FROM documents WHERE collection = %s AND id = ANY(%s)",
        (collection, list(document_ids)),
    ).fetchall()
    return {row[0]: StoredVersion(row[1], row[2]) for row in rows}


def write_documents(
    conn: psycopg.Connection,
    documents: Sequence[DocumentWrite],
    *,
    dimension: int,
    embedder_name: str,
) -> None:
    """Make each of ``documents`` the stored version, its chunks and postings with it, ``ready``.

    Everything is checked before anything is written. A document is its collection's and id's:
    the same id in another collection is another document.
    """
    if not documents:
        return
    keys = [(d.document_id, d.collection) for d in documents]
    if len(set(keys)) != len(keys):
        raise InvalidInput("One write names a document twice.")
    prepared = []
    for document in documents:
        metadata = _metadata(document)
        chunks = _prepare_chunks(document, metadata, dimension, embedder_name)
        prepared.append((document, metadata, chunks))
    conn.execute(
        "INSERT INTO collections (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
        (sorted({d.collection for d in documents}),),
    )
    _stage(conn, prepared)
    conn.execute(_UPSERT_STAGED)
    # One statement per collection (a write is nearly always of one): the statistics triggers
    # run once per statement.
    by_collection: dict[str, list[str]] = {}
    for document in documents:
        by_collection.setdefault(document.collection, []).append(document.document_id)
    for collection, ids in by_collection.items():
        conn.execute(
            "DELETE FROM chunks WHERE collection = %s AND document_id = ANY(%s)", (collection, ids)
        )
    count = sum(len(chunks) for _, _, chunks in prepared)
    chunk_ids = [
        row[0]
        for row in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)",
            (count,),
        )
    ]
    placed = [(document, chunk) for document, _, chunks in prepared for chunk in chunks]
    rows = [
        (chunk_id, document, chunk)
        for chunk_id, (document, chunk) in zip(chunk_ids, placed, strict=True)
    ]
    with conn.cursor() as cur:
        with cur.copy(
            "COPY chunks (id, document_id, collection, ordinal, text, metadata, token_count,"
            " embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "text", "int4", "text", "jsonb", "int4", "vector"])
            for chunk_id, document, chunk in rows:
                copy.write_row(
                    (
                        chunk_id,
                        document.document_id,
                        document.collection,
                        chunk.ordinal,
                        chunk.text,
                        chunk.metadata,
                        chunk.token_count,
                        chunk.vector,
                    )
                )
        with cur.copy(
            "COPY chunk_terms (term, collection, chunk_id, tf, token_count)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "int8", "int4", "int4"])
            for chunk_id, document, chunk in rows:
                for term, tf in chunk.term_counts.items():
                    copy.write_row((term, document.collection, chunk_id, tf, chunk.token_count))


def begin_document(
    conn: psycopg.Connection,
    *,
    document_id: str,
    collection: str,
    source: str,
    title: str,
    content_hash: str,
    size_bytes: int,
    metadata: dict[str, Any],
) -> None:
    """Record that a version is being indexed (``indexing``), without showing any of it.

    A new document's row holds that version from the start (it has no chunks, so search finds
    nothing of it); an existing document keeps showing its stored version, chunks and metadata,
    and the new one waits in ``pending`` for ``replace_chunks``.
    """
    if not document_id or not collection:
        raise InvalidInput("A document needs an id and a collection.")
    if size_bytes < 0:
        raise InvalidInput("size_bytes must not be negative.")
    meta = json_object(metadata, "document metadata")
    pending = {
        "content_hash": content_hash,
        "source": source,
        "title": title,
        "size_bytes": size_bytes,
        "metadata": meta,
    }
    conn.execute("INSERT INTO collections (name) VALUES (%s) ON CONFLICT DO NOTHING", (collection,))
    conn.execute(
        "INSERT INTO documents"
        " (id, collection, source, title, content_hash, size_bytes, metadata, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'indexing')"
        " ON CONFLICT (id, collection) DO UPDATE SET pending = %s, status = 'indexing',"
        " error = NULL, updated_at = now()",
        (
            document_id,
            collection,
            source,
            title,
            content_hash,
            size_bytes,
            Jsonb(meta),
            Jsonb(pending),
        ),
    )


def replace_chunks(
    conn: psycopg.Connection,
    document_id: str,
    collection: str,
    content_hash: str,
    chunks: Sequence[ChunkRow],
    *,
    dimension: int,
    embedder_name: str,
) -> None:
    """Make the version ``begin_document`` recorded the stored one, with ``chunks``, ``ready``."""
    row = conn.execute(
        "SELECT source, title, content_hash, size_bytes, metadata, pending"
        " FROM documents WHERE id = %s AND collection = %s FOR UPDATE",
        (document_id, collection),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"No document with id {document_id!r}; call begin_document first.",
            code="document_not_found",
        )
    source, title, stored_hash, size_bytes, metadata, pending = row
    version = pending or {
        "content_hash": stored_hash,
        "source": source,
        "title": title,
        "size_bytes": size_bytes,
        "metadata": metadata,
    }
    if version["content_hash"] != content_hash:
        raise Conflict(
            f"Document {document_id!r} moved on to another version while this one was "
            "being indexed; its chunks were not replaced.",
            code="document_version_changed",
        )
    document = DocumentWrite(
        document_id=document_id,
        collection=collection,
        source=version["source"],
        title=version["title"],
        content_hash=content_hash,
        size_bytes=version["size_bytes"],
        metadata=version["metadata"],
        chunks=chunks,
    )
    write_documents(conn, [document], dimension=dimension, embedder_name=embedder_name)


def mark_failed(conn: psycopg.Connection, document_id: str, collection: str, reason: str) -> bool:
    """Mark the document's latest attempt ``failed``; what it shows stays. ``False``: no such document."""
    row = conn.execute(
        "UPDATE documents SET status = 'failed', error = %s, pending = NULL, updated_at = now()"
        " WHERE id = %s AND collection = %s RETURNING id",
        (reason, document_id, collection),
    ).fetchone()
    return row is not None


def delete_documents_from(
    conn: psycopg.Connection, collection: str, source: str, keep: Sequence[str]
) -> list[str]:
    """Delete the documents read from ``source`` into ``collection`` but those in ``keep``; their ids, sorted."""
    rows = conn.execute(
        "DELETE FROM documents WHERE collection = %s AND source = %s AND NOT id = ANY(%s)"
        " RETURNING id",
        (collection, source, list(keep)),
    ).fetchall()
    return sorted(row[0] for row in rows)


_UPSERT_STAGED = sql.SQL(
    "WITH incoming AS (DELETE FROM {staged} RETURNING *)"
    " INSERT INTO documents"
    " (id, collection, source, title, content_hash, size_bytes, metadata, status, chunk_count)"
    " SELECT id, collection, source, title, content_hash, size_bytes, metadata, 'ready',"
    " chunk_count FROM incoming"
    " ON CONFLICT (id, collection) DO UPDATE SET source = EXCLUDED.source,"
    " title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,"
    " size_bytes = EXCLUDED.size_bytes, metadata = EXCLUDED.metadata, status = 'ready',"
    " error = NULL, pending = NULL, chunk_count = EXCLUDED.chunk_count, updated_at = now()"
).format(staged=sql.Identifier("pg_temp", _STAGED_DOCUMENTS))


def _stage(
    conn: psycopg.Connection,
    prepared: Sequence[tuple[DocumentWrite, dict[str, Any], list[_PreparedChunk]]],
) -> None:
    """COPY the documents' rows into a temporary table that the upsert then empties."""
    staged = sql.Identifier("pg_temp", _STAGED_DOCUMENTS)
    row = conn.execute("SELECT to_regclass(%s)", (f"pg_temp.{_STAGED_DOCUMENTS}",)).fetchone()
    if row is None or row[0] is None:
        conn.execute(
            sql.SQL(
                "CREATE TEMPORARY TABLE {} (id text, collection text, source text, title text,"
                " content_hash text, size_bytes bigint, metadata jsonb, chunk_count integer)"
                " ON COMMIT DROP"
            ).format(staged)
        )
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL(
                "COPY {} (id, collection, source, title, content_hash, size_bytes, metadata,"
                " chunk_count) FROM STDIN WITH (FORMAT BINARY)"
            ).format(staged)
        ) as copy,
    ):
        copy.set_types(["text", "text", "text", "text", "text", "int8", "jsonb", "int4"])
        for document, metadata, chunks in prepared:
            copy.write_row(
                (
                    document.document_id,
                    document.collection,
                    document.source,
                    document.title,
                    document.content_hash,
                    document.size_bytes,
                    Jsonb(metadata),
                    len(chunks),
                )
            )


def _metadata(document: DocumentWrite) -> dict[str, Any]:
    if not document.document_id or not document.collection:
        raise InvalidInput("A document needs an id and a collection.")
    if document.size_bytes < 0:
        raise InvalidInput("size_bytes must not be negative.")
    return json_object(document.metadata, "document metadata")


def _prepare_chunks(
    document: DocumentWrite, meta: dict[str, Any], dimension: int, embedder_name: str
) -> list[_PreparedChunk]:
    ordinals = [chunk.ordinal for chunk in document.chunks]
    if len(set(ordinals)) != len(ordinals):
        raise InvalidInput(
            f"Chunks of {document.document_id!r} repeat an ordinal.",
            params={"document_id": document.document_id},
        )
    fixed = {"source": document.source, "title": document.title, "collection": document.collection}
    prepared = []
    for chunk in document.chunks:
        counts = term_counts(chunk.tokens)
        try:
            vector = as_vector(
                chunk.embedding,
                dimension=dimension,
                embedder_name=embedder_name,
                what=f"embedding of chunk {chunk.ordinal}",
            )
            chunk_meta = json_object(chunk.metadata, "chunk metadata")
        except InvalidInput as exc:
            raise InvalidInput(exc.message, params={"document_id": document.document_id}) from None
        prepared.append(
            _PreparedChunk(
                ordinal=chunk.ordinal,
                text=chunk.text,
                metadata=Jsonb({**meta, **chunk_meta, **fixed}),
                vector=vector,
                term_counts=counts,
                token_count=sum(counts.values()),
            )
        )
    return prepared
