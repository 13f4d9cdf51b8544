"""The LoRA adapters loaded through the API, kept in the store's schema so they outlive a restart.

One row per adapter in ``served_adapters`` (migration ``0007``). Loading and unloading adapters is
rare, so each call opens its own short connection instead of taking one from the store's pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from app.retriever.connections import ShortConnections


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
        self._connections = ShortConnections(conninfo, connect_timeout_s=connect_timeout_s)
        self._table = sql.Identifier(schema, "served_adapters")

    def stored(self) -> list[AdapterRecord]:
        """Every stored adapter, oldest first."""
        query = sql.SQL(
            "SELECT name, path, base_model, loaded_at FROM {} ORDER BY loaded_at, name"
        ).format(self._table)
        with self._connections.connect() as conn:
            return [AdapterRecord(*row) for row in conn.execute(query)]

    def save(self, name: str, path: str, base_model: str) -> None:
        """Store adapter ``name`` (replacing a row of that name)."""
        query = sql.SQL(
            "INSERT INTO {} (name, path, base_model) VALUES (%s, %s, %s) ON CONFLICT (name) "
            "DO UPDATE SET path = EXCLUDED.path, base_model = EXCLUDED.base_model, "
            "loaded_at = now()"
        ).format(self._table)
        with self._connections.connect() as conn:
            conn.execute(query, (name, path, base_model))

    def delete(self, name: str) -> bool:
        """Forget adapter ``name``; whether it was stored."""
        query = sql.SQL("DELETE FROM {} WHERE name = %s").format(self._table)
        with self._connections.connect() as conn:
            return conn.execute(query, (name,)).rowcount > 0
