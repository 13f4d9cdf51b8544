"""``rag serve`` as `make run` starts it: embedded database, sample corpus, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.retriever.database import EmbeddedPostgres
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


def test_serve_on_defaults_answers_from_the_sample_corpus_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "LLM_", "EMBEDDING_", "RETRIEVAL_", "API_", "RAG_"))
    }
    env["RAG_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "serve.log"
    with log.open("w", encoding="utf-8") as log_file:
        _serve_and_check(port, env, tmp_path, log, log_file)
    assert not EmbeddedPostgres(tmp_path / "data" / "pg").running
    assert (tmp_path / "data" / ".sample-corpus-indexed").exists()


def _serve_and_check(port: int, env: dict[str, str], tmp_path: Path, log: Path, log_file) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
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
