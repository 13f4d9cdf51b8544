"""What opening a store does in its schema, in one transaction: migrate it, check that the
embedder recorded there is the one in use, and fail the documents a crash left ``indexing``."""

from __future__ import annotations

import psycopg

from app.core.errors import Conflict
from app.core.logger import get_logger
from app.retriever.migrations import migrate

log = get_logger(__name__)

_INTERRUPTED = "interrupted: indexing stopped before it finished; ingest the file again"


def document_lock_name(schema: str, document_id: str) -> str:
    """The advisory lock held while a document of ``schema`` is indexed."""
    return f"rag.document:{schema}:{document_id}"


def prepare_schema(
    conn: psycopg.Connection, *, schema: str, dimension: int, embedder_name: str, where: str
) -> list[str]:
    """Migrate, check the embedder and fail interrupted documents; the ``search_path`` that
    finds the schema's tables and pgvector. ``conn`` is in a transaction."""
    result = migrate(conn, schema=schema, dimension=dimension)
    if result.applied:
        log.info("schema %s: applied migrations %s", schema, result.applied)
    _check_embedder(conn, schema, dimension, embedder_name, where)
    interrupted = _fail_interrupted(conn, schema)
    if interrupted:
        log.warning("marked %d interrupted documents as failed: %s", len(interrupted), interrupted)
    return result.search_path


def _check_embedder(
    conn: psycopg.Connection, schema: str, dimension: int, embedder_name: str, where: str
) -> None:
    row = conn.execute("SELECT embedder, dimension FROM store_info").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO store_info (embedder, dimension) VALUES (%s, %s)",
            (embedder_name, dimension),
        )
        return
    recorded, recorded_dimension = row
    if (recorded, recorded_dimension) != (embedder_name, dimension):
        raise Conflict(
            f"The index in schema {schema!r} at {where} was built with "
            f"embedder {recorded} ({recorded_dimension} dimensions), but this configuration uses "
            f"{embedder_name} ({dimension} dimensions). Switch back to that "
            "embedder, or use another data folder (RAG_DATA_DIR), database or schema and "
            "index the documents again.",
            code="embedder_mismatch",
        )


def _fail_interrupted(conn: psycopg.Connection, schema: str) -> list[str]:
    # A document still "indexing" whose lock nobody holds was abandoned by a crashed or
    # stopped process; one being indexed right now by another process is left alone.
    rows = conn.execute(
        "UPDATE documents SET status = 'failed', error = %s, pending = NULL,"
        " updated_at = now() WHERE status = 'indexing'"
        " AND pg_try_advisory_xact_lock(hashtextextended(%s || id, 0))"
        " RETURNING id",
        (_INTERRUPTED, document_lock_name(schema, "")),
    ).fetchall()
    return [row[0] for row in rows]
