"""The LoRA step of `make bench-reviews`: one recipe, trained as a job through the API or, where the
server has no fine-tuning jobs, by `rag finetune train` in a subprocess.

The API path is the product's own: a live server on an embedded PostgreSQL in a temporary folder
starts its training worker, the reviews are uploaded as data sets, the job is started and followed
on ``GET /api/jobs/{id}`` to its end, and its stored evaluation report is the result.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "backend"

# A job on a loaded 2-core machine: loading torch, training, then evaluating.
JOB_TIMEOUT_S = 3600


@dataclass
class LoraResult:
    """Where the adapter is, how it was trained, and the evaluation report when the job made one."""

    via: str
    adapter: Path
    seconds: float
    steps: int
    losses: list[float]
    run: dict[str, Any]
    eval_report: dict[str, Any] | None


def api_has_finetune_jobs() -> bool:
    """Whether this checkout's server answers ``POST /api/finetune/jobs`` (and data sets)."""
    from app.main import create_app

    paths = create_app(frontend_dir=None).openapi()["paths"]
    return "/api/finetune/jobs" in paths and "/api/finetune/datasets" in paths


def train_via_cli(
    base: Path, train_file: Path, output: Path, recipe: dict[str, Any]
) -> LoraResult:
    """`rag finetune train` with ``recipe`` as flags, in a subprocess."""
    command = [
        sys.executable, "-m", "app.cli", "finetune", "train", "--model", str(base),
        "--data", str(train_file), "--output", str(output), *recipe_flags(recipe),
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=BACKEND, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"rag finetune train failed:\n{completed.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    log = [
        json.loads(line)
        for line in (output / "train_log.jsonl").read_text().splitlines()
    ]
    run = json.loads((output / "run.json").read_text(encoding="utf-8"))
    return LoraResult(
        via="cli",
        adapter=output,
        seconds=seconds,
        steps=int(run.get("steps") or log[-1]["step"]),
        losses=[float(entry["loss"]) for entry in log if "loss" in entry],
        run=run,
        eval_report=None,
    )


def recipe_flags(recipe: dict[str, Any]) -> list[str]:
    """The `rag finetune train` flags of a recipe written with the API's field names."""
    from app.recipes.data import DataOptions
    from app.recipes.governor_settings import GovernorSettings
    from app.recipes.settings_fields import flag_of
    from app.recipes.train_config import TrainConfig

    nested = {"data_options": DataOptions, "governor": GovernorSettings}
    flags: list[str] = []
    for cls, values in [(TrainConfig, recipe)] + [
        (c, recipe.get(k, {})) for k, c in nested.items()
    ]:
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        for name, value in values.items():
            if name in nested and cls is TrainConfig:
                continue
            flag = flag_of(by_name[name])
            if isinstance(value, bool):
                flags.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                flags += [f"--{flag}", str(value)]
    return flags


def train_via_api(
    base: Path,
    train_file: Path,
    dev_file: Path,
    work: Path,
    recipe: dict[str, Any],
    eval_settings: dict[str, Any],
) -> LoraResult:
    """Upload the reviews, start the job with ``recipe``, follow it to its end (evaluation
    included) and return its adapter and report."""
    import httpx
    from app.tuning.training_jobs import jobs_dir

    with (
        _server(work) as (url, root),
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        train_id = _upload(client, train_file)
        dev_id = _upload(client, dev_file)
        body = {
            **recipe,
            "dataset_id": train_id,
            "eval_dataset_id": dev_id,
            "model": str(base),
            "device": "cpu",
            "eval": eval_settings,
        }
        started = time.perf_counter()
        response = client.post("/api/finetune/jobs", json=body)
        if response.status_code != 201:
            raise SystemExit(
                f"POST /api/finetune/jobs: {response.status_code} {response.text}"
            )
        job = _follow(client, response.json()["id"])
        seconds = time.perf_counter() - started
        if job["status"] != "succeeded":
            raise SystemExit(
                f"the fine-tuning job ended {job['status']}: {job.get('error')}"
            )
        finetune = job["finetune"]
        adapter = jobs_dir(root) / job["id"]
    run = json.loads((adapter / "run.json").read_text(encoding="utf-8"))
    return LoraResult(
        via="api",
        adapter=adapter,
        seconds=seconds,
        steps=int(job["progress"]["done"]),
        losses=[float(point["loss"]) for point in job["metrics"]],
        run=run,
        eval_report=finetune.get("eval"),
    )


@contextmanager
def _server(work: Path) -> Iterator[tuple[str, Path]]:
    """The app on its embedded database in ``work``, with one training worker of its own: its
    URL and its fine-tuning folder."""
    from app.core.config import (
        APISettings,
        DatabaseSettings,
        EmbeddingSettings,
        FinetuneSettings,
        LLMSettings,
        Settings,
    )
    from app.main import create_app
    from tests.utils.live_server import live_server

    settings = Settings(
        database=DatabaseSettings(data_dir=work / "data"),
        llm=LLMSettings(provider="fake"),
        embedding=EmbeddingSettings(provider="hash", dimension=64),
        api=APISettings(
            index_sample_corpus=False, max_upload_mb=64.0, log_level="WARNING"
        ),
        finetune=FinetuneSettings(workers=1),
    )
    app = create_app(settings, frontend_dir=None)
    with live_server(app, startup_timeout_s=300) as url:
        yield url, settings.finetune_dir()


def _upload(client: Any, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post(
            "/api/finetune/datasets",
            files={"file": (path.name, f, "application/octet-stream")},
            data={"name": path.stem},
        )
    if response.status_code != 201:
        raise SystemExit(
            f"uploading {path.name}: {response.status_code} {response.text}"
        )
    dataset = response.json()
    print(
        f"data set {dataset['name']}: {dataset['report']['kept']:,} reviews kept",
        flush=True,
    )
    return str(dataset["id"])


def _follow(client: Any, job_id: str) -> dict[str, Any]:
    """``GET /api/jobs/{id}`` until the job ends, printing each change of phase or progress."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    shown: tuple[Any, ...] = ()
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        phase = (job.get("finetune") or {}).get("phase")
        progress = job.get("progress") or {}
        now = (job["status"], phase, progress.get("done"))
        if now != shown:
            loss = job["metrics"][-1]["loss"] if job.get("metrics") else None
            print(
                f"job {job['status']} ({phase}): step {progress.get('done')}/"
                f"{progress.get('total')}"
                + (f", loss {loss:.3f}" if loss is not None else ""),
                flush=True,
            )
            shown = now
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"the job did not end within {JOB_TIMEOUT_S} s: {job}")
        time.sleep(2)
