"""``rag serve`` as `make run` starts it: embedded database, sample corpus, clean stop on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.retriever.embedded_postgres import EmbeddedPostgres
from tests.utils.live_server import free_port


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(encoding="utf-8")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("rag serve did not become ready")


@pytest.fixture
def home() -> Iterator[Path]:
    """The folder ``rag serve`` runs in and keeps its data under."""
    # Not under pytest's basetemp: pytest resets that folder to mode 0700 whenever a test run
    # starts (another one on the same machine, too), which locks the embedded server's own
    # system user out of its data folder when tests run as root, and pg_ctl can no longer stop it.
    folder = Path(tempfile.mkdtemp(prefix="rag-serve-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_serve_on_defaults_answers_from_the_sample_corpus_and_stops_cleanly(home: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "LLM_", "EMBEDDING_", "RETRIEVAL_", "API_", "RAG_"))
    }
    env["RAG_DATA_DIR"] = str(home / "data")
    log = home / "serve.log"
    with log.open("w", encoding="utf-8") as log_file:
        _serve_and_check(port, env, home, log, log_file)
    assert not EmbeddedPostgres(home / "data" / "pg").running, log.read_text(encoding="utf-8")
    assert (home / "data" / ".sample-corpus-indexed").exists()


def _serve_and_check(port: int, env: dict[str, str], cwd: Path, log: Path, log_file) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        documents = httpx.get(f"{url}/api/documents").json()["documents"]
        assert len(documents) >= 3 and all(d["status"] == "ready" for d in documents)
        answer = httpx.post(
            f"{url}/api/chat", json={"question": "QLoRA는 어떤 GPU에 맞나요?"}, timeout=60
        ).json()
        assert "[1]" in answer["answer"] or "[2]" in answer["answer"]
        assert httpx.get(f"{url}/api/status").json()["database"]["mode"] == "embedded"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
