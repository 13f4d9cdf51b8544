"""The connections of a ``PGVectorStore``: its pool, its own sessions, ``atomic()`` and errors.

Pooled connections find the store's schema first on their ``search_path``, know pgvector's
types, and start with the store's ``hnsw.ef_search``. Writers and other callers get a connection
the pool has checked, so that one the server dropped (restart, failover) is replaced before use.
Searches skip that check, one round trip each: a search that meets a dropped connection runs
again, once, on a checked one (it only reads, so running it twice is safe). Failures of the
server or of the pool reach callers as ``DatabaseUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from app.core.errors import DatabaseUnavailable
from app.retriever.connections import database_errors, libpq_connect_timeout
from app.retriever.dense_search import session_setup
from app.retriever.embedded_postgres import describe_conninfo

_T = TypeVar("_T")
# The pool and connection of the ``atomic()`` block the current thread or task is in.
_ATOMIC: ContextVar[tuple[StorePool, psycopg.Connection] | None] = ContextVar(
    "rag_store_atomic", default=None
)
# Set while a search takes its connection: the pool then skips its check.
_UNCHECKED: ContextVar[bool] = ContextVar("rag_store_unchecked", default=False)


class StorePool:
    """Connections to one store's schema; ``open()`` before use, ``close()`` after."""

    def __init__(
        self,
        conninfo: str,
        *,
        name: str,
        pool_min: int,
        pool_max: int,
        connect_timeout_s: float,
        ef_search: int,
    ) -> None:
        self._conninfo = conninfo
        self.where = describe_conninfo(conninfo)
        self._name = name
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._connect_timeout_s = connect_timeout_s
        self._ef_search = ef_search
        self._search_path: list[str] = []
        self._pool: ConnectionPool | None = None

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` has run and ``close()`` has not since."""
        return self._pool is not None

    def open(self, search_path: Sequence[str]) -> None:
        """Open the pool; its connections use ``search_path``."""
        self._search_path = list(search_path)
        pool = ConnectionPool(
            self._conninfo,
            min_size=self._pool_min,
            max_size=self._pool_max,
            kwargs=self._connect_kwargs(),
            configure=self._configure,
            check=_check_unless_searching,
            timeout=self._connect_timeout_s,
            # While the server is down the pool retries with growing pauses; giving up early
            # keeps those pauses short, and the next request starts a fresh attempt.
            reconnect_timeout=max(self._connect_timeout_s, 2.0),
            name=self._name,
            open=False,
        )
        pool.open()
        self._pool = pool

    def close(self) -> None:
        """Close the pool; ``open()`` may follow."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def require_open(self) -> ConnectionPool:
        """The open pool, or ``DatabaseUnavailable``."""
        if self._pool is None:
            raise DatabaseUnavailable("The vector store is not open.")
        return self._pool

    def direct(self, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        """A new connection outside the pool, without the store's ``search_path``."""
        return psycopg.connect(self._conninfo, autocommit=autocommit, **self._connect_kwargs())

    def direct_in_schema(self) -> psycopg.Connection[TupleRow]:
        """A new autocommit connection outside the pool (DDL that cannot run in a transaction)
        that finds the store's tables and pgvector's operator classes."""
        conn = self.direct(autocommit=True)
        conn.execute(self._set_search_path())
        return conn

    @contextmanager
    def session_lock(self, name: str) -> Iterator[None]:
        """Hold the advisory lock ``name`` for the block, on a connection of its own outside
        the pool, so that a lock holder never waits for a pooled connection."""
        self.require_open()
        with self.translate_errors():
            conn = self.direct(autocommit=True)
        try:
            with self.translate_errors():
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
            yield
        finally:
            # Ending the session releases the lock, even when unlocking would fail.
            conn.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """The connection of the ``atomic()`` block this call is in, or a checked pooled one
        whose transaction commits when the block ends (rolls back when it raises)."""
        shared = self.shared_connection()
        if shared is not None:
            with self.translate_errors():
                yield shared
            return
        pool = self.require_open()
        with self.translate_errors(), pool.connection() as conn:
            yield conn

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every ``connection()`` and ``search()`` of the block use one transaction;
        a nested block joins the outer one."""
        if self.shared_connection() is not None:
            yield
            return
        pool = self.require_open()
        with self.translate_errors(), pool.connection() as conn:
            token = _ATOMIC.set((self, conn))
            try:
                yield
            finally:
                _ATOMIC.reset(token)

    def shared_connection(self) -> psycopg.Connection | None:
        """The connection of the ``atomic()`` block this call is in, if any."""
        current = _ATOMIC.get()
        return current[1] if current is not None and current[0] is self else None

    def search(self, run: Callable[[psycopg.Connection], _T]) -> _T:
        """``run`` on a connection for reading: inside ``atomic()`` its connection; otherwise a
        pooled one in autocommit, unchecked, and once more on a checked one if the server had
        dropped it. ``run`` opens ``conn.transaction()`` where statements must share one."""
        shared = self.shared_connection()
        if shared is not None:
            with self.translate_errors():
                return run(shared)
        pool = self.require_open()
        with self.translate_errors():
            token = _UNCHECKED.set(True)
            try:
                conn = pool.getconn()
            finally:
                _UNCHECKED.reset(token)
            try:
                return _in_autocommit(conn, run)
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
            finally:
                pool.putconn(conn)
            with pool.connection() as checked:
                return _in_autocommit(checked, run)

    def translate_errors(self) -> AbstractContextManager[None]:
        """Raise the server's and the pool's failures as ``DatabaseUnavailable``."""
        return database_errors(self.where, connect_timeout_s=self._connect_timeout_s)

    def _set_search_path(self) -> sql.Composed:
        return sql.SQL("SET search_path TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, self._search_path))
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(self._set_search_path())
        register_vector(conn)
        session_setup(conn, self._ef_search)
        conn.commit()

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": libpq_connect_timeout(self._connect_timeout_s),
            "application_name": "rag",
        }


def _check_unless_searching(conn: psycopg.Connection) -> None:
    """The pool's check of a connection it hands out, except to a search."""
    if not _UNCHECKED.get():
        ConnectionPool.check_connection(conn)


def _in_autocommit(conn: psycopg.Connection, run: Callable[[psycopg.Connection], _T]) -> _T:
    conn.autocommit = True
    try:
        return run(conn)
    finally:
        # Writers rely on the pool's connections opening transactions.
        if not conn.closed:
            conn.autocommit = False
