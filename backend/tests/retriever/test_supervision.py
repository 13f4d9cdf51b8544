"""The embedded PostgreSQL looked after: restarted when it dies, stopped when its last user dies.

Each test has a data folder of its own (outside pytest's basetemp, see ``temporary_server``) and
kills only the processes of that folder. Waiting is polling with a deadline; the one thing that
must not happen too soon, the restart, is held back by holding pgserver's lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from app.core.config import DatabaseSettings
from app.main import create_app
from app.retriever import postgres_watchdog
from app.retriever.embedded_postgres import EXIT_DATABASE_LOST, EmbeddedPostgres, embedded_server
from app.retriever.postgres_watchdog import postmaster_pid, process_alive, server_lock
from tests.api.conftest import make_settings
from tests.utils.live_server import free_port, live_server

BACKEND = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _poll(probe: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 90) -> T:
    """``probe()`` again and again until ``done`` says yes; the last value when time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rag-supervision-"))
    yield folder
    pgdata = folder / "pg"
    if pgdata.exists():
        pgdata.chmod(0o700)
        # Whatever a failed test left: users that died are forgotten and the server stopped.
        postgres_watchdog.release(pgdata)
    shutil.rmtree(folder, ignore_errors=True)


def _server_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster of ``pgdata`` and its children."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        return []
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children()]


def _gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and process_alive(p.pid) for p in processes)


def _postgres_of(pgdata: Path) -> list[psutil.Process]:
    """Every live postmaster whose command line names ``pgdata``, whoever started it."""
    return [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "postgres"
        and str(pgdata) in (process.info["cmdline"] or [])
        and process_alive(process.pid)
    ]


def _users(pgdata: Path) -> list[int]:
    """The processes pgserver counts as using the server (read under its lock, as it writes)."""
    users = postgres_watchdog.load_pgserver().utils.DiskList(pgdata / ".handle_pids.json")
    with server_lock():
        return users.get()


