"""``rag serve`` killed with SIGKILL in the middle of a training job, then started again: the job
continues from its last checkpoint and its losses are those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main
from tests.utils.live_server import free_port
from tests.utils.workers import final, poll

BACKEND = Path(__file__).resolve().parents[2]
STEPS = 16
RECIPE: dict[str, Any] = {
    "max_steps": STEPS,
    "save_every": 4,
    "micro_batch_size": 2,
    "grad_accum": 2,
    "max_seq_len": 256,
    "lr": 3e-3,
    "lora_dropout": 0.1,
    "log_every": 1,
}


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's basetemp (see tests/cli/test_serve.py): the embedded server runs as
    # its own user when tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="rag-train-restart-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "LLM_", "EMBEDDING_", "API_", "RAG_", "JOBS_", "REVIEW_"))
    }
    env.update(
        {
            "PYTHONPATH": str(BACKEND),
            "RAG_DATA_DIR": str(home / "data"),
            "LLM_PROVIDER": "fake",
            "REVIEW_PROVIDER": "none",
            "EMBEDDING_PROVIDER": "hash",
            "API_INDEX_SAMPLE_CORPUS": "false",
            "FINETUNE_WORKERS": "1",
            "JOBS_SERVE_WORKERS": "0",
            "JOBS_HEARTBEAT_S": "0.5",
            "JOBS_STALLED_AFTER_S": "5",
            "JOBS_POLL_S": "0.2",
        }
    )
    with log.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=home,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def answer() -> int:
        assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        try:
            return httpx.get(f"{url}/ready", timeout=5).status_code
        except httpx.TransportError:
            return 0

    poll(answer, lambda status: status == 200, timeout_s=300)


def _job(url: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
    return job


def _reference_losses(tmp_path: Path, model: Path, data: Path) -> list[float]:
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in RECIPE.items()]
    output = tmp_path / "reference"
    args = ["finetune", "train", "--model", str(model), "--data", str(data)]
    quiet = ["--nice", "0", "--max-threads", "1", "--no-progress"]
    assert main([*args, "--output", str(output), *flags, *quiet]) == 0
    lines = (output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_a_job_survives_a_killed_server_and_follows_the_uninterrupted_curve(
    home: Path, tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "serve.log"
    server = _serve(home, port, log)
    try:
        _ready(url, server, log)
        dataset = httpx.post(
            f"{url}/api/finetune/datasets", json={"path": str(nsmc_sample)}, timeout=120
        )
        assert dataset.status_code == 201, dataset.text
        body = {
            "dataset_id": dataset.json()["id"],
            "model": str(tiny_model_dir),
            **RECIPE,
            # Sleeping between steps spaces them out so the kill lands mid-run; it does not
            # change the numbers.
            "governor": {"niceness": 0, "max_threads": 1, "duty_cycle": 0.2},
        }
        started = httpx.post(f"{url}/api/finetune/jobs", json=body, timeout=60)
        assert started.status_code == 201, started.text
        job_id = started.json()["id"]
        job = poll(
            lambda: _job(url, job_id),
            lambda j: j["progress"]["done"] > 5 or final(j),
            timeout_s=600,
        )
        assert job["status"] == "running", job
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    # Its worker has lost the server: the training process saves a checkpoint and stops.
    folder = home / "data" / "finetune" / "jobs" / job_id
    stopped = poll(
        lambda: json.loads((folder / "status.json").read_text(encoding="utf-8")),
        lambda status: status["state"] == "stopped",
        timeout_s=300,
    )
    assert stopped["step"] < STEPS

    server = _serve(home, port, log)
    try:
        _ready(url, server, log)
        job = poll(lambda: _job(url, job_id), final, timeout_s=900)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=180)
    assert job["status"] == "succeeded", (job, log.read_text(encoding="utf-8", errors="replace"))
    got = [(point["step"], point["loss"]) for point in job["metrics"]]
    assert [step for step, _ in got] == list(range(1, STEPS + 1))
    expected = _reference_losses(tmp_path, tiny_model_dir, nsmc_sample)
    for (step, loss), want in zip(got, expected, strict=True):
        assert abs(loss - want) <= 1e-6 * max(1.0, abs(want)), f"step {step}: {loss} != {want}"
