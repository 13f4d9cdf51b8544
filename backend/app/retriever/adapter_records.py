"""The LoRA adapters loaded through the API, kept in the store's schema so they outlive a restart.

One row per adapter in ``served_adapters`` (migration ``0007``). Loading and unloading adapters is
rare, so each call opens its own short connection instead of taking one from the store's pool.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from app.core.errors import DatabaseUnavailable
from app.retriever.database import describe_conninfo


@dataclass(frozen=True, slots=True)
class AdapterRecord:
    """An adapter to load at start: its name, folder and the base it was loaded on."""

    name: str
    path: str
    base_model: str
    loaded_at: datetime


class AdapterRecords:
    """Rows of ``served_adapters`` in ``schema`` (created by the store's migrations)."""

    def __init__(self, conninfo: str, schema: str, *, connect_timeout_s: float = 5.0) -> None:
        self._conninfo = conninfo
        self._where = describe_conninfo(conninfo)
        self._table = sql.Identifier(schema, "served_adapters")
        # libpq takes whole seconds and treats anything under 2 as 2.
        self._connect_timeout = max(2, math.ceil(connect_timeout_s))

    def stored(self) -> list[AdapterRecord]:
        """Every stored adapter, oldest first."""
        query = sql.SQL(
            "SELECT name, path, base_model, loaded_at FROM {} ORDER BY loaded_at, name"
        ).format(self._table)
        with self._connection() as conn:
            return [AdapterRecord(*row) for row in conn.execute(query)]

    def save(self, name: str, path: str, base_model: str) -> None:
        """Store adapter ``name`` (replacing a row of that name)."""
        query = sql.SQL(
            "INSERT INTO {} (name, path, base_model) VALUES (%s, %s, %s) ON CONFLICT (name) "
            "DO UPDATE SET path = EXCLUDED.path, base_model = EXCLUDED.base_model, "
            "loaded_at = now()"
        ).format(self._table)
        with self._connection() as conn:
            conn.execute(query, (name, path, base_model))

    def delete(self, name: str) -> bool:
        """Forget adapter ``name``; whether it was stored."""
        query = sql.SQL("DELETE FROM {} WHERE name = %s").format(self._table)
        with self._connection() as conn:
            return conn.execute(query, (name,)).rowcount > 0

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="rag",
            ) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"The database at {self._where} failed: {detail}") from exc
