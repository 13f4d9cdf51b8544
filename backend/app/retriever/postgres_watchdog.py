"""Who uses an embedded PostgreSQL, and stopping it when the last of them is gone, however it went.

``pgserver`` keeps the ids of the processes using a data folder in ``PGDATA/.handle_pids.json``
and stops the server when the last one lets go cleanly. A process killed with SIGKILL never lets
go: its id stays in the list, the server runs on, and no later clean exit stops it either. So each
process that uses a server also starts this module as a small watchdog::

    python -I postgres_watchdog.py PGDATA PARENT_PID      # standard input: a pipe from the parent

The parent alone holds the pipe's write end, so the watchdog reads end-of-file the moment the
parent exits, for whatever reason. Then, under pgserver's lock, it takes every process that no
longer runs off the list and, when nobody is left, stops the server (``pg_ctl stop -m fast``).
A clean stop in ``embedded_postgres.py`` goes through the same ``release``, and so also forgets users that
died earlier, and then dismisses its watchdog.

Run as a script this file imports nothing of the application (``-I`` keeps the script's folder,
which holds a ``types.py``, off ``sys.path``): only the standard library, ``psutil`` and
``pgserver``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import psutil

USERS_FILE = ".handle_pids.json"

# pgserver's inter-process lock is one object per process that is not safe to share between
# threads; this lock makes each process take it one thread at a time.
_thread_guard = threading.Lock()


def load_pgserver() -> ModuleType:
    """The ``pgserver`` package, imported without its warning about a missing runtime folder."""
    # pgserver picks its lock folder at import time; in containers without XDG_RUNTIME_DIR
    # platformdirs warns and falls back to /tmp/runtime-<uid>, which is the folder we want.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    return pgserver


@contextmanager
def one_thread() -> Iterator[None]:
    """Let one thread of this process at a time into pgserver calls that take its lock."""
    with _thread_guard:
        yield


@contextmanager
def server_lock() -> Iterator[None]:
    """Hold pgserver's lock over starting, stopping and counting the users of servers."""
    lock = load_pgserver().PostgresServer._lock
    with _thread_guard, lock:
        yield


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; an exited process not yet reaped (a zombie) does not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def postmaster_pid(pgdata: Path) -> int | None:
    """The id of the postmaster running in ``pgdata``, or ``None`` when none runs."""
    # A clean stop removes postmaster.pid; a killed server leaves it behind with a dead id.
    try:
        pid = int((pgdata / "postmaster.pid").read_text(encoding="utf-8").split()[0])
        process = psutil.Process(pid)
        # After a crash its id may have gone to another program by now.
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "postgres":
            return None
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    except psutil.AccessDenied:
        pass
    return pid


def release(pgdata: Path, leaving: int | None = None) -> bool:
    """Take ``leaving`` and every process that no longer runs off the users of the server in
    ``pgdata``; stop the server when no user is left. Returns whether it stopped the server."""
    pgserver = load_pgserver()
    users_file = pgserver.utils.DiskList(pgdata / USERS_FILE)
    with server_lock():
        users = [pid for pid in users_file.get() if pid != leaving and process_alive(pid)]
        users_file.put(users)
        if users or postmaster_pid(pgdata) is None:
            return False
        # Running as root, pgserver runs the server as its own system user, so must pg_ctl.
        user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
        try:
            pgserver._commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except subprocess.CalledProcessError:
            # It stopped by itself between the check and the command.
            return postmaster_pid(pgdata) is None
        return True


def start(pgdata: Path) -> subprocess.Popen[bytes]:
    """Start the watchdog of this process over the server in ``pgdata``; it acts when this
    process exits, unless ``dismiss``-ed first."""
    return subprocess.Popen(
        [sys.executable, "-I", str(Path(__file__).resolve()), str(pgdata), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        # Its own session: a Ctrl-C or a hang-up of the terminal must not end it before the
        # parent, whose end is what it waits for.
        start_new_session=True,
    )


def dismiss(watchdog: subprocess.Popen[bytes]) -> None:
    """End a watchdog whose parent has let go of the server itself (``release``)."""
    watchdog.terminate()
    watchdog.wait()
    if watchdog.stdin is not None:
        watchdog.stdin.close()


def main(argv: list[str]) -> int:
    """Wait for the parent to go (end of standard input), then ``release`` the server."""
    pgdata, parent = Path(argv[1]), int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.read(sys.stdin.fileno(), 4096):
        pass
    # The kernel closes an exiting process's files a moment before it counts as gone (and its
    # children are handed to another parent): until then the parent would still look alive.
    while os.getppid() == parent:
        time.sleep(0.02)
    release(pgdata)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
