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

Sparse search is Okapi BM25 (k1 1.2, b 0.75) over the search tokens the caller supplies (Kiwi
morphemes and eojeol stems), with the number of chunks, their average length and the document
frequencies of the searched collection (all collections when none is named); filters narrow the
results, not those statistics. It reads only the postings of the query's terms, which carry
their chunk's collection and token count, and statistics that triggers keep up to date as
chunks and postings are written and deleted (``search_sql``, migration 0006). The postings of a
term held by more than 5% of the collection's chunks, and by more than 2,000, are not read: such
a term only adds its part to the best candidates found by the query's other terms (the rule and
what it gives up are in ``search_sql``'s docstring); smaller collections are ranked exactly.

Dense search asks HNSW for ``max(ef_search, 2k)`` candidates (ef_search 40, pgvector's default,
unless configured), in one round trip and no transaction when unfiltered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from app.core.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound
from app.core.logger import get_logger
from app.retriever import store_writes
from app.retriever.database import describe_conninfo
from app.retriever.migrations import migrate

# The BM25 parameters are part of this module's interface.
from app.retriever.search_sql import BM25_B as BM25_B
from app.retriever.search_sql import BM25_K1 as BM25_K1
from app.retriever.search_sql import FREQUENT_MIN_DF, FREQUENT_SHARE, sparse_query
from app.retriever.store_writes import ChunkRow, DocumentWrite, StoredVersion, as_vector
from app.retriever.store_writes import term_counts as _term_counts
from app.retriever.types import DocumentRecord, DocumentStatus, SearchHit

log = get_logger(__name__)

# pgvector's HNSW index holds vectors of at most 2,000 dimensions, and ef_search is capped at 1,000.
MAX_INDEXED_DIMENSION = 2000
_MAX_EF_SEARCH = 1000
DEFAULT_EF_SEARCH = 40
# HNSW is asked for this many times the k it must return (more when a filter keeps only a
# share of its candidates): the k nearest then rarely fall outside its candidate list.
_EF_MARGIN = 2
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INTERRUPTED = "interrupted: indexing stopped before it finished; ingest the file again"
_DOCUMENT_COLUMNS = (
    "id, collection, source, title, content_hash, status, error, chunk_count, size_bytes,"
    " metadata, created_at, updated_at"
)
_FilterValue = str | int | float | bool
# The store and connection of the ``atomic()`` block the current thread or task is in.
_ATOMIC: ContextVar[tuple[PGVectorStore, psycopg.Connection] | None] = ContextVar(
    "rag_store_atomic", default=None
)


