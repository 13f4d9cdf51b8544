"""``rag jobs`` and ``rag worker`` against the real database, ``rag ingest``'s progress bars."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.components import Components
from app.core.config import get_settings
from app.jobs.store import Job, JobFile
from tests.utils.workers import BACKEND_DIR, poll


@pytest.fixture
def env(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings through the environment, with a worker that beats and polls often."""
    monkeypatch.setenv("JOBS_HEARTBEAT_S", "0.2")
    # No test here takes a job over: a worker slowed down by a busy machine must not be taken
    # for dead (tests/retriever/test_worker.py tests the takeover).
    monkeypatch.setenv("JOBS_STALLED_AFTER_S", "60")
    monkeypatch.setenv("JOBS_POLL_S", "0.2")
    return cli_env


@pytest.fixture
def components(env: Path) -> Iterator[Components]:
    parts = Components(get_settings())
    yield parts
    parts.close()


def _queued(components: Components, name: str = "a.md") -> Job:
    """A job no worker has run (none is running)."""
    return components.jobs.create(
        "ingest", {"collection": None}, [JobFile(name, data="# 제목\n\n본문입니다.".encode())]
    )


def test_jobs_list_show_and_cancel(
    components: Components, capsys: pytest.CaptureFixture[str]
) -> None:
    older, newer = _queued(components), _queued(components, "b.md")
    assert main(["jobs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in listed["jobs"]] == [newer.id, older.id]
    assert listed["total"] == 2 and listed["next_cursor"] is None
    assert main(["jobs", "list", "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert newer.id in out and older.id not in out and "--cursor" in err

    assert main(["jobs", "cancel", older.id]) == 0
    assert capsys.readouterr().out.strip() == f"{older.id} cancelled"
    assert main(["jobs", "show", older.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "cancelled" and shown["progress"] == {"done": 0, "total": 1}

    assert main(["jobs", "show", "job_missing"]) == 2
    assert "No job with id 'job_missing'" in capsys.readouterr().err


def test_a_worker_started_by_hand_runs_queued_jobs_and_stops_on_sigterm(
    components: Components,
) -> None:
    job = _queued(components)
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--concurrency", "2"],
        env={**os.environ, "PYTHONPATH": str(BACKEND_DIR)},
    )
    try:
        done = poll(lambda: components.jobs.require(job.id), lambda j: j.final, timeout_s=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    assert done.status == "succeeded", done
    assert [(r["filename"], r["outcome"]) for r in done.results] == [("a.md", "indexed")]
    assert code == 0


def test_ingest_shows_files_and_documents_progress(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = env / "문서"
    folder.mkdir()
    (folder / "하나.md").write_text("# 하나\n\n첫 번째 문서.", encoding="utf-8")
    lines = [
        json.dumps({"id": f"r{i}", "text": f"리뷰 {i}번"}, ensure_ascii=False) for i in range(5)
    ]
    (folder / "리뷰.jsonl").write_text("\n".join(lines), encoding="utf-8")
    assert main(["ingest", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "files" in err and "2/2" in err
    assert "documents" in err
    assert "2 files, 0 failed" in err and "indexed" in out
