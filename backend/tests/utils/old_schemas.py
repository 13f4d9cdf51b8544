"""Schemas as an earlier version of the store left them, for testing what a migration converts."""

from __future__ import annotations

import psycopg
from psycopg import sql

from app.retriever.migrations import available_migrations


def migrate_before(conn: psycopg.Connection, schema: str, version: int, *, dimension: int) -> None:
    """Create ``schema`` and apply the migrations before ``version`` to it, recorded as the
    migration runner records them; ``conn``'s search path is left on the schema (then pgvector's)."""
    vector_schema = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n"
        " ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL("SET search_path TO {}, {}").format(
            sql.Identifier(schema),
            sql.Identifier(vector_schema[0] if vector_schema else "public"),
        )
    )
    conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in available_migrations():
        if migration.version >= version:
            break
        text = migration.path.read_text(encoding="utf-8")
        conn.execute(sql.SQL(text).format(dimension=sql.Literal(dimension)))
        conn.execute(
            "INSERT INTO schema_migrations VALUES (%s, %s)", (migration.version, migration.name)
        )
