"""Reaching PostgreSQL: its failures as ``DatabaseUnavailable``, and short one-off connections.

Every part that talks to the database (the store's pool, the job store, the API keys, the served
adapters' records) says the same thing when it cannot: where the database is (never its password)
and the first line of the driver's reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from app.core.errors import DatabaseUnavailable
from app.retriever.embedded_postgres import describe_conninfo

DRIVER_FAILURES = (psycopg.OperationalError, psycopg.InterfaceError)


def database_failed(where: str, exc: BaseException) -> DatabaseUnavailable:
    """``DatabaseUnavailable`` for a driver failure ``exc`` talking to ``where``."""
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    return DatabaseUnavailable(f"The database at {where} failed: {detail}")


@contextmanager
def database_errors(where: str, *, connect_timeout_s: float) -> Iterator[None]:
    """Raise the driver's and the pool's failures inside the block as ``DatabaseUnavailable``."""
    try:
        yield
    except (PoolTimeout, PoolClosed):
        raise DatabaseUnavailable(
            f"No database connection to {where} within {connect_timeout_s:g} s; "
            "is PostgreSQL running?"
        ) from None
    except DRIVER_FAILURES as exc:
        raise database_failed(where, exc) from exc


class ShortConnections:
    """Opens one autocommit connection per use: for rare calls not worth a pool."""

    def __init__(self, conninfo: str, *, connect_timeout_s: float = 5.0) -> None:
        self._conninfo = conninfo
        self.where = describe_conninfo(conninfo)
        self._connect_timeout_s = connect_timeout_s
        # libpq takes whole seconds and treats anything under 2 as 2.
        self._connect_timeout = max(2, math.ceil(connect_timeout_s))

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A connection for the block; failures come out as ``DatabaseUnavailable``."""
        with (
            database_errors(self.where, connect_timeout_s=self._connect_timeout_s),
            psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="rag",
            ) as conn,
        ):
            yield conn
