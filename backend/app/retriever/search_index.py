"""The HNSW index over the chunks' vectors, dropped for a bulk load and built once after it.

Inserting a vector into the HNSW index costs milliseconds and grows with the index, while
building the index over stored rows costs a fraction of that per row. A large write therefore
runs without the index (``drop_search_index``) and builds it once afterwards
(``build_search_index``), both CONCURRENTLY, so that neither readers nor other writers wait.
While the index is missing, dense search scans the chunks: slower, never wrong.

Both functions need an autocommit connection of their own: index DDL CONCURRENTLY cannot run
in a transaction.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SEARCH_INDEX = "chunks_embedding"
# An HNSW build is several times slower once its graph outgrows maintenance_work_mem (about
# 3.5 kB per 768-dimensional vector); pgvector takes only what the graph needs, and this
# covers a few hundred thousand such vectors.
_INDEX_BUILD_MEMORY = "1GB"


def search_index_valid(conn: psycopg.Connection, schema: str) -> bool | None:
    """Whether the HNSW index is usable; ``None`` when there is none."""
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (f"{schema}.{SEARCH_INDEX}",),
    ).fetchone()
    return None if row is None else bool(row[0])


def drop_search_index(conn: psycopg.Connection, schema: str) -> None:
    """Drop the HNSW index, waiting for the searches that use it but blocking none."""
    if search_index_valid(conn, schema) is not None:
        conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(schema, SEARCH_INDEX)
            )
        )


def build_search_index(conn: psycopg.Connection, schema: str) -> bool:
    """Build the HNSW index unless a valid one exists; whether it built one.

    Neither searches nor writes wait for the build. ``conn`` is in autocommit mode and its
    ``search_path`` reaches pgvector's operator classes.
    """
    valid = search_index_valid(conn, schema)
    if valid:
        return False
    if valid is False:
        # A build that was interrupted leaves an invalid index behind.
        drop_search_index(conn, schema)
    conn.execute(f"SET maintenance_work_mem = '{_INDEX_BUILD_MEMORY}'")
    conn.execute(
        sql.SQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
        ).format(sql.Identifier(SEARCH_INDEX), sql.Identifier(schema, "chunks"))
    )
    return True


def bulk_lock_name(schema: str) -> str:
    """The advisory lock every bulk load of ``schema`` holds shared, and whoever builds its index
    holds exclusively."""
    return f"rag.bulk-load:{schema}"


def restore_search_index(conn: psycopg.Connection, schema: str) -> bool:
    """Build the HNSW index if it is missing, unless a bulk load is under way (its end builds
    it); whether it built one."""
    lock = bulk_lock_name(schema)
    row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (lock,)).fetchone()
    if not (row and row[0]):
        return False
    try:
        return build_search_index(conn, schema)
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock,))
