"""Documents and chunks in PostgreSQL + pgvector, with dense (HNSW, cosine) and sparse (BM25) search.

Everything lives in one schema (``rag`` by default), created and migrated by ``open()``; the
embedder that filled it is recorded there, and opening it with another one is refused. Each
pooled connection has its ``search_path`` set to that schema, so the SQL below names tables
plainly.

A document is written in two steps under the caller's ``document_lock``: ``begin_document``
records the new version (status ``indexing``), ``replace_chunks`` swaps all its chunks in one
transaction (COPY, never row by row) and marks it ``ready``. Inside ``atomic()`` the writes of
several documents share one transaction instead, so that a file of many documents (a
``.jsonl``) is stored whole or not at all. Search only ever sees chunks of a
version that finished indexing: until that commit the previous chunks stay in place and
searchable, a crash leaves them untouched (the next ``open()`` marks the unfinished document
``failed``), and so does a version that failed.

Sparse search is Okapi BM25 over the search tokens the caller supplies (Kiwi morphemes), with
document frequencies and the average length taken from the searched collection.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from app.core.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound
from app.core.logger import get_logger
from app.retriever.database import describe_conninfo
from app.retriever.migrations import migrate
from app.retriever.types import DocumentRecord, DocumentStatus, SearchHit

log = get_logger(__name__)

BM25_K1 = 1.2
BM25_B = 0.75
# pgvector's HNSW index holds vectors of at most 2,000 dimensions, and ef_search is capped at 1,000.
MAX_INDEXED_DIMENSION = 2000
_MAX_EF_SEARCH = 1000
# A filtered index scan keeps only the matching share of its ef_search candidates; ask for
# this many times the expected need so that k usually survive the filter.
_EF_MARGIN = 2.0
# Btree entries have a size limit; longer tokens (long URLs) are compared on their start.
MAX_TERM_CHARS = 200
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


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One chunk to store: its text, BM25 tokens, vector and chunk-level metadata."""

    ordinal: int
    text: str
    tokens: list[str]
    embedding: Sequence[float] | np.ndarray
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _PreparedChunk:
    """A ``ChunkRow`` checked and shaped for COPY."""

    ordinal: int
    text: str
    metadata: dict[str, Any]
    vector: np.ndarray
    term_counts: Counter[str]
    token_count: int


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
        ef_search: int = 100,
        exact_search_rows: int = 20_000,
    ) -> None:
        """``exact_search_rows``: a filtered dense search matching at most this many chunks is
        answered exactly, by scanning them, instead of through the HNSW index."""
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

    # ----- documents --------------------------------------------------------------------------

    def document_state(self, document_id: str) -> tuple[str, DocumentStatus] | None:
        """``(content_hash, status)`` of the document's latest version, or ``None``."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT content_hash, status FROM documents WHERE id = %s", (document_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

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

        An existing document keeps its chunks (and stays searchable) until ``replace_chunks``.
        Raises ``Conflict`` when the id belongs to a document of another collection.
        """
        if not document_id or not collection:
            raise InvalidInput("A document needs an id and a collection.")
        if size_bytes < 0:
            raise InvalidInput("size_bytes must not be negative.")
        meta = _json_object(metadata, "document metadata")
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO collections (name) VALUES (%s) ON CONFLICT DO NOTHING", (collection,)
            )
            row = conn.execute(
                "INSERT INTO documents"
                " (id, collection, source, title, content_hash, size_bytes, metadata, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 'indexing')"
                " ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source,"
                " title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,"
                " size_bytes = EXCLUDED.size_bytes, metadata = EXCLUDED.metadata,"
                " status = 'indexing', error = NULL, updated_at = now()"
                " WHERE documents.collection = EXCLUDED.collection"
                " RETURNING id",
                (document_id, collection, source, title, content_hash, size_bytes, Jsonb(meta)),
            ).fetchone()
            if row is None:
                other = conn.execute(
                    "SELECT collection FROM documents WHERE id = %s", (document_id,)
                ).fetchone()
                raise Conflict(
                    f"Document {document_id!r} already exists in collection "
                    f"{other[0] if other else '?'!r}, not {collection!r}; delete it there first "
                    "or give this one another id.",
                    code="document_in_other_collection",
                )

    def replace_chunks(
        self, document_id: str, content_hash: str, chunks: Sequence[ChunkRow]
    ) -> None:
        """Swap the document's chunks for ``chunks`` and mark it ``ready``, all in one transaction.

        ``content_hash`` must be the version ``begin_document`` recorded (``Conflict`` otherwise).
        """
        prepared = [self._prepare_chunk(chunk) for chunk in chunks]
        ordinals = [row.ordinal for row in prepared]
        if len(set(ordinals)) != len(ordinals):
            raise InvalidInput(f"Chunks of {document_id!r} repeat an ordinal.")
        with self._connection() as conn:
            doc = conn.execute(
                "SELECT collection, source, title, metadata, content_hash FROM documents"
                " WHERE id = %s FOR UPDATE",
                (document_id,),
            ).fetchone()
            if doc is None:
                raise NotFound(
                    f"No document with id {document_id!r}; call begin_document first.",
                    code="document_not_found",
                )
            collection, source, title, doc_meta, current_hash = doc
            if current_hash != content_hash:
                raise Conflict(
                    f"Document {document_id!r} moved on to another version while this one was "
                    "being indexed; its chunks were not replaced.",
                    code="document_version_changed",
                )
            conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('chunks', 'id'))"
                    " FROM generate_series(1, %s)",
                    (len(prepared),),
                )
            ]
            fixed = {"source": source, "title": title, "collection": collection}
            with conn.cursor() as cur:
                with cur.copy(
                    "COPY chunks (id, document_id, collection, ordinal, text, metadata,"
                    " token_count, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        ["int8", "text", "text", "int4", "text", "jsonb", "int4", "vector"]
                    )
                    for chunk_id, row in zip(ids, prepared, strict=True):
                        copy.write_row(
                            [
                                chunk_id,
                                document_id,
                                collection,
                                row.ordinal,
                                row.text,
                                Jsonb({**doc_meta, **row.metadata, **fixed}),
                                row.token_count,
                                row.vector,
                            ]
                        )
                with cur.copy(
                    "COPY chunk_terms (term, chunk_id, tf) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "int8", "int4"])
                    for chunk_id, row in zip(ids, prepared, strict=True):
                        for term, tf in row.term_counts.items():
                            copy.write_row((term, chunk_id, tf))
            conn.execute(
                "UPDATE documents SET status = 'ready', error = NULL, chunk_count = %s,"
                " updated_at = now() WHERE id = %s",
                (len(prepared), document_id),
            )

    def mark_failed(self, document_id: str, reason: str) -> None:
        """Mark the document's latest version ``failed`` with ``reason``; its stored chunks stay."""
        with self._connection() as conn:
            row = conn.execute(
                "UPDATE documents SET status = 'failed', error = %s, updated_at = now()"
                " WHERE id = %s RETURNING id",
                (reason, document_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def delete_document(self, document_id: str) -> bool:
        """Delete a document and, by cascade in the same statement, its chunks; ``False`` if absent."""
        with self._connection() as conn:
            cur = conn.execute("DELETE FROM documents WHERE id = %s", (document_id,))
            return cur.rowcount > 0

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
        with self._connection() as conn:
            if scope is None:
                ef = max(self._ef_search, k)
            else:
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
        terms = list(counts)
        in_collection = sql.SQL("TRUE")
        scope_params: list[Any] = []
        if collection is not None:
            in_collection = sql.SQL("c.collection = %s")
            scope_params = [collection]
        metadata_filter, filter_params = _metadata_filter(filters, sql.SQL("p.metadata"))
        query = sql.SQL(
            """
            WITH query (term, qtf) AS (SELECT * FROM unnest(%s::text[], %s::int[])),
            stats AS (
                SELECT count(*)::float8 AS n, avg(c.token_count)::float8 AS avgdl
                FROM chunks c WHERE {in_collection}
            ),
            postings AS (
                SELECT t.term, t.chunk_id, t.tf, c.token_count{metadata_column}
                FROM chunk_terms t JOIN chunks c ON c.id = t.chunk_id
                WHERE t.term = ANY(%s::text[]) AND {in_collection}
            ),
            df AS (SELECT term, count(*)::float8 AS df FROM postings GROUP BY term),
            top AS (
                SELECT p.chunk_id,
                       sum(q.qtf * ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5))
                           * p.tf * (%s + 1)
                           / (p.tf + %s * (1 - %s + %s * p.token_count / s.avgdl))) AS score
                FROM postings p JOIN query q USING (term) JOIN df d USING (term) CROSS JOIN stats s
                WHERE {metadata_filter}
                GROUP BY p.chunk_id
                ORDER BY score DESC, p.chunk_id
                LIMIT %s
            )
            SELECT c.id, c.document_id, c.text, c.metadata, top.score
            FROM top JOIN chunks c ON c.id = top.chunk_id
            ORDER BY top.score DESC, c.id
            """
        ).format(
            in_collection=in_collection,
            metadata_column=sql.SQL(", c.metadata" if filters else ""),
            metadata_filter=metadata_filter,
        )
        params = [
            terms,
            list(counts.values()),
            *scope_params,
            terms,
            *scope_params,
            BM25_K1,
            BM25_K1,
            BM25_B,
            BM25_B,
            *filter_params,
            k,
        ]
        with self._connection() as conn:
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

    def _prepare_chunk(self, chunk: ChunkRow) -> _PreparedChunk:
        counts = _term_counts(chunk.tokens)
        return _PreparedChunk(
            ordinal=chunk.ordinal,
            text=chunk.text,
            metadata=_json_object(chunk.metadata, "chunk metadata"),
            vector=self._vector(chunk.embedding, f"embedding of chunk {chunk.ordinal}"),
            term_counts=counts,
            token_count=sum(counts.values()),
        )

    def _vector(self, embedding: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != (self._dimension,):
            raise InvalidInput(
                f"The {what} has shape {vector.shape}; this index holds vectors of "
                f"{self._dimension} dimensions ({self._embedder_name})."
            )
        if not np.all(np.isfinite(vector)):
            raise InvalidInput(f"The {what} contains NaN or infinite values.")
        return vector

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
            "UPDATE documents SET status = 'failed', error = %s, updated_at = now()"
            " WHERE status = 'indexing'"
            " AND pg_try_advisory_xact_lock(hashtextextended(%s || id, 0))"
            " RETURNING id",
            (_INTERRUPTED, self._lock_name("")),
        ).fetchall()
        return [row[0] for row in rows]

    def _lock_name(self, document_id: str) -> str:
        return f"rag.document:{self._schema}:{document_id}"

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


def _term_counts(tokens: Sequence[str]) -> Counter[str]:
    return Counter(token[:MAX_TERM_CHARS] for token in tokens if token)


def _json_object(value: dict[str, Any], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"The {what} must be a JSON object.")
    try:
        # Round-tripping turns tuples into lists and rejects what JSON cannot hold.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"The {what} must be plain JSON: {exc}") from None


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
