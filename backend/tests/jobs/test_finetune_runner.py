"""The worker's side of a fine-tuning job, in process with a real job store: whatever goes wrong
ends the job with the reason, and text the training wrote is stored even when it holds NUL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.components import Components
from app.core.config import FinetuneSettings, Settings
from app.jobs import finetune_records
from app.jobs.finetune import FinetuneRunner
from app.jobs.store import Job
from tests.api.conftest import make_settings
from tests.conftest import drop_schema, new_schema_name


@pytest.fixture
def components(pg_url: str, tmp_path: Path) -> Iterator[Components]:
    schema = new_schema_name("ftrun")
    settings: Settings = make_settings(pg_url, tmp_path / "data")
    parts = Components(settings, schema=schema)
    yield parts
    parts.close()
    drop_schema(pg_url, schema)


def _job(components: Components, output: Path, config: dict[str, Any]) -> Job:
    payload = {
        "dataset_id": "ds_test",
        "output_dir": str(output),
        "device": "cpu",
        "config": config,
        "evaluation": None,
    }
    return components.jobs.create("finetune", payload, total=4)


def _run(components: Components, job: Job) -> Job:
    runner = FinetuneRunner(
        components.jobs, FinetuneSettings(stop_grace_s=30), threading.Event(), poll_s=0.2
    )
    runner.run(job.id)
    return components.jobs.require(job.id)


def test_a_folder_that_cannot_be_made_fails_the_job_with_the_reason(
    components: Components, tmp_path: Path
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a folder", encoding="utf-8")
    job = _run(components, _job(components, taken, {"data": "x", "output": str(taken)}))
    assert job.status == "failed"
    assert job.error is not None and job.error["code"] == "internal_error"
    assert "FileExistsError" in job.error["message"]


def test_a_training_that_fails_ends_the_job_with_its_own_error(
    components: Components, tmp_path: Path
) -> None:
    data = tmp_path / "reviews.jsonl"
    data.write_text('{"review": "좋다", "rating": 9}\n', encoding="utf-8")
    output = tmp_path / "job"
    config = {"model": str(tmp_path / "no-such-model"), "data": str(data), "output": str(output)}
    job = _run(components, _job(components, output, config))
    assert job.status == "failed", job
    assert job.error is not None and job.error["code"] != "internal_error", job.error
    assert "no-such-model" in job.error["message"]
    assert job.metrics["phase"] == "done"


def test_text_with_nul_from_the_training_is_stored_cleaned(
    components: Components, tmp_path: Path
) -> None:
    job = _job(components, tmp_path / "job", {"data": "x", "output": str(tmp_path / "job")})
    claimed = components.jobs.claim(job.id)
    assert claimed is not None
    _, lease = claimed
    entries = [{"step": 1, "loss": 2.5, "note": "a\x00b"}]
    finetune_records.sync(
        components.jobs,
        job.id,
        lease,
        progress={"done": 1, "total": 4},
        state={"phase": "training", "sample": "리뷰\x00"},
        entries=entries,
    )
    finetune_records.set_state(components.jobs, job.id, {"eval": {"samples": ["최고\x00다"]}})
    stored = components.jobs.require(job.id)
    assert stored.metrics["sample"] == "리뷰" and stored.metrics["eval"] == {"samples": ["최고다"]}
    assert finetune_records.metrics(components.jobs, job.id) == [
        {"step": 1, "loss": 2.5, "note": "ab"}
    ]
