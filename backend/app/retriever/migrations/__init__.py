"""Versioned schema migrations: ``NNNN_name.sql`` files here, applied in order, each once per schema.

``migrate`` runs in the caller's transaction under a database-wide advisory lock, so processes
starting together take turns and the later ones find the work done. Every applied version is
recorded in the schema's ``schema_migrations`` table; running again applies nothing.
A file may use ``{dimension}`` (the vector size); other braces must be doubled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from app.core.errors import DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).parent
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_NAME = "rag.migrate"
# HNSW indexes arrived in pgvector 0.5.0.
_MIN_PGVECTOR = (0, 5, 0)


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """What ``migrate`` did and how later sessions must see the schema."""

    applied: list[int]
    search_path: list[str]
    """The store's schema, then the schema holding pgvector's types and operators."""


def available_migrations() -> list[Migration]:
    """The migration files, oldest first."""
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise RuntimeError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version: {versions}")
    return found


def migrate(conn: psycopg.Connection, *, schema: str, dimension: int) -> MigrationResult:
    """Create pgvector and ``schema`` if missing and apply the migrations it lacks.

    Must run inside a transaction; ``search_path`` stays set for the rest of it.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_LOCK_NAME,))
    vector_schema = _ensure_vector_extension(conn)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    search_path = list(dict.fromkeys([schema, vector_schema]))
    conn.execute(
        sql.SQL("SET LOCAL search_path TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, search_path))
        )
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        text = migration.path.read_text(encoding="utf-8")
        conn.execute(sql.SQL(text).format(dimension=sql.Literal(int(dimension))))
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
            (migration.version, migration.name),
        )
        applied.append(migration.version)
    return MigrationResult(applied=applied, search_path=search_path)


def _ensure_vector_extension(conn: psycopg.Connection) -> str:
    """The schema pgvector is installed in, after installing it if needed."""
    query = (
        "SELECT n.nspname, e.extversion FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    row = conn.execute(query).fetchone()
    if row is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            if conn.broken:
                raise
            raise DatabaseUnavailable(
                "The pgvector extension is not installed on this PostgreSQL server and could not "
                f"be created ({exc.diag.message_primary or exc}). Use the pgvector/pgvector image, "
                "install pgvector, or have a superuser run CREATE EXTENSION vector.",
                code="pgvector_missing",
            ) from None
        row = conn.execute(query).fetchone()
        assert row is not None
    vector_schema, version = row
    if _version_tuple(version) < _MIN_PGVECTOR:
        raise DatabaseUnavailable(
            f"pgvector {version} is too old: HNSW indexes need 0.5.0 or later. "
            "Upgrade pgvector and run ALTER EXTENSION vector UPDATE.",
            code="pgvector_too_old",
        )
    return vector_schema


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