class DocumentKey(NamedTuple):
    """A document's place in the list, newest first: its creation time, then its id."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """One page of the document list and how many documents the whole list holds."""

    documents: list[DocumentRecord]
    total: int
    next_after: DocumentKey | None
    """Where the next page starts; ``None`` on the last page."""


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
        self._conninfo = conninfo
        self._where = describe_conninfo(conninfo)
        self._dimension = dimension
        self._embedder_name = embedder_name
        self._schema = schema
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._connect_timeout_s = connect_timeout_s
        self._ef_search = min(max(ef_search, 1), _MAX_EF_SEARCH)
        self._exact_search_rows = max(exact_search_rows, 0)
        self._frequent_term_share = frequent_term_share
        self._frequent_term_min_df = max(frequent_term_min_df, 0)
        self._search_path: list[str] = [schema]
        self._pool: ConnectionPool | None = None

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
        if self._pool is not None:
            return
        with (
            self._translate_errors(),
            self._direct_connection() as conn,
            conn.transaction(),
        ):
            result = migrate(conn, schema=self._schema, dimension=self._dimension)
            self._check_embedder(conn)
            interrupted = self._fail_interrupted(conn)
        self._search_path = result.search_path
        if result.applied:
            log.info("schema %s: applied migrations %s", self._schema, result.applied)
        if interrupted:
            log.warning(
                "marked %d interrupted documents as failed: %s", len(interrupted), interrupted
            )
        pool = ConnectionPool(
            self._conninfo,
            min_size=self._pool_min,
            max_size=self._pool_max,
            kwargs=self._connect_kwargs(),
            configure=self._configure,
            # A connection the server dropped (restart, failover) is found and replaced on
            # checkout, so callers get a working one or, after the timeout, a 503.
            check=ConnectionPool.check_connection,
            timeout=self._connect_timeout_s,
            # While the server is down the pool retries with growing pauses; giving up early
            # keeps those pauses short, and the next request starts a fresh attempt.
            reconnect_timeout=max(self._connect_timeout_s, 2.0),
            name=f"rag-{self._schema}",
            open=False,
        )
        pool.open()
        self._pool = pool
        self._repair_search_index()

    def close(self) -> None:
        """Close the pool; the store can be opened again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers now."""
        with self._connection() as conn:
            conn.execute("SELECT 1")

    @contextmanager
    def document_lock(self, document_id: str) -> Iterator[None]:
        """Hold a PostgreSQL advisory lock on ``document_id``, across processes, for the block.

        The lock lives on a connection of its own, outside the pool, so that a lock holder
        never waits for a pooled connection that another lock holder keeps.
        """
        self._require_open()
        with self._translate_errors():
            conn = self._direct_connection(autocommit=True)
        try:
            with self._translate_errors():
                conn.execute(
                    "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                    (self._lock_name(document_id),),
                )
            yield
        finally:
            # Ending the session releases the lock, even when unlocking would fail.
            conn.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make the store's calls in the block one transaction: committed when the block ends,
        rolled back, every write of it, when it raises. A nested block joins the outer one."""
        if self._shared_connection() is not None:
            yield
            return
        pool = self._require_open()
        with self._translate_errors(), pool.connection() as conn:
            token = _ATOMIC.set((self, conn))
            try:
                yield
            finally:
                _ATOMIC.reset(token)

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Run the block's writes without the HNSW index, and build the index once afterwards.

        For writes large next to what is stored: one build over all rows costs less than
        inserting the new vectors one by one. Concurrent bulk loads share the missing index;
        the last one to finish builds it, and a crash that left it missing is repaired by the
        next ``open()``. Searches go on meanwhile: dense ones scan the chunks instead. Begin it
        outside ``atomic()``: dropping the index waits for open transactions on the chunks.
        """
        if self._shared_connection() is not None:
            raise RuntimeError("bulk_load() must begin outside atomic()")
        self._require_open()
        with self._translate_errors():
            conn = self._index_connection()
        try:
            with self._translate_errors():
                conn.execute(
                    "SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))",
                    (self._bulk_lock_name(),),
                )
                store_writes.drop_search_index(conn, self._schema)
            try:
                yield
            finally:
                with self._translate_errors():
                    conn.execute(
                        "SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))",
                        (self._bulk_lock_name(),),
                    )
                    self._restore_search_index(conn)
        finally:
            conn.close()

    # ----- documents --------------------------------------------------------------------------

    def document_state(self, document_id: str) -> tuple[str, DocumentStatus] | None:
        """``(content_hash, status)`` of the document's latest version, or ``None``."""
        stored = self.document_versions([document_id]).get(document_id)
        return None if stored is None else (stored.content_hash, stored.status)

    def document_versions(self, document_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """Collection, latest version's hash and status of each of the documents that exists."""
        with self._connection() as conn:
            return store_writes.document_versions(conn, document_ids)

    def ensure_collection(self, collection: str) -> None:
        """Create the collection if it is new, committed at once (outside ``atomic()``).

        Writers that create a collection inside their own transaction make every other writer
        to it wait for that transaction; a long bulk load creates it first, on its own.
        """
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO collections (name) VALUES (%s) ON CONFLICT DO NOTHING", (collection,)
            )

    def write_documents(self, documents: Sequence[DocumentWrite]) -> None:
        """Store each document's version with its chunks, ``ready``, all in one transaction.

        Each document's row and chunks change together: readers see its previous version or
        this one, whole. Raises ``Conflict`` (``params["document_id"]``) when an id belongs to
        a document of another collection, ``InvalidInput`` for a chunk that cannot be stored.
        """
        with self._connection() as conn:
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
        new version fails. Raises ``Conflict`` when the id belongs to a document of another
        collection.
        """
        with self._connection() as conn:
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
        self, document_id: str, content_hash: str, chunks: Sequence[ChunkRow]
    ) -> None:
        """Make the version ``begin_document`` recorded visible with ``chunks``, ``ready``, in one
        transaction: the document's title and metadata change with its chunks.

        ``content_hash`` must be the version ``begin_document`` recorded (``Conflict`` otherwise).
        """
        with self._connection() as conn:
            store_writes.replace_chunks(
                conn,
                document_id,
                content_hash,
                chunks,
                dimension=self._dimension,
                embedder_name=self._embedder_name,
            )

    def mark_failed(self, document_id: str, reason: str) -> None:
        """Mark the document's latest version ``failed`` with ``reason``; what it shows stays."""
        with self._connection() as conn:
            found = store_writes.mark_failed(conn, document_id, reason)
        if not found:
            raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def delete_document(self, document_id: str) -> bool:
        """Delete a document and, by cascade in the same statement, its chunks; ``False`` if absent."""
        with self._connection() as conn:
            cur = conn.execute("DELETE FROM documents WHERE id = %s", (document_id,))
            return cur.rowcount > 0

    def delete_documents_from(
        self, collection: str, source: str, *, keep: Sequence[str]
    ) -> list[str]:
        """Delete the documents read from ``source`` into ``collection`` except those in
        ``keep``, with their chunks; the ids deleted, sorted."""
        with self._connection() as conn:
            return store_writes.delete_documents_from(conn, collection, source, keep)

    def document_ids_from(self, collection: str, source: str) -> list[str]:
        """Ids of the documents read from ``source`` into ``collection``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id FROM documents WHERE collection = %s AND source = %s ORDER BY id",
                (collection, source),
            ).fetchall()
        return [row[0] for row in rows]

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """One document, or ``None``."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = %s", (document_id,)
            ).fetchone()
        return None if row is None else DocumentRecord(*row)

    def list_documents(self, collection: str | None = None) -> list[DocumentRecord]:
        """Documents of one collection (or all), ordered by collection and source."""
        query = f"SELECT {_DOCUMENT_COLUMNS} FROM documents"
        params: tuple[Any, ...] = ()
        if collection is not None:
            query += " WHERE collection = %s"
            params = (collection,)
        with self._connection() as conn:
            rows = conn.execute(query + " ORDER BY collection, source, id", params).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def page_documents(
        self, collection: str | None = None, *, limit: int, after: DocumentKey | None = None
    ) -> DocumentPage:
        """Up to ``limit`` documents of one collection (or all), newest first (by creation,
        then id), starting after ``after``, and the count of all of them.

        The order never changes for a document once it exists, so paging with ``next_after``
        lists every document that existed when the first page was read exactly once, whatever
        is added, updated or re-indexed meanwhile.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be a positive whole number, not {limit!r}.")
        scope = sql.SQL("TRUE")
        scope_params: list[Any] = []
        if collection is not None:
            scope = sql.SQL("collection = %s")
            scope_params = [collection]
        position = sql.SQL("TRUE")
        position_params: list[Any] = []
        if after is not None:
            position = sql.SQL("(created_at, id) < (%s, %s)")
            position_params = [after.created_at, after.id]
        # One row past the page says whether another page follows.
        query = sql.SQL(
            "SELECT {columns} FROM documents WHERE {scope} AND {position}"
            " ORDER BY created_at DESC, id DESC LIMIT %s"
        ).format(columns=sql.SQL(_DOCUMENT_COLUMNS), scope=scope, position=position)
        with self._connection() as conn:
            rows = conn.execute(query, [*scope_params, *position_params, limit + 1]).fetchall()
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM documents WHERE {}").format(scope), scope_params
            ).fetchone()
        documents = [DocumentRecord(*row) for row in rows[:limit]]
        last = documents[-1] if len(rows) > limit else None
        return DocumentPage(
            documents=documents,
            total=int(count[0]) if count else 0,
            next_after=DocumentKey(last.created_at, last.id) if last else None,
        )

    def list_collections(self) -> list[str]:
        """Names of the collections that hold at least one document, sorted."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT name FROM collections c"
                " WHERE EXISTS (SELECT 1 FROM documents d WHERE d.collection = c.name)"
                " ORDER BY name"
            ).fetchall()
        return [row[0] for row in rows]

    def count_chunks(self, collection: str | None = None) -> int:
        """Number of searchable chunks, in one collection or in all."""
        query = "SELECT count(*) FROM chunks"
        params: tuple[Any, ...] = ()
        if collection is not None:
            query += " WHERE collection = %s"
            params = (collection,)
        with self._connection() as conn:
            row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

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
        _check_k(k)
        vector = self._vector(embedding, "query embedding")
        if not np.any(vector):
            # Nothing has a cosine similarity to the zero vector.
            return []
        scope, params = _scope(collection, filters)
        with self._search_connection() as conn:
            if scope is None:
                ef = min(max(self._ef_search, _EF_MARGIN * k), _MAX_EF_SEARCH)
                # The setting and the query go out together: one round trip, no transaction.
                with conn.pipeline():
                    conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
                    hits = self._dense_query(conn, vector, k, None, [])
                if len(hits) < k:
                    with conn.transaction():
                        hits = self._dense_exact(conn, vector, k, None, [])
                return hits
            with conn.transaction():
                matching = self._count_matching(conn, scope, params, self._exact_search_rows + 1)
                if matching <= self._exact_search_rows:
                    return self._dense_exact(conn, vector, k, scope, params)
                total = max(self._estimated_chunks(conn), matching)
                ef = math.ceil(_EF_MARGIN * k * total / matching)
                ef = min(max(self._ef_search, ef), _MAX_EF_SEARCH)
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
                hits = self._dense_query(conn, vector, k, scope, params)
                if len(hits) < k:
                    hits = self._dense_exact(conn, vector, k, scope, params)
        return hits

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
        _check_k(k)
        counts = _term_counts(tokens)
        if not counts:
            return []
        metadata_filter, filter_params = (
            _metadata_filter(filters, sql.SQL("c.metadata")) if filters else (None, [])
        )
        query, params = sparse_query(
            list(counts),
            list(counts.values()),
            k=k,
            collection=collection,
            metadata_filter=metadata_filter,
            filter_params=filter_params,
            frequent_share=self._frequent_term_share,
            frequent_min_df=self._frequent_term_min_df,
        )
        with self._search_connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_hit(row) for row in rows]

    # ----- internals --------------------------------------------------------------------------

    def _dense_query(
        self,
        conn: psycopg.Connection,
        vector: np.ndarray,
        k: int,
        scope: sql.Composable | None,
        params: list[Any],
    ) -> list[SearchHit]:
        # Zero-length stored vectors have no cosine distance (NaN); they are never a match.
        query = sql.SQL(
            "SELECT c.id, c.document_id, c.text, c.metadata, 1 - (c.embedding <=> %s) AS score"
            " FROM chunks c WHERE {scope} AND (c.embedding <=> %s) <> 'NaN'::float8"
            " ORDER BY c.embedding <=> %s LIMIT %s"
        ).format(scope=scope if scope is not None else sql.SQL("TRUE"))
        rows = conn.execute(query, [vector, *params, vector, vector, k]).fetchall()
        return [_hit(row) for row in rows]

    def _dense_exact(
        self,
        conn: psycopg.Connection,
        vector: np.ndarray,
        k: int,
        scope: sql.Composable | None,
        params: list[Any],
    ) -> list[SearchHit]:
        # Without index scans the planner cannot use HNSW, whose candidate list could hold
        # fewer than k matches: every chunk in scope is compared.
        # The setting ends with the transaction, which ends with this search.
        conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        return self._dense_query(conn, vector, k, scope, params)

    @staticmethod
    def _count_matching(
        conn: psycopg.Connection, scope: sql.Composable, params: list[Any], cap: int
    ) -> int:
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE {} LIMIT %s) s").format(
            scope
        )
        row = conn.execute(query, [*params, cap]).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _estimated_chunks(conn: psycopg.Connection) -> int:
        # The planner's row estimate: free to read, and a ratio needs no more precision.
        row = conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass"
        ).fetchone()
        return int(row[0]) if row else 0

    def _vector(self, embedding: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
        return as_vector(
            embedding, dimension=self._dimension, embedder_name=self._embedder_name, what=what
        )

    def _check_embedder(self, conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT embedder, dimension FROM store_info").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO store_info (embedder, dimension) VALUES (%s, %s)",
                (self._embedder_name, self._dimension),
            )
            return
        embedder, dimension = row
        if (embedder, dimension) != (self._embedder_name, self._dimension):
            raise Conflict(
                f"The index in schema {self._schema!r} at {self._where} was built with "
                f"embedder {embedder} ({dimension} dimensions), but this configuration uses "
                f"{self._embedder_name} ({self._dimension} dimensions). Switch back to that "
                "embedder, or use another data folder (RAG_DATA_DIR), database or schema and "
                "index the documents again.",
                code="embedder_mismatch",
            )

    def _fail_interrupted(self, conn: psycopg.Connection) -> list[str]:
        # A document still "indexing" whose lock nobody holds was abandoned by a crashed or
        # stopped process; one being indexed right now by another process is left alone.
        rows = conn.execute(
            "UPDATE documents SET status = 'failed', error = %s, pending = NULL,"
            " updated_at = now() WHERE status = 'indexing'"
            " AND pg_try_advisory_xact_lock(hashtextextended(%s || id, 0))"
            " RETURNING id",
            (_INTERRUPTED, self._lock_name("")),
        ).fetchall()
        return [row[0] for row in rows]

    def _lock_name(self, document_id: str) -> str:
        return f"rag.document:{self._schema}:{document_id}"

    def _bulk_lock_name(self) -> str:
        # Held shared by every bulk load of the schema, exclusively by whoever builds the index.
        return f"rag.bulk-load:{self._schema}"

    def _index_connection(self) -> psycopg.Connection[TupleRow]:
        """An autocommit connection of its own (index DDL cannot run in a transaction) that
        finds pgvector's operator classes."""
        conn = self._direct_connection(autocommit=True)
        conn.execute(
            sql.SQL("SET search_path TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, self._search_path))
            )
        )
        return conn

    def _restore_search_index(self, conn: psycopg.Connection) -> None:
        """Build the HNSW index if it is missing, unless a bulk load is under way (its end
        builds it)."""
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self._bulk_lock_name(),)
        ).fetchone()
        if not (row and row[0]):
            return
        try:
            if store_writes.build_search_index(conn, self._schema):
                log.info("schema %s: built the HNSW index", self._schema)
        finally:
            conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self._bulk_lock_name(),)
            )

    def _repair_search_index(self) -> None:
        # A bulk load that was killed leaves the index missing: search is right but slow.
        with self._translate_errors(), self._index_connection() as conn:
            self._restore_search_index(conn)

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, self._search_path))
            )
        )
        register_vector(conn)
        conn.commit()

    def _connect_kwargs(self) -> dict[str, Any]:
        # libpq takes whole seconds and treats anything under 2 as 2.
        return {
            "connect_timeout": max(2, math.ceil(self._connect_timeout_s)),
            "application_name": "rag",
        }

    def _direct_connection(self, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self._conninfo, autocommit=autocommit, **self._connect_kwargs())

    def _require_open(self) -> ConnectionPool:
        if self._pool is None:
            raise DatabaseUnavailable("The vector store is not open.")
        return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        shared = self._shared_connection()
        if shared is not None:
            with self._translate_errors():
                yield shared
            return
        pool = self._require_open()
        with self._translate_errors(), pool.connection() as conn:
            yield conn

    @contextmanager
    def _search_connection(self) -> Iterator[psycopg.Connection]:
        """A connection for reading: outside ``atomic()`` a pooled one in autocommit, so that a
        search of one statement costs no BEGIN and COMMIT (several statements that must see
        one snapshot, or transaction-local settings, open ``conn.transaction()``)."""
        shared = self._shared_connection()
        if shared is not None:
            with self._translate_errors():
                yield shared
            return
        pool = self._require_open()
        with self._translate_errors(), pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                # Writers rely on the pool's connections opening transactions.
                if not conn.closed:
                    conn.autocommit = False

    def _shared_connection(self) -> psycopg.Connection | None:
        current = _ATOMIC.get()
        return current[1] if current is not None and current[0] is self else None

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except (PoolTimeout, PoolClosed):
            raise DatabaseUnavailable(
                f"No database connection to {self._where} within {self._connect_timeout_s:g} s; "
                "is PostgreSQL running?"
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"The database at {self._where} failed: {detail}") from exc


