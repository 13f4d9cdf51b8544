"""Fine-tuning jobs through the API: a real server, its real training worker and training process,
the tiny model. A job trains to its end with a falling loss, pauses and resumes, is cancelled,
is published to the review writer without a restart, and refuses bad requests by name."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    FinetuneSettings,
    LLMSettings,
    LocalModelSettings,
    ReviewSettings,
    Settings,
)
from app.main import create_app
from tests.utils.live_server import live_server
from tests.utils.workers import FAST_JOBS, final, wait_for_job

# What every job of these tests trains with: the tiny model learns the five sentences quickly.
RECIPE: dict[str, Any] = {
    "micro_batch_size": 5,
    "grad_accum": 1,
    "lr": 1e-2,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "max_seq_len": 512,
    "log_every": 1,
    "save_every": 5,
    "governor": {"niceness": 0, "max_threads": 1},
}
# A training job on a loaded 2-core machine: loading torch and the model, then the steps.
JOB_TIMEOUT_S = 600


@dataclass
class TrainingApi:
    app: FastAPI
    client: httpx.Client
    root: Path

    def dataset(self, path: Path) -> str:
        response = self.client.post("/api/finetune/datasets", json={"path": str(path)})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def start(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/finetune/jobs", json=body)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"/api/jobs/{job_id}").json()
        return job

    def start_slow(self, duty_cycle: float, steps: int, **body: Any) -> dict[str, Any]:
        """A job whose steps are spaced out by the governor (sleeping between steps does not
        change the numbers), once it has done ``steps`` of them."""
        recipe = {**RECIPE, "governor": {**RECIPE["governor"], "duty_cycle": duty_cycle}}
        started = self.start(**{**recipe, **body})
        return wait_for_job(
            self.client,
            started["id"],
            lambda j: j["progress"]["done"] >= steps or final(j),
            timeout_s=JOB_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def training_api(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[TrainingApi]:
    """A server that starts one training worker of its own, as ``rag serve`` does, and writes
    reviews with the tiny model (so that a published adapter can be used at once)."""
    data_dir = tmp_path_factory.mktemp("data")
    settings = Settings(
        database=DatabaseSettings(url=pg_url, data_dir=data_dir),
        llm=LLMSettings(provider="fake", local=LocalModelSettings(device="cpu")),
        review=ReviewSettings(provider="local", model=str(tiny_model_dir)),
        embedding=EmbeddingSettings(provider="hash", dimension=64),
        api=APISettings(index_sample_corpus=False),
        jobs=FAST_JOBS,
        finetune=FinetuneSettings(workers=1, stop_grace_s=60),
    )
    app = create_app(settings, schema=f"ft_{uuid.uuid4().hex[:10]}", frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield TrainingApi(app, client, settings.finetune_dir())


@pytest.fixture(scope="module")
def sentences(training_api: TrainingApi, rating_sentences_file: Path) -> str:
    return training_api.dataset(rating_sentences_file)


def test_a_job_trains_to_its_end_and_its_adapter_writes_reviews_once_published(
    training_api: TrainingApi, sentences: str, tiny_model_dir: Path
) -> None:
    started = training_api.start(
        dataset_id=sentences, model=str(tiny_model_dir), max_steps=30, **RECIPE
    )
    assert started["kind"] == "finetune" and started["status"] == "queued"
    assert started["finetune"]["phase"] == "queued"
    assert started["finetune"]["config"]["max_steps"] == 30
    assert "data" not in started["finetune"]["config"]  # no server paths in the view

    job = wait_for_job(training_api.client, started["id"], final, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"done": 30, "total": 30}
    steps = [point["step"] for point in job["metrics"]]
    assert steps == list(range(1, 31))
    losses = [point["loss"] for point in job["metrics"]]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert all(point["tokens_per_s"] > 0 for point in job["metrics"])
    assert job["finetune"]["phase"] == "done" and job["finetune"]["adapter_ready"]
    assert job["governor"] is None and job["eta_s"] is None

    response = training_api.client.post(
        f"/api/finetune/jobs/{job['id']}/publish", json={"name": "stars"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "stars"
    listed = training_api.client.get("/api/models").json()["reviews"]["adapters"]
    assert "stars" in [adapter["name"] for adapter in listed]
    assert training_api.job(job["id"])["finetune"]["published"] == ["stars"]

    review = training_api.client.post(
        "/api/reviews/generate",
        json={"rating": 10, "adapter": "stars", "n": 1, "max_new_tokens": 16, "temperature": 0},
    )
    assert review.status_code == 200, review.text
    assert review.json()["adapter"] == "stars"


def test_a_paused_job_idles_until_resumed_then_finishes(
    training_api: TrainingApi, sentences: str, tiny_model_dir: Path
) -> None:
    # Spaced-out steps, so that the pause lands mid-run.
    job_id = training_api.start_slow(
        0.2, 2, dataset_id=sentences, model=str(tiny_model_dir), max_steps=20
    )["id"]
    paused = training_api.client.post(f"/api/jobs/{job_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["pause_requested"] is True
    held = wait_for_job(
        training_api.client,
        job_id,
        lambda j: (j["governor"] or {}).get("reason") == "user" or final(j),
        timeout_s=JOB_TIMEOUT_S,
    )
    assert held["status"] == "running" and held["governor"]["state"] == "paused", held
    assert held["progress"]["done"] < 20
    status = json.loads((training_api.root / "jobs" / job_id / "status.json").read_text())
    assert status["state"] == "paused" and status["reason"] == "user"
    # Paused, it saved a checkpoint of the step it had reached.
    checkpoints = training_api.root / "jobs" / job_id / "checkpoints"
    assert f"step-{status['step']:06d}" in {p.name for p in checkpoints.iterdir()}

    resumed = training_api.client.post(f"/api/jobs/{job_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["pause_requested"] is False
    job = wait_for_job(training_api.client, job_id, final, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", job
    assert [p["step"] for p in job["metrics"]] == list(range(1, 21))

    again = training_api.client.post(f"/api/jobs/{job_id}/pause")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_a_cancelled_job_stops_its_training_process(
    training_api: TrainingApi, sentences: str, tiny_model_dir: Path
) -> None:
    job_id = training_api.start_slow(
        0.1, 1, dataset_id=sentences, model=str(tiny_model_dir), max_steps=500
    )["id"]
    response = training_api.client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job = wait_for_job(training_api.client, job_id, final, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "cancelled", job
    status = json.loads((training_api.root / "jobs" / job_id / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] < 500


def test_bad_requests_are_refused_by_name(
    training_api: TrainingApi, sentences: str, tiny_model_dir: Path
) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"dataset_id": sentences, "lrr": 1e-3}, 422, "lrr"),
        ({"dataset_id": sentences, "lr": "fast"}, 422, "lr"),
        ({"dataset_id": sentences, "epochs": -1}, 422, "epochs"),
        ({"dataset_id": sentences, "data": "/etc/passwd"}, 422, "data"),
        ({"dataset_id": sentences, "governor": {"duty_cycle": 2}}, 422, "duty_cycle"),
        ({"dataset_id": sentences, "governor": {"schedule": "25:00-08:00"}}, 422, "schedule"),
        ({"dataset_id": sentences, "device": "tpu"}, 422, "device"),
        ({"dataset_id": sentences, "eval": {"per_rating": 2}}, 422, "eval"),
        ({"model": str(tiny_model_dir)}, 422, "dataset_id"),
        ({"dataset_id": "ds_missing"}, 404, "ds_missing"),
    ]
    for body, status, named in cases:
        response = training_api.client.post("/api/finetune/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        assert named in response.json()["error"]["message"], (body, response.text)
    listed = training_api.client.get("/api/jobs").json()["jobs"]
    assert all(
        job["kind"] != "finetune" or job["finetune"]["dataset_id"] == sentences for job in listed
    )


def test_publishing_before_the_end_or_an_unknown_job_is_refused(training_api: TrainingApi) -> None:
    missing = training_api.client.post("/api/finetune/jobs/job_nope/publish", json={"name": "x"})
    assert missing.status_code == 404
    bad_name = training_api.client.post(
        "/api/finetune/jobs/job_nope/publish", json={"name": "../etc"}
    )
    assert bad_name.status_code == 422


def test_a_job_with_an_evaluation_set_is_evaluated_at_its_end_and_again_on_demand(
    training_api: TrainingApi, tiny_model_dir: Path, nsmc_sample: Path, nsmc_train: Path
) -> None:
    dev = training_api.root.parent / "dev.tsv"
    with gzip.open(nsmc_train, "rt", encoding="utf-8") as source:
        lines = [line for _, line in zip(range(1001), source, strict=False)]
    dev.write_text(lines[0] + "".join(lines[601:]), encoding="utf-8")
    train_id, dev_id = training_api.dataset(nsmc_sample), training_api.dataset(dev)
    evaluation = {
        "per_rating": 1,
        "ratings": [1, 10],
        "max_new_tokens": 4,
        "ppl_samples": 8,
        "classifier_samples": 500,
        "classifier_test_samples": 100,
        "batch_size": 4,
    }
    started = training_api.start(
        dataset_id=train_id,
        eval_dataset_id=dev_id,
        eval=evaluation,
        model=str(tiny_model_dir),
        **{**RECIPE, "max_steps": 4, "micro_batch_size": 2, "max_seq_len": 256},
    )
    job = wait_for_job(training_api.client, started["id"], final, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", job
    report = job["finetune"]["eval"]
    assert report is not None and job["finetune"]["eval_error"] is None, job
    assert set(report["results"]) == {"base", "adapter", "real"}
    assert report["ratings"] == [1, 10] and report["settings"]["per_rating"] == 1
    finished_at = json.loads(
        (training_api.root / "jobs" / job["id"] / "run.json").read_text(encoding="utf-8")
    )["finished_at"]

    again = training_api.client.post(
        f"/api/finetune/jobs/{job['id']}/evaluate", json={"eval": {**evaluation, "per_rating": 2}}
    )
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "queued" and again.json()["finetune"]["eval"] is None
    job = wait_for_job(training_api.client, job["id"], final, timeout_s=JOB_TIMEOUT_S)
    assert job["status"] == "succeeded", job
    assert job["finetune"]["eval"]["settings"]["per_rating"] == 2
    # The training was not run again: the same run, the same logged steps.
    record = json.loads(
        (training_api.root / "jobs" / job["id"] / "run.json").read_text(encoding="utf-8")
    )
    assert record["finished_at"] == finished_at
    assert [p["step"] for p in job["metrics"]] == [1, 2, 3, 4]

    refused = training_api.client.post(
        f"/api/finetune/jobs/{job['id']}/evaluate", json={"eval_dataset_id": "ds_missing"}
    )
    assert refused.status_code == 404

    # Published, the adapter's run record carries the evaluation, as for `rag finetune eval --out`.
    published = training_api.client.post(
        f"/api/finetune/jobs/{job['id']}/publish", json={"name": "judged"}
    )
    assert published.status_code == 200, published.text
    run = published.json()["run"]
    assert run is not None and run["eval"] is not None, run
    assert run["eval"]["rating_consistency"] == report_consistency(job["finetune"]["eval"])


def report_consistency(report: dict[str, Any]) -> float:
    """The adapter's overall rating consistency in an eval report."""
    value: float = report["results"]["adapter"]["rating_consistency"]["overall"]
    return value


def test_training_jobs_on_one_device_take_turns_unless_told_otherwise(
    training_api: TrainingApi, sentences: str, tiny_model_dir: Path
) -> None:
    common = {"dataset_id": sentences, "model": str(tiny_model_dir), "max_steps": 500}
    first = training_api.start_slow(0.1, 1, **common)
    second = training_api.start(**common, governor={"niceness": 0, "max_threads": 1})
    # The job that does not wait for the device runs while the first one does...
    beside = training_api.start_slow(0.1, 1, **common, exclusive=False)
    # ... and the one that does is still waiting its turn.
    assert training_api.job(first["id"])["status"] == "running"
    assert training_api.job(second["id"])["status"] == "queued"
    for job in (first, beside):
        assert training_api.client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    wait_for_job(
        training_api.client,
        second["id"],
        lambda j: j["status"] == "running" or final(j),
        timeout_s=JOB_TIMEOUT_S,
    )
    assert training_api.client.post(f"/api/jobs/{second['id']}/cancel").status_code == 200
    for job in (first, second, beside):
        ended = wait_for_job(training_api.client, job["id"], final, timeout_s=JOB_TIMEOUT_S)
        assert ended["status"] == "cancelled", ended
