"""A benchmark's API server in a process of its own, as ``rag serve`` runs it.

A server on a thread of the benchmark's own process would share its interpreter lock with the
client timing it: every request would then wait, now and then, for the client's Python to let
go (up to the 5 ms switch interval), which no real client imposes on a server. The child gets
the settings as JSON (secrets included, as job workers get them) and serves
``create_app(settings, schema=...)`` on a free loopback port, its lifespan (workers included)
as ``rag serve`` has it.

    .venv/bin/python benchmarks/api_server.py SETTINGS_JSON SCHEMA PORT
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from app.core.config import AuthSettings, Settings
from app.jobs.processes import settings_json
from tests.utils.live_server import free_port
from tests.utils.workers import poll

START_TIMEOUT_S = 180.0
# A benchmark's one client asks thousands of times a minute: no per-key limit gets in its way.
UNLIMITED_RATES = AuthSettings(rate_search="1000000/minute", rate_chat="1000000/minute")


@contextmanager
def api_server(settings: Settings, schema: str) -> Iterator[str]:
    """Serve ``schema`` with ``settings`` in a child process; yield its base URL, stop it on
    exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        settings_file = Path(scratch) / "settings.json"
        settings_file.write_text(settings_json(settings), encoding="utf-8")
        child = subprocess.Popen(
            [sys.executable, __file__, str(settings_file), schema, str(port)]
        )
        try:
            wait_until_healthy(base, child)
            yield base
        finally:
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_until_healthy(base: str, child: subprocess.Popen[bytes]) -> None:
    """Return once ``/health`` answers 200; fail if the child exits or takes too long."""

    def health() -> int:
        if child.poll() is not None:
            raise SystemExit(
                f"the API server exited with {child.returncode} during start-up"
            )
        try:
            return httpx.get(f"{base}/health", timeout=5).status_code
        except httpx.HTTPError:
            return 0

    poll(health, lambda status: status == 200, timeout_s=START_TIMEOUT_S)


def main() -> None:
    import uvicorn
    from app.main import create_app

    settings_file, schema, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    settings = Settings.model_validate_json(
        Path(settings_file).read_text(encoding="utf-8")
    )
    app = create_app(settings, schema=schema, frontend_dir=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