def _hit(row: tuple[Any, ...]) -> SearchHit:
    chunk_id, document_id, text, metadata, score = row
    return SearchHit(
        document_id=document_id,
        chunk_id=str(chunk_id),
        text=text,
        score=float(score),
        metadata=metadata,
    )


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive whole number, not {k!r}.")


def _scope(
    collection: str | None, filters: dict[str, Any] | None
) -> tuple[sql.Composable | None, list[Any]]:
    """The WHERE condition on ``chunks c`` for a collection and metadata filters; ``None``: all."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if collection is not None:
        clauses.append(sql.SQL("c.collection = %s"))
        params.append(collection)
    if filters:
        clause, filter_params = _metadata_filter(filters, sql.SQL("c.metadata"))
        clauses.append(clause)
        params += filter_params
    if not clauses:
        return None, []
    return sql.SQL(" AND ").join(clauses), params


def _metadata_filter(
    filters: dict[str, Any] | None, column: sql.Composable
) -> tuple[sql.Composable, list[Any]]:
    """Equality on each key (a list means any of its values), as indexable JSON containment."""
    if not filters:
        return sql.SQL("TRUE"), []
    if not isinstance(filters, dict):
        raise InvalidInput("Filters must be an object of metadata keys and values.")
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput("Filter keys must be non-empty strings.")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise InvalidInput(f"The filter on {key!r} lists no values.")
        for item in values:
            if not isinstance(item, _FilterValue) or (
                isinstance(item, float) and not math.isfinite(item)
            ):
                raise InvalidInput(
                    f"The filter on {key!r} must be a string, number or boolean, or a list of "
                    f"them; got {item!r}."
                )
        containment = sql.SQL("{} @> %s").format(column)
        clauses.append(sql.SQL("({})").format(sql.SQL(" OR ").join([containment] * len(values))))
        params += [Jsonb({key: item}) for item in values]
    return sql.SQL(" AND ").join(clauses), params
