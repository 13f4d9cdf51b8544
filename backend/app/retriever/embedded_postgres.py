"""Where PostgreSQL comes from: ``DATABASE_URL``, or a server embedded in the data folder.

Without ``DATABASE_URL`` the application runs its own PostgreSQL 16 with pgvector from the
``pgserver`` package: a real server, initialised on first use in ``data_dir / "pg"`` and reached
over a Unix socket inside that folder, so nothing listens on the network. Several processes
(the API, workers and the CLI) can share one folder; each one that uses the server is counted
in ``pgserver``'s list of users, and the server stops when the last of them goes.

Each process that starts (or joins) the embedded server also looks after it:

- a supervisor thread checks every ``check_interval_s`` that the postmaster still runs and, when it
  is gone, starts it again with growing pauses. ``health`` says what it sees (``up``,
  ``restarting`` with the reason, ``stopped``), for ``/ready``. The connection pool finds the
  server again by itself. When the server cannot be brought back within ``restart_timeout_s``
  the process exits with status ``EXIT_DATABASE_LOST``, so that whatever runs it (Docker, systemd)
  starts it afresh.
- a watchdog process (``postgres_watchdog``) stops the server when this process dies, even by
  SIGKILL, unless another user of the folder still runs: no server is left without a user.

The process that starts the server first writes its memory settings, sized to the machine
(``embedded_tuning``) with ``DATABASE_EMBEDDED_SETTINGS`` over them; a folder initialised just
now is restarted once so that they apply from the first use. A server already running (started
by another process) keeps what it started with.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict

from app.core.config import DatabaseSettings
from app.core.errors import DatabaseUnavailable
from app.core.logger import get_logger
from app.retriever import postgres_watchdog
from app.retriever.embedded_tuning import server_settings, write_tuning
from app.retriever.postgres_watchdog import (
    load_pgserver,
    one_thread,
    postmaster_pid,
    server_lock,
)

if TYPE_CHECKING:
    from pgserver import PostgresServer

log = get_logger(__name__)

# The exit status of a process whose embedded PostgreSQL died and could not be started again.
EXIT_DATABASE_LOST = 3
_FIRST_PAUSE_S = 0.5
_LONGEST_PAUSE_S = 10.0

_servers: dict[Path, EmbeddedPostgres] = {}
_servers_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """What the supervisor of an embedded server last saw."""

    state: Literal["up", "restarting", "stopped"]
    reason: str | None = None
    """Why it is not ``up``: what happened to the server and how restarting it goes."""
    restarts: int = 0
    """How often this process found the server gone and brought it back."""


class EmbeddedPostgres:
    """A PostgreSQL server with pgvector in a local folder; ``start()`` and ``stop()`` may repeat."""

    def __init__(
        self,
        pgdata: Path,
        *,
        check_interval_s: float = 1.0,
        restart_timeout_s: float = 60.0,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """``settings``: PostgreSQL settings over the ones sized to the machine."""
        self.pgdata = Path(pgdata).expanduser().resolve()
        self.settings = dict(settings or {})
        self.check_interval_s = check_interval_s
        self.restart_timeout_s = restart_timeout_s
        self._server: PostgresServer | None = None
        self._lock = threading.Lock()
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._health = ServerHealth("stopped")

    @property
    def url(self) -> str:
        """Connection URL of the running server (a Unix socket, user ``postgres``)."""
        if self._server is None:
            raise DatabaseUnavailable(f"The embedded PostgreSQL in {self.pgdata} is not started.")
        return self._server.get_uri()

    @property
    def running(self) -> bool:
        """Whether a server is up in ``pgdata`` (started by this process or another)."""
        return postmaster_pid(self.pgdata) is not None

    @property
    def health(self) -> ServerHealth:
        """``up``, ``restarting`` (and why) or ``stopped``, as the supervisor last saw it."""
        return self._health

    def start(self) -> str:
        """Initialise the folder if new, start the server if it is down, join its users, and
        look after it from now on (supervisor and watchdog). Returns its URL."""
        with self._lock:
            self._ensure_running()
            if self._watchdog is None:
                self._watchdog = postgres_watchdog.start(self.pgdata)
            if self._supervisor is None:
                self._stopping.clear()
                self._supervisor = threading.Thread(
                    target=self._supervise,
                    name=f"postgres-supervisor:{self.pgdata.parent.name}",
                    daemon=True,
                )
                self._supervisor.start()
            if self._health.state != "up":
                self._health = ServerHealth("up", restarts=self._health.restarts)
            log.info("embedded PostgreSQL running in %s", self.pgdata)
            return self.url

    def stop(self) -> None:
        """Stop looking after the server and leave its users; the server stops when no other
        process uses it. ``start()`` brings it back."""
        self._stopping.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.join()
        with self._lock:
            server, self._server = self._server, None
            if server is not None:
                stopped = postgres_watchdog.release(self.pgdata, leaving=os.getpid())
                log.info(
                    "embedded PostgreSQL in %s %s",
                    self.pgdata,
                    "stopped" if stopped else "released (other processes use it)",
                )
                atexit.unregister(self.stop)
            watchdog, self._watchdog = self._watchdog, None
            if watchdog is not None:
                postgres_watchdog.dismiss(watchdog)
            self._health = ServerHealth("stopped", restarts=self._health.restarts)

    # ----- internals --------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        """Start the server if it is down and count this process among its users."""
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            pgserver = load_pgserver()
            with server_lock():
                self._forget_dead_postmaster()
                initialised = (self.pgdata / "PG_VERSION").exists()
                if initialised and postmaster_pid(self.pgdata) is None:
                    # This process starts the server: it reads the file as it starts.
                    write_tuning(self.pgdata, server_settings(self.settings))
            with one_thread():
                # The first use of a folder in this process initialises and starts it (under
                # pgserver's lock, which it takes itself); later ones find pgserver's object
                # for it and only make sure below that the server runs.
                server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
            with server_lock():
                self._forget_dead_postmaster()
                if not initialised:
                    self._apply_tuning(server)
                server.ensure_postgres_running()
                if postmaster_pid(self.pgdata) is None:
                    # pgserver took a dead postmaster for a running one: the lock file stays
                    # until the dead server's last processes have let go of its memory.
                    raise RuntimeError("the processes of the previous server are still exiting")
                server.global_process_id_list.get_and_add(os.getpid())
        except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
            raise DatabaseUnavailable(
                f"The embedded PostgreSQL in {self.pgdata} did not start ({exc}). "
                f"Its log is {self.pgdata / 'log'}; set DATABASE_URL to use another server."
            ) from exc
        if self._server is None:
            # Before pgserver's own exit hook (registered earlier, so run later): leave the
            # users and end the supervisor, which shares pgserver's lock with that hook.
            atexit.register(self.stop)
        self._server = server

    def _apply_tuning(self, server: PostgresServer) -> None:
        """Write the settings into a folder initialised just now and stop its server, which
        started without them, unless another process uses it already; the caller starts it."""
        if not write_tuning(self.pgdata, server_settings(self.settings)):
            return
        others = [
            pid
            for pid in server.global_process_id_list.get()
            if pid != os.getpid() and postgres_watchdog.process_alive(pid)
        ]
        if others or postmaster_pid(self.pgdata) is None:
            return
        pg_ctl = load_pgserver()._commands.pg_ctl
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=server.system_user)

    def _forget_dead_postmaster(self) -> None:
        """Let a killed postmaster that lingers as a zombie be taken for dead, as it is.

        An exited process stays a zombie until its parent collects it; where nobody does (the
        container's first process, some sandboxes) pgserver takes it for a running server and
        PostgreSQL refuses to start beside it. This process collects it when it is the parent;
        otherwise the stale ``postmaster.pid`` is removed, but only once no process of the dead
        server is attached to its shared memory any more, the check PostgreSQL makes itself.
        """
        lock_file = self.pgdata / "postmaster.pid"
        try:
            lines = lock_file.read_text(encoding="utf-8").splitlines()
            postmaster = psutil.Process(int(lines[0]))
            if postmaster.status() != psutil.STATUS_ZOMBIE:
                return
            if postmaster.ppid() == os.getpid():
                os.waitpid(postmaster.pid, os.WNOHANG)
            elif not _shared_memory_in_use(lines[6] if len(lines) > 6 else ""):
                lock_file.unlink()
                log.info("removed the lock file of a dead postmaster in %s", self.pgdata)
        except (OSError, ValueError, IndexError, psutil.Error):
            return

    def _supervise(self) -> None:
        while not self._stopping.wait(self.check_interval_s):
            if postmaster_pid(self.pgdata) is None:
                self._restart()

    def _restart(self) -> None:
        """Start the vanished server again, with growing pauses; exit the process if that
        does not succeed within ``restart_timeout_s``."""
        log.warning("the embedded PostgreSQL in %s stopped; starting it again", self.pgdata)
        restarts = self._health.restarts
        deadline = time.monotonic() + self.restart_timeout_s
        pause = _FIRST_PAUSE_S
        attempt = 1
        failure = ""
        while not self._stopping.is_set():
            self._health = ServerHealth(
                "restarting",
                f"its server process ended; starting it again (attempt {attempt}){failure}",
                restarts,
            )
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._ensure_running()
            except DatabaseUnavailable as exc:
                failure = f"; the last attempt failed: {exc.message}"
                if time.monotonic() + pause > deadline:
                    self._give_up(
                        "its server process ended and it did not start again within "
                        f"{self.restart_timeout_s:g} s{failure}"
                    )
                    return
                log.warning("starting the embedded PostgreSQL failed: %s", exc.message)
                self._stopping.wait(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)
                attempt += 1
                continue
            self._health = ServerHealth("up", restarts=restarts + 1)
            log.warning("the embedded PostgreSQL in %s runs again", self.pgdata)
            return

    def _give_up(self, reason: str) -> None:
        self._health = ServerHealth("stopped", reason, self._health.restarts)
        log.critical(
            "the embedded PostgreSQL in %s is lost: %s; exiting with status %d so that the "
            "service manager starts this process afresh",
            self.pgdata,
            reason,
            EXIT_DATABASE_LOST,
        )
        # From a thread only _exit ends the process, and with the status a restart policy
        # (Docker's on-failure, systemd's Restart=) acts on. The watchdog sees it go.
        os._exit(EXIT_DATABASE_LOST)


def _shared_memory_in_use(key_and_id: str) -> bool:
    """Whether a process is attached to the System V segment that ``postmaster.pid`` names
    (its 7th line: key and id); an unreadable answer counts as in use."""
    words = key_and_id.split()
    if len(words) != 2:
        return False
    try:
        table = Path("/proc/sysvipc/shm").read_text(encoding="ascii").splitlines()
    except OSError:
        return True
    for row in table[1:]:
        fields = row.split()
        # key, shmid, perms, size, cpid, lpid, nattch, ...
        if len(fields) > 6 and fields[1] == words[1]:
            return int(fields[6]) > 0
    return False


def embedded_server(settings: DatabaseSettings) -> EmbeddedPostgres:
    """The process's one ``EmbeddedPostgres`` for ``settings.data_dir`` (not started by this call)."""
    pgdata = (Path(settings.data_dir) / "pg").expanduser().resolve()
    with _servers_lock:
        if pgdata not in _servers:
            _servers[pgdata] = EmbeddedPostgres(
                pgdata,
                restart_timeout_s=settings.restart_timeout_s,
                settings=settings.embedded_settings,
            )
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
