"""Dense search: the chunks nearest to a vector by cosine distance, through pgvector's HNSW index.

HNSW is asked for ``max(ef_search, 2k)`` candidates. Each pooled connection starts with the
store's ``ef_search`` as its session setting, so the common search (unfiltered, ``2k`` within
it) is one statement in autocommit: one round trip. A search that needs more candidates sets
them for its own transaction. Filtered searches that match few chunks compare those exactly;
broader ones widen the index search in proportion to what the filter keeps and fall back to an
exact scan if the filter left fewer than ``k`` of the index's candidates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from app.retriever.search_scope import hit_from_row
from app.retriever.types import SearchHit

# pgvector caps ef_search at 1,000; 40 is its default.
MAX_EF_SEARCH = 1000
DEFAULT_EF_SEARCH = 40
# HNSW is asked for this many times the k it must return (more when a filter keeps only a
# share of its candidates): the k nearest then rarely fall outside its candidate list.
_EF_MARGIN = 2


def session_setup(conn: psycopg.Connection, ef_search: int) -> None:
    """Give a new connection the store's ``ef_search`` for the whole session."""
    conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))


def search_dense(
    conn: psycopg.Connection,
    vector: np.ndarray,
    k: int,
    scope: sql.Composable | None,
    params: list[Any],
    *,
    ef_search: int,
    exact_search_rows: int,
) -> list[SearchHit]:
    """The ``k`` chunks in ``scope`` nearest to ``vector``; ``score`` is the cosine similarity.

    ``conn`` is in autocommit with ``session_setup(conn, ef_search)`` done; ``scope`` is a
    condition on ``chunks c`` (``None``: all chunks).
    """
    if scope is None:
        ef = min(max(ef_search, _EF_MARGIN * k), MAX_EF_SEARCH)
        if ef == ef_search:
            hits = _nearest(conn, vector, k, None, [])
        else:
            # Pipelined: BEGIN, the setting and the query go out together.
            with conn.pipeline(), conn.transaction():
                _local_ef_search(conn, ef)
                hits = _nearest(conn, vector, k, None, [])
        if len(hits) < k:
            with conn.transaction():
                hits = _exact(conn, vector, k, None, [])
        return hits
    with conn.transaction():
        matching = _count_matching(conn, scope, params, exact_search_rows + 1)
        if matching <= exact_search_rows:
            return _exact(conn, vector, k, scope, params)
        total = max(_estimated_chunks(conn), matching)
        ef = math.ceil(_EF_MARGIN * k * total / matching)
        _local_ef_search(conn, min(max(ef_search, ef), MAX_EF_SEARCH))
        hits = _nearest(conn, vector, k, scope, params)
        if len(hits) < k:
            hits = _exact(conn, vector, k, scope, params)
    return hits


def _local_ef_search(conn: psycopg.Connection, ef: int) -> None:
    # Local to the transaction: the session keeps the store's value.
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))


def _nearest(
    conn: psycopg.Connection,
    vector: np.ndarray,
    k: int,
    scope: sql.Composable | None,
    params: list[Any],
) -> list[SearchHit]:
    # The distance is computed once per row (each computation reads the row's vector from its
    # TOAST table), from the query vector sent once, in binary. Zero-length stored vectors
    # have no cosine distance (NaN), which sorts after every number: they are never a match,
    # and dropping them after the LIMIT leaves out no chunk that has a distance.
    query = sql.SQL(
        "SELECT id, document_id, text, metadata, 1 - distance AS score FROM ("
        " SELECT c.id, c.document_id, c.text, c.metadata, c.embedding <=> %b AS distance"
        " FROM chunks c WHERE {scope} ORDER BY distance LIMIT %s"
        ") nearest WHERE distance <> 'NaN'::float8"
    ).format(scope=scope if scope is not None else sql.SQL("TRUE"))
    rows = conn.execute(query, [vector, *params, k]).fetchall()
    return [hit_from_row(row) for row in rows]


def _exact(
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
    return _nearest(conn, vector, k, scope, params)


def _count_matching(
    conn: psycopg.Connection, scope: sql.Composable, params: list[Any], cap: int
) -> int:
    query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE {} LIMIT %s) s").format(
        scope
    )
    row = conn.execute(query, [*params, cap]).fetchone()
    return int(row[0]) if row else 0


def _estimated_chunks(conn: psycopg.Connection) -> int:
    # The planner's row estimate: free to read, and a ratio needs no more precision.
    row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass").fetchone()
    return int(row[0]) if row else 0
