"""Documents and chunks in PostgreSQL + pgvector, with dense (HNSW, cosine) and sparse (BM25) search.

Everything lives in one schema (``rag`` by default), created and migrated by ``open()``; the
embedder that filled it is recorded there, and opening it with another one is refused. Each
pooled connection has its ``search_path`` set to that schema, so the SQL below names tables
plainly.

Writes live in ``store_writes``. ``write_documents`` stores whole versions of many documents at
once (COPY, never row by row): each document's row and its chunks change in one transaction, so
search and the document list see the previous version whole or the new one whole, never a mix,
and an interrupted write leaves the previous one. ``begin_document`` then ``replace_chunks`` is
the same in two steps: the first only records that a version is being indexed (``indexing``),
the second makes it visible with its chunks. Inside ``atomic()`` the writes of several calls
share one transaction, so that a file of many documents (a ``.jsonl``) is stored whole or not at
all. ``bulk_load()`` lets a large write run without the HNSW index and builds the index once
afterwards; a crash that leaves it missing is repaired by the next ``open()``. A document left
``indexing`` by a crash is marked ``failed`` by the next ``open()``; its stored version stays.

The same id in two collections is two documents; ``collection``, where a method takes an id,
may be left out for the one collection holding it (``Conflict`` when several do).

Searches read through ``dense_search`` (HNSW, cosine) and ``search_sql`` (BM25 over postings
with statistics kept at write time); connections, ``atomic()`` and errors are ``store_pool``'s,
and what ``open()`` does in the schema is ``store_schema``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import psycopg

from app.core.errors import InvalidInput, NotFound
from app.core.logger import get_logger
from app.retriever import document_reads, search_index, store_writes
from app.retriever.dense_search import DEFAULT_EF_SEARCH, MAX_EF_SEARCH, search_dense
from app.retriever.document_reads import DocumentKey as DocumentKey
from app.retriever.document_reads import DocumentPage as DocumentPage
from app.retriever.search_scope import check_k, scope

# The BM25 parameters are part of this module's interface.
from app.retriever.search_sql import BM25_B as BM25_B
from app.retriever.search_sql import BM25_K1 as BM25_K1
from app.retriever.search_sql import FREQUENT_MIN_DF, FREQUENT_SHARE, search_sparse
from app.retriever.store_pool import StorePool
from app.retriever.store_schema import document_lock_name, prepare_schema
from app.retriever.store_writes import ChunkRow, DocumentWrite, StoredVersion, as_vector
from app.retriever.store_writes import term_counts as _term_counts
from app.retriever.types import DocumentRecord, DocumentStatus, SearchHit

log = get_logger(__name__)

# pgvector's HNSW index holds vectors of at most 2,000 dimensions.
MAX_INDEXED_DIMENSION = 2000
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PGVectorStore:
    """Storage and search of chunks in one PostgreSQL schema; safe to share between threads."""

    def __init__(
        self,
        conninfo: str,
        *,
        dimension: int,
        embedder_name: str,
        schema: str = "rag",
        pool_min: int = 1,
        pool_max: int = 8,
        connect_timeout_s: float = 5.0,
        ef_search: int = DEFAULT_EF_SEARCH,
        exact_search_rows: int = 20_000,
        frequent_term_share: float = FREQUENT_SHARE,
        frequent_term_min_df: int = FREQUENT_MIN_DF,
    ) -> None:
        """``exact_search_rows``: a filtered dense search matching at most this many chunks is
        answered exactly, by scanning them, instead of through the HNSW index.
        ``frequent_term_share`` and ``frequent_term_min_df``: when a query term counts as
        frequent in sparse search (see ``search_sql``)."""
        if not _SCHEMA_NAME.match(schema):
            raise InvalidInput(
                f"Schema name {schema!r} must be lower-case letters, digits and _ (at most 63)."
            )
        if not 1 <= dimension <= MAX_INDEXED_DIMENSION:
            raise InvalidInput(
                f"Embeddings of {dimension} dimensions cannot be indexed: pgvector's HNSW index "
                f"takes 1 to {MAX_INDEXED_DIMENSION}. Choose an embedding model or dimension "
                "within that range."
            )
        if not embedder_name.strip():
            raise InvalidInput("The embedder name recorded with the index must not be empty.")
        self._dimension = dimension
        self._embedder_name = embedder_name
        self._schema = schema
        self._ef_search = min(max(ef_search, 1), MAX_EF_SEARCH)
        self._exact_search_rows = max(exact_search_rows, 0)
        self._frequent_term_share = frequent_term_share
        self._frequent_term_min_df = max(frequent_term_min_df, 0)
        self._db = StorePool(
            conninfo,
            name=f"rag-{schema}",
            pool_min=pool_min,
            pool_max=pool_max,
            connect_timeout_s=connect_timeout_s,
            ef_search=self._ef_search,
        )

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self._schema

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""
        return self._dimension

    # ----- life cycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Migrate the schema, check the embedder, fail interrupted documents, open the pool."""
        if self._db.is_open:
            return
        with (
            self._db.translate_errors(),
            self._db.direct() as conn,
            conn.transaction(),
        ):
            search_path = prepare_schema(
                conn,
                schema=self._schema,
                dimension=self._dimension,
                embedder_name=self._embedder_name,
                where=self._db.where,
            )
        self._db.open(search_path)
        self._repair_search_index()

    def close(self) -> None:
        """Close the pool; the store can be opened again."""
        self._db.close()

    def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers now."""
        with self._db.connection() as conn:
            conn.execute("SELECT 1")

    @contextmanager
    def document_lock(self, document_id: str) -> Iterator[None]:
        """Hold a PostgreSQL advisory lock on ``document_id``, across processes, for the block.

        The lock lives on a connection of its own, outside the pool, so that a lock holder
        never waits for a pooled connection that another lock holder keeps.
        """
        with self._db.session_lock(document_lock_name(self._schema, document_id)):
            yield

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make the store's calls in the block one transaction: committed when the block ends,
        rolled back, every write of it, when it raises. A nested block joins the outer one."""
        with self._db.atomic():
            yield

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Run the block's writes without the HNSW index, and build the index once afterwards.

        For writes large next to what is stored: one build over all rows costs less than
        inserting the new vectors one by one. Concurrent bulk loads share the missing index;
        the last one to finish builds it, and a crash that left it missing is repaired by the
        next ``open()``. Searches go on meanwhile: dense ones scan the chunks instead. Begin it
        outside ``atomic()``: dropping the index waits for open transactions on the chunks.
        """
        if self._db.shared_connection() is not None:
            raise RuntimeError("bulk_load() must begin outside atomic()")
        self._db.require_open()
        with self._db.translate_errors():
            conn = self._db.direct_in_schema()
        try:
            with self._db.translate_errors():
                conn.execute(
                    "SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))",
                    (search_index.bulk_lock_name(self._schema),),
                )
                search_index.drop_search_index(conn, self._schema)
            try:
                yield
            finally:
                with self._db.translate_errors():
                    conn.execute(
                        "SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))",
                        (search_index.bulk_lock_name(self._schema),),
                    )
                    self._restore_search_index(conn)
        finally:
            conn.close()

    # ----- documents --------------------------------------------------------------------------

    def document_state(
        self, document_id: str, *, collection: str | None = None
    ) -> tuple[str, DocumentStatus] | None:
        """``(content_hash, status)`` of the document's latest version, or ``None``."""
        with self._db.connection() as conn:
            found = document_reads.collection_of(conn, document_id, collection)
            versions = store_writes.document_versions(conn, found or "", [document_id])
        stored = versions.get(document_id)
        return None if stored is None else (stored.content_hash, stored.status)

    def document_versions(
        self, collection: str, document_ids: Sequence[str]
    ) -> dict[str, StoredVersion]:
        """Latest version's hash and status of each of the documents ``collection`` holds."""
        with self._db.connection() as conn:
            return store_writes.document_versions(conn, collection, document_ids)

    def ensure_collection(self, collection: str) -> None:
        """Create the collection if it is new, committed at once (outside ``atomic()``).

        Writers that create a collection inside their own transaction make every other writer
        to it wait for that transaction; a long bulk load creates it first, on its own.
        """
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO collections (name) VALUES (%s) ON CONFLICT DO NOTHING", (collection,)
            )

    def write_documents(self, documents: Sequence[DocumentWrite]) -> None:
        """Store each document's version with its chunks, ``ready``, all in one transaction.

        Each document's row and chunks change together: readers see its previous version or
        this one, whole. Raises ``InvalidInput`` for a chunk that cannot be stored.
        """
        with self._db.connection() as conn:
            store_writes.write_documents(
                conn, documents, dimension=self._dimension, embedder_name=self._embedder_name
            )

    def begin_document(
        self,
        *,
        document_id: str,
        collection: str,
        source: str,
        title: str,
        content_hash: str,
        size_bytes: int,
        metadata: dict[str, Any],
    ) -> None:
        """Record a new document, or a new version of one, as ``indexing``.

        Nothing of the new version shows until ``replace_chunks``: an existing document keeps
        its chunks, title and metadata (and stays searchable) until then, and keeps them if the
        new version fails.
        """
        with self._db.connection() as conn:
            store_writes.begin_document(
                conn,
                document_id=document_id,
                collection=collection,
                source=source,
                title=title,
                content_hash=content_hash,
                size_bytes=size_bytes,
                metadata=metadata,
            )

    def replace_chunks(
        self,
        document_id: str,
        content_hash: str,
        chunks: Sequence[ChunkRow],
        *,
        collection: str | None = None,
    ) -> None:
        """Make the version ``begin_document`` recorded visible with ``chunks``, ``ready``, in one
        transaction: the document's title and metadata change with its chunks.

        ``content_hash`` must be the version ``begin_document`` recorded (``Conflict`` otherwise).
        """
        with self._db.connection() as conn:
            store_writes.replace_chunks(
                conn,
                document_id,
                document_reads.collection_of(conn, document_id, collection) or "",
                content_hash,
                chunks,
                dimension=self._dimension,
                embedder_name=self._embedder_name,
            )

    def mark_failed(self, document_id: str, reason: str, *, collection: str | None = None) -> None:
        """Mark the document's latest version ``failed`` with ``reason``; what it shows stays."""
        with self._db.connection() as conn:
            found = document_reads.collection_of(conn, document_id, collection)
            marked = found is not None and store_writes.mark_failed(
                conn, document_id, found, reason
            )
        if not marked:
            raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def delete_document(self, document_id: str, *, collection: str | None = None) -> bool:
        """Delete a document and, by cascade in the same statement, its chunks; ``False`` if absent."""
        with self._db.connection() as conn:
            found = document_reads.collection_of(conn, document_id, collection)
            cur = conn.execute(
                "DELETE FROM documents WHERE id = %s AND collection = %s", (document_id, found)
            )
            return cur.rowcount > 0

    def delete_documents_from(
        self, collection: str, source: str, *, keep: Sequence[str]
    ) -> list[str]:
        """Delete the documents read from ``source`` into ``collection`` except those in
        ``keep``, with their chunks; the ids deleted, sorted."""
        with self._db.connection() as conn:
            return store_writes.delete_documents_from(conn, collection, source, keep)

    def document_ids_from(self, collection: str, source: str) -> list[str]:
        """Ids of the documents read from ``source`` into ``collection``."""
        with self._db.connection() as conn:
            return document_reads.document_ids_from(conn, collection, source)

    def get_document(
        self, document_id: str, *, collection: str | None = None
    ) -> DocumentRecord | None:
        """One document, or ``None``."""
        with self._db.connection() as conn:
            found = document_reads.collection_of(conn, document_id, collection)
            return None if found is None else document_reads.get_document(conn, document_id, found)

    def documents_with_id(self, document_id: str) -> list[DocumentRecord]:
        """Every collection's document with ``document_id``, by collection."""
        with self._db.connection() as conn:
            return document_reads.documents_with_id(conn, document_id)

    def list_documents(self, collection: str | None = None) -> list[DocumentRecord]:
        """Documents of one collection (or all), ordered by collection and source."""
        with self._db.connection() as conn:
            return document_reads.list_documents(conn, collection)

    def page_documents(
        self, collection: str | None = None, *, limit: int, after: DocumentKey | None = None
    ) -> DocumentPage:
        """Up to ``limit`` documents of one collection (or all), newest first (by creation,
        then id), starting after ``after``, and the count of all of them.

        The order never changes for a document once it exists, so paging with ``next_after``
        lists every document that existed when the first page was read exactly once, whatever
        is added, updated or re-indexed meanwhile.
        """
        with self._db.connection() as conn:
            return document_reads.page_documents(conn, collection, limit, after)

    def list_collections(self) -> list[str]:
        """Names of the collections that hold at least one document, sorted."""
        with self._db.connection() as conn:
            return document_reads.list_collections(conn)

    def count_chunks(self, collection: str | None = None) -> int:
        """Number of searchable chunks, in one collection or in all."""
        with self._db.connection() as conn:
            return document_reads.count_chunks(conn, collection)

    # ----- search -----------------------------------------------------------------------------

    def search_dense(
        self,
        embedding: Sequence[float] | np.ndarray,
        *,
        k: int,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks nearest to ``embedding``; ``score`` is the cosine similarity.

        Unfiltered searches use the HNSW index. Filtered ones that match few chunks scan those
        exactly; broader ones widen the index search and fall back to an exact scan if the
        filter left fewer than ``k``.
        """
        check_k(k)
        vector = self._vector(embedding, "query embedding")
        if not np.any(vector):
            # Nothing has a cosine similarity to the zero vector.
            return []
        where, params = scope(collection, filters)
        return self._db.search(
            partial(
                search_dense,
                vector=vector,
                k=k,
                scope=where,
                params=params,
                ef_search=self._ef_search,
                exact_search_rows=self._exact_search_rows,
            )
        )

    def search_sparse(
        self,
        tokens: Sequence[str],
        *,
        k: int,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks with the highest BM25 score for ``tokens``; ``score`` is that score.

        IDF and average length come from the searched collection (all chunks when ``None``);
        filters narrow the results without changing those statistics.
        """
        check_k(k)
        counts = _term_counts(tokens)
        if not counts:
            return []
        if filters:
            scope(None, filters)  # bad filters are refused before any connection is taken
        return self._db.search(
            partial(
                search_sparse,
                term_counts=counts,
                k=k,
                collection=collection,
                filters=filters,
                frequent_share=self._frequent_term_share,
                frequent_min_df=self._frequent_term_min_df,
            )
        )

    # ----- internals --------------------------------------------------------------------------

    def _vector(self, embedding: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
        return as_vector(
            embedding, dimension=self._dimension, embedder_name=self._embedder_name, what=what
        )

    def _restore_search_index(self, conn: psycopg.Connection) -> None:
        if search_index.restore_search_index(conn, self._schema):
            log.info("schema %s: built the HNSW index", self._schema)

    def _repair_search_index(self) -> None:
        # A bulk load that was killed leaves the index missing: search is right but slow.
        with self._db.translate_errors(), self._db.direct_in_schema() as conn:
            self._restore_search_index(conn)
