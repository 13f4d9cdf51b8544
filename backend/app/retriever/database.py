"""Where PostgreSQL comes from: ``DATABASE_URL``, or a server embedded in the data folder.

Without ``DATABASE_URL`` the application runs its own PostgreSQL 16 with pgvector from the
``pgserver`` package: a real server, initialised on first use in ``data_dir / "pg"`` and reached
over a Unix socket inside that folder, so nothing listens on the network. Several processes
(the API and the CLI) can share one folder: ``pgserver`` counts the processes using the server
and stops it when the last one exits.
"""

from __future__ import annotations

import subprocess
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict

from app.core.config import DatabaseSettings
from app.core.errors import DatabaseUnavailable
from app.core.logger import get_logger

if TYPE_CHECKING:
    from pgserver import PostgresServer

log = get_logger(__name__)

_servers: dict[Path, EmbeddedPostgres] = {}
_servers_lock = threading.Lock()


def _pgserver() -> ModuleType:
    # pgserver picks its lock folder at import time; in containers without XDG_RUNTIME_DIR
    # platformdirs warns and falls back to /tmp/runtime-<uid>, which is the folder we want.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    return pgserver


class EmbeddedPostgres:
    """A PostgreSQL server with pgvector in a local folder; ``start()`` and ``stop()`` may repeat."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata).expanduser().resolve()
        self._server: PostgresServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Connection URL of the running server (a Unix socket, user ``postgres``)."""
        if self._server is None:
            raise DatabaseUnavailable(f"The embedded PostgreSQL in {self.pgdata} is not started.")
        return self._server.get_uri()

    @property
    def running(self) -> bool:
        """Whether a server is up in ``pgdata`` (started by this process or another)."""
        # A clean stop removes postmaster.pid; the file, not the pid alone, decides, because a
        # stopped server lingers as a zombie process where no init reaps it (containers).
        info = _pgserver().utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def start(self) -> str:
        """Initialise the folder if new, start the server if it is down, and return its URL."""
        with self._lock:
            try:
                if self._server is None:
                    self.pgdata.parent.mkdir(parents=True, exist_ok=True)
                    self._server = _pgserver().get_server(self.pgdata, cleanup_mode="stop")
                else:
                    self._server.ensure_postgres_running()
            except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
                raise DatabaseUnavailable(
                    f"The embedded PostgreSQL in {self.pgdata} did not start ({exc}). "
                    f"Its log is {self.pgdata / 'log'}; set DATABASE_URL to use another server."
                ) from exc
            log.info("embedded PostgreSQL running in %s", self.pgdata)
            return self._server.get_uri()

    def stop(self) -> None:
        """Stop the server unless another process still uses it; ``start()`` brings it back."""
        with self._lock:
            server, self._server = self._server, None
            if server is not None:
                # pgserver counts the processes using the folder and stops the server when
                # the last one lets go (otherwise at that process's exit).
                server.cleanup()
                log.info("embedded PostgreSQL in %s released", self.pgdata)


def embedded_server(settings: DatabaseSettings) -> EmbeddedPostgres:
    """The process's one ``EmbeddedPostgres`` for ``settings.data_dir`` (not started by this call)."""
    pgdata = (Path(settings.data_dir) / "pg").expanduser().resolve()
    with _servers_lock:
        if pgdata not in _servers:
            _servers[pgdata] = EmbeddedPostgres(pgdata)
        return _servers[pgdata]


def resolve_database_url(settings: DatabaseSettings) -> str:
    """``DATABASE_URL`` when set; otherwise the URL of the embedded server, started if needed."""
    if settings.url:
        describe_conninfo(settings.url)
        return settings.url
    return embedded_server(settings).start()


def describe_conninfo(conninfo: str) -> str:
    """``user@host:port/dbname`` of a connection string, without its password, for messages."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(f"DATABASE_URL is not a valid PostgreSQL URL: {exc}") from None
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}{port}/{parts.get('dbname') or ''}"
