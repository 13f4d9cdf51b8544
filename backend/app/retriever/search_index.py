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

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors, sql

from app.core.logger import get_logger

log = get_logger(__name__)

SEARCH_INDEX = "chunks_embedding"
# pgvector keeps the graph of a build in maintenance_work_mem (a parallel build reserves all of
# it in shared memory before it starts) and is several times slower once the graph outgrows
# it. A graph element holds its vector and its neighbour lists (2m = 32 at the bottom layer):
# about 4 bytes a dimension and 1 kB more; half as much again keeps the estimate safe.
_GRAPH_BYTES_PER_DIMENSION = 4
_GRAPH_BYTES_PER_ELEMENT = 1024
_GRAPH_HEADROOM = 1.5
_BUILD_MEMORY_MB = (64, 1024)


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
    ``search_path`` reaches pgvector's operator classes. The build runs on as many processes
    as the server's ``max_parallel_maintenance_workers`` allows, and on one if the server
    cannot give the parallel build its shared memory.
    """
    valid = search_index_valid(conn, schema)
    if valid:
        return False
    if valid is False:
        # A build that was interrupted leaves an invalid index behind.
        drop_search_index(conn, schema)
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(_build_memory(conn))))
    workers = _maintenance_workers(conn)
    if workers > 0:
        try:
            with _table_workers(conn, schema, workers):
                _create_search_index(conn, schema)
            return True
        except (errors.DiskFull, errors.OutOfMemory) as exc:
            # In a container /dev/shm holds 64 MB unless the compose file gives it more.
            log.warning(
                "schema %s: the parallel HNSW build got no shared memory (%s); building it"
                " on one process",
                schema,
                exc,
            )
            drop_search_index(conn, schema)
    conn.execute("SET max_parallel_maintenance_workers = 0")
    try:
        _create_search_index(conn, schema)
    finally:
        # Back to what the session had, which may not be the server's default.
        conn.execute(
            "SELECT set_config('max_parallel_maintenance_workers', %s, false)", (str(workers),)
        )
    return True


def _create_search_index(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(
        sql.SQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
        ).format(sql.Identifier(SEARCH_INDEX), sql.Identifier(schema, "chunks"))
    )


def _build_memory(conn: psycopg.Connection) -> str:
    """``maintenance_work_mem`` for a graph of the stored vectors, within ``_BUILD_MEMORY_MB``."""
    # The column's declared dimension (its type modifier), and a count that reads no vector.
    row = conn.execute(
        "SELECT (SELECT count(*) FROM chunks), greatest(atttypmod, 0) FROM pg_attribute"
        " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
    ).fetchone()
    rows, dimension = (int(row[0]), int(row[1])) if row else (0, 0)
    element = _GRAPH_BYTES_PER_DIMENSION * dimension + _GRAPH_BYTES_PER_ELEMENT
    megabytes = int(rows * element * _GRAPH_HEADROOM) // (1024 * 1024)
    least, most = _BUILD_MEMORY_MB
    return f"{min(max(megabytes, least), most)}MB"


def _maintenance_workers(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT current_setting('max_parallel_maintenance_workers')").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _table_workers(conn: psycopg.Connection, schema: str, workers: int) -> Iterator[None]:
    """Ask for ``workers`` on builds over the chunks, for the block only.

    PostgreSQL gives an index build parallel workers by the size of the table's heap, and the
    chunks' heap stays small however many vectors it holds (they live in its TOAST table): left
    to itself, every build would run on one process. It is reset afterwards: query plans stay as
    they were.
    """
    table = sql.Identifier(schema, "chunks")
    conn.execute(
        sql.SQL("ALTER TABLE {} SET (parallel_workers = {})").format(table, sql.Literal(workers))
    )
    try:
        yield
    finally:
        conn.execute(sql.SQL("ALTER TABLE {} RESET (parallel_workers)").format(table))


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
