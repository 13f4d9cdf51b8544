"""Reaching PostgreSQL: its failures as ``DatabaseUnavailable``, short one-off connections, and
connections kept for reads asked on every request.

Every part that talks to the database (the store's pool, the job store, the API keys, the served
adapters' records) says the same thing when it cannot: where the database is (never its password)
and the first line of the driver's reason.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from app.core.errors import DatabaseUnavailable
from app.retriever.embedded_postgres import describe_conninfo

DRIVER_FAILURES = (psycopg.OperationalError, psycopg.InterfaceError)
_T = TypeVar("_T")


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


def libpq_connect_timeout(connect_timeout_s: float) -> int:
    """libpq's ``connect_timeout`` for a limit in seconds: it takes whole seconds and treats
    anything under 2 as 2."""
    return max(2, math.ceil(connect_timeout_s))


class ShortConnections:
    """Opens one autocommit connection per use: for rare calls not worth a pool."""

    def __init__(
        self, conninfo: str, *, connect_timeout_s: float = 5.0, application_name: str = "rag"
    ) -> None:
        self._conninfo = conninfo
        self.where = describe_conninfo(conninfo)
        self.connect_timeout_s = connect_timeout_s
        self._application_name = application_name

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A connection for the block; failures come out as ``DatabaseUnavailable``."""
        with (
            database_errors(self.where, connect_timeout_s=self.connect_timeout_s),
            self.open() as conn,
        ):
            yield conn

    def open(self) -> psycopg.Connection:
        """A new autocommit connection, the caller's to close; driver errors as they come."""
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=libpq_connect_timeout(self.connect_timeout_s),
            application_name=self._application_name,
        )


class KeptConnections:
    """Autocommit connections kept open between uses, for small reads asked on every request,
    where a new connection (a server process started per query) would cost more than the query.

    Unlike a pool, it never waits for a connection: a read takes an idle one or opens one, and
    fails at once, as ``ShortConnections`` does, when the server refuses. A read that meets a
    kept connection the server has dropped (restart, idle timeout, failover) runs again, once,
    on a new one: reads are safe to run twice. Nothing runs in the background.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        keep: int = 4,
        connect_timeout_s: float = 5.0,
        application_name: str = "rag",
    ) -> None:
        self._short = ShortConnections(
            conninfo, connect_timeout_s=connect_timeout_s, application_name=application_name
        )
        self.where = self._short.where
        self._keep = keep
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def read(self, run: Callable[[psycopg.Connection], _T]) -> _T:
        """``run`` on a kept or new connection; failures come out as ``DatabaseUnavailable``."""
        with database_errors(self.where, connect_timeout_s=self._short.connect_timeout_s):
            kept = self._take_idle()
            if kept is not None:
                try:
                    return self._run_and_keep(kept, run)
                except psycopg.OperationalError:
                    if not kept.broken:
                        raise
            return self._run_and_keep(self._short.open(), run)

    def close(self) -> None:
        """Close the idle connections; a later read opens new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take_idle(self) -> psycopg.Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _run_and_keep(
        self, conn: psycopg.Connection, run: Callable[[psycopg.Connection], _T]
    ) -> _T:
        try:
            result = run(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
                return result
        conn.close()
        return result