def _user_process(
    pgdata: Path, log: Path, *, restart_timeout_s: float = 60.0
) -> subprocess.Popen[str]:
    """Another process that uses the server in ``pgdata`` until its standard input closes;
    its log goes to ``log``."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.core.logger import setup_logging\n"
        "from app.retriever.embedded_postgres import EmbeddedPostgres\n"
        "setup_logging('WARNING')\n"
        f"server = EmbeddedPostgres(Path(sys.argv[1]), restart_timeout_s={restart_timeout_s})\n"
        "server.start()\n"
        "print('up', flush=True)\n"
        "sys.stdin.read()\n"
        "server.stop()\n"
    )
    with log.open("a", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(pgdata)],
            cwd=BACKEND,
            env={**os.environ, "PYTHONPATH": str(BACKEND)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    assert process.stdout is not None
    assert process.stdout.readline() == "up\n", log.read_text(encoding="utf-8")
    return process


def _end(process: subprocess.Popen[str], *, kill: bool) -> int:
    """Kill the process, or let it stop cleanly (end of its input); its exit status."""
    if kill:
        process.kill()
    process.communicate("")
    return process.returncode


def test_a_killed_postmaster_is_reported_then_restarted_and_the_app_serves_again(
    data_dir: Path,
) -> None:
    settings = make_settings("", data_dir)
    settings.database = DatabaseSettings(url=None, data_dir=data_dir, connect_timeout_s=1.0)
    app = create_app(settings, schema="supervised", frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        indexer = app.state.components.indexer
        [stored] = indexer.ingest_bytes("정전.txt", "정전 뒤에도 남는 문서입니다.".encode())
        assert stored.outcome == "indexed", stored.error
        assert client.get("/ready").status_code == 200
        server = embedded_server(settings.database)
        killed = _server_processes(server.pgdata)

        with server_lock():
            killed[0].send_signal(signal.SIGKILL)
            # A ping may fail first; then the supervisor sees the server gone and says why.
            ready = _poll(
                lambda: client.get("/ready"),
                lambda r: "restarting" in r.json()["checks"]["database"]["detail"],
            )
            assert ready.status_code == 503
            database = ready.json()["checks"]["database"]
            assert database["ok"] is False and "server process ended" in database["detail"]
            assert client.get("/health").status_code == 200

        ready = _poll(lambda: client.get("/ready"), lambda r: r.status_code == 200)
        assert ready.status_code == 200, ready.text
        assert "restarted once" in ready.json()["checks"]["database"]["detail"]
        assert _gone(killed) and server.running
        search = _poll(
            lambda: client.post("/api/search", json={"query": "정전", "mode": "sparse"}),
            lambda r: r.status_code == 200,
        )
        assert search.status_code == 200 and search.json()["results"]
        assert client.get("/api/documents").json()["total"] == 1


def test_rag_serve_killed_with_sigkill_leaves_no_postgres_behind(data_dir: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "LLM_", "EMBEDDING_", "RETRIEVAL_", "API_", "RAG_"))
    }
    env.update(RAG_DATA_DIR=str(data_dir), API_INDEX_SAMPLE_CORPUS="false", PYTHONPATH=str(BACKEND))
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("w", encoding="utf-8") as log_file:
        serve = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=data_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:

        def ready() -> int:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code
            except httpx.TransportError:
                return 0

        status = _poll(ready, lambda s: s == 200 or serve.poll() is not None, timeout_s=180)
        assert status == 200, log.read_text(encoding="utf-8")
        pgdata = data_dir / "pg"
        processes = _server_processes(pgdata)
        assert processes and serve.pid in _users(pgdata)

        serve.kill()
        serve.wait()
        # The server's worker processes, users of the database too, follow their parent.
        left = _poll(
            lambda: (_postgres_of(pgdata), _users(pgdata)),
            lambda now: now == ([], []) and _gone(processes),
        )
        assert left == ([], []) and _gone(processes)
        assert postmaster_pid(pgdata) is None
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.wait()


def test_the_server_stops_when_its_last_user_goes_not_the_first(data_dir: Path) -> None:
    pgdata = data_dir / "pg"
    own = EmbeddedPostgres(pgdata)
    own.start()
    other = _user_process(pgdata, data_dir / "other.log")
    assert sorted(_users(pgdata)) == sorted([os.getpid(), other.pid])

    # A user killed outright is forgotten; the server stays for the one that is left.
    assert _end(other, kill=True) == -signal.SIGKILL
    assert _poll(lambda: _users(pgdata), lambda users: users == [os.getpid()]) == [os.getpid()]
    assert own.running

    # A clean stop while another process uses the server leaves it running ...
    last = _user_process(pgdata, data_dir / "last.log")
    own.stop()
    assert own.running and _users(pgdata) == [last.pid]
    processes = _server_processes(pgdata)

    # ... and the last user's clean stop stops it.
    assert _end(last, kill=False) == 0
    assert _poll(lambda: _gone(processes), bool)
    assert not own.running and _users(pgdata) == []


def test_a_server_that_cannot_start_again_ends_its_process_with_a_status(
    data_dir: Path,
) -> None:
    pgdata = data_dir / "pg"
    log = data_dir / "user.log"
    user = _user_process(pgdata, log, restart_timeout_s=2.0)
    # PostgreSQL refuses a data folder that others may read; the running server does not care.
    pgdata.chmod(0o755)
    processes = _server_processes(pgdata)
    processes[0].send_signal(signal.SIGKILL)
    # Its input stays open: the process ends by itself, once restarting has failed long enough.
    user.wait(timeout=120)
    assert _end(user, kill=False) == EXIT_DATABASE_LOST, log.read_text(encoding="utf-8")
    assert "did not start again within 2 s" in log.read_text(encoding="utf-8")
    assert _poll(lambda: _gone(processes), bool)
