"""``/api/finetune/jobs``: start a fine-tuning job, evaluate it again, publish its adapter.

A job is then followed, paused, resumed and cancelled like any job, under ``/api/jobs``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from app.api.deps import AdminDep, ComponentsDep, ServedAdaptersDep
from app.api.job_views import JOB_ERRORS, JobId, job_out
from app.api.routers.models import adapter_info
from app.api.schemas import AdapterInfo, JobOut, PublishRequest
from app.tuning import training_jobs

router = APIRouter(prefix="/api/finetune/jobs", tags=["fine-tuning"])


_JOB_EXAMPLE = {
    "dataset_id": "ds_0123456789abcdef",
    "eval_dataset_id": None,
    "method": "lora",
    "epochs": 1.0,
    "lr": 2e-4,
    "lora_r": 16,
    "governor": {"schedule": "22:00-08:00", "max_cpu_load": 0.5, "niceness": 10},
}


@router.post("", response_model=JobOut, status_code=201, responses=JOB_ERRORS)
async def start_job(
    components: ComponentsDep,
    _: AdminDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description="`dataset_id`, optionally `eval_dataset_id`, `eval` (evaluation "
            "settings), `device` (auto, cpu, cuda:N) and `exclusive` (default true: one training "
            "job per device at a time), and any field of `rag finetune train`'s recipe under its "
            "own name (`model`, `method`, `epochs`, `lr`, ..., `data_options`, `governor`). "
            "Unknown fields, wrong types and values out of range are refused by name.",
            openapi_examples={"lora": {"value": _JOB_EXAMPLE}},
        ),
    ],
) -> JobOut:
    """Queue a fine-tuning job. It runs in a training worker, never in the API process, one per
    device at a time; follow it with `GET /api/jobs/{id}` or its events."""
    job = await run_in_threadpool(
        training_jobs.start_job,
        body,
        datasets=components.datasets,
        jobs=components.jobs,
        root=components.settings.finetune_dir(),
    )
    return job_out(job)


@router.post("/{job_id}/evaluate", response_model=JobOut, status_code=202, responses=JOB_ERRORS)
async def evaluate_job(
    job_id: JobId,
    components: ComponentsDep,
    _: AdminDep,
    body: Annotated[
        dict[str, Any],
        Body(description="Optionally `eval_dataset_id` and `eval` (evaluation settings)."),
    ],
) -> JobOut:
    """Evaluate a finished job again (on another data set, or with other settings): the job
    goes back to the queue for its evaluation only, and the new report replaces the old."""
    job = await run_in_threadpool(
        training_jobs.evaluate_again,
        job_id,
        body,
        datasets=components.datasets,
        jobs=components.jobs,
    )
    return job_out(job)


@router.post("/{job_id}/publish", response_model=AdapterInfo, responses=JOB_ERRORS)
async def publish_job(
    job_id: JobId,
    body: PublishRequest,
    components: ComponentsDep,
    adapters: ServedAdaptersDep,
    caller: AdminDep,
) -> AdapterInfo:
    """Serve the adapter of a job that succeeded to the review writer as `name`, without a
    restart (as `POST /api/models/adapters` with the job's folder). 409 before it succeeded."""
    served = await run_in_threadpool(
        training_jobs.publish, job_id, body.name, jobs=components.jobs, adapters=adapters
    )
    return adapter_info(served, caller)
