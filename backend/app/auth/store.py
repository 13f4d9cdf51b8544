"""API keys in PostgreSQL (``api_keys``, migration ``0010``), so that the CLI can add and revoke
keys while the server runs and every server and worker on the database sees the same keys.

The two reads the authenticator makes (is some key active; this key's row) run on connections
kept open: a loopback server without keys asks the first on every request, and a connection of
its own would cost more than the search it guards. Writes and listings, the CLI's calls, open a
short connection each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from app.auth.keys import hash_secret, new_key
from app.auth.roles import Role
from app.core.errors import InvalidInput
from app.retriever.connections import KeptConnections, ShortConnections
from app.text import request_text_problem

MAX_NAME_CHARS = 100
MAX_GRANTS = 100


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key, without anything that would let one use it."""

    id: str
    name: str
    role: Role
    collections: tuple[str, ...] | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A stored key and the hash its secret is checked against."""

    record: KeyRecord
    secret_hash: str


_COLUMNS = "id, name, role, collections, created_at, revoked_at"


def _record(row: Sequence[object]) -> KeyRecord:
    key_id, name, role, collections, created_at, revoked_at = row
    grants = tuple(collections) if collections is not None else None  # type: ignore[arg-type]
    return KeyRecord(key_id, name, Role[role], grants, created_at, revoked_at)  # type: ignore[arg-type,index]


class KeyStore:
    """Rows of ``api_keys`` in ``schema`` (created by the store's migrations)."""

    def __init__(self, conninfo: str, schema: str, *, connect_timeout_s: float = 5.0) -> None:
        # Named, so that an operator tells them from the store's pool in pg_stat_activity.
        named = {"connect_timeout_s": connect_timeout_s, "application_name": "rag-keys"}
        self._connections = ShortConnections(conninfo, **named)
        self._reads = KeptConnections(conninfo, **named)
        self._table = sql.Identifier(schema, "api_keys")

    def close(self) -> None:
        """Close the connections kept for reads; a later read opens them again."""
        self._reads.close()

    def create(
        self, role: Role, *, name: str | None = None, collections: Sequence[str] | None = None
    ) -> tuple[KeyRecord, str]:
        """Store a new key; its record and its text (shown once, never stored)."""
        grants = _grants(collections)
        key, text = new_key()
        name = name if name is not None else f"{role.name}-{key.id[:4]}"
        if (problem := request_text_problem(name)) is not None or len(name) > MAX_NAME_CHARS:
            raise InvalidInput(f"The key name {problem or 'is too long'}.")
        query = sql.SQL(
            "INSERT INTO {} (id, name, role, collections, secret_hash)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING " + _COLUMNS
        ).format(self._table)
        params = (key.id, name, role.name, grants, hash_secret(key.secret))
        with self._connections.connect() as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return _record(row), text

    def list(self) -> list[KeyRecord]:
        """Every key, revoked ones included, oldest first."""
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {} ORDER BY created_at, id").format(
            self._table
        )
        with self._connections.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def active(self, key_id: str) -> StoredKey | None:
        """The key ``key_id`` unless it is unknown or revoked."""
        query = sql.SQL(
            "SELECT " + _COLUMNS + ", secret_hash FROM {} WHERE id = %s AND revoked_at IS NULL"
        ).format(self._table)
        row = self._reads.read(lambda conn: conn.execute(query, (key_id,)).fetchone())
        return None if row is None else StoredKey(_record(row[:-1]), row[-1])

    def any_active(self) -> bool:
        """Whether any key can be used: then every API request needs one."""
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE revoked_at IS NULL)").format(
            self._table
        )
        row = self._reads.read(lambda conn: conn.execute(query).fetchone())
        return bool(row and row[0])

    def revoke(self, key_id: str) -> bool:
        """Revoke ``key_id``; whether an active key of that id existed."""
        query = sql.SQL(
            "UPDATE {} SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
        ).format(self._table)
        with self._connections.connect() as conn:
            return conn.execute(query, (key_id,)).rowcount > 0


def _grants(collections: Sequence[str] | None) -> list[str] | None:
    """The collections a key may use, checked and without repeats; None for all."""
    if collections is None:
        return None
    grants = list(dict.fromkeys(c.strip() for c in collections if c.strip()))
    if not grants:
        raise InvalidInput("Name at least one collection, or none for every collection.")
    if len(grants) > MAX_GRANTS:
        raise InvalidInput(f"A key may name at most {MAX_GRANTS} collections.")
    for collection in grants:
        problem = request_text_problem(collection)
        if problem is not None or len(collection) > 100:
            raise InvalidInput(f"The collection name {problem or 'is too long'}.")
    return grants
