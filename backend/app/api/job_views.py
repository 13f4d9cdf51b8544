"""The API's view of a stored job: the common fields, and for a training job its logged steps,
ETA, governor state and run (from the row's ``metrics`` state and ``payload``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from app.api.schemas import (
    ErrorDetail,
    ErrorResponse,
    FinetuneInfo,
    GovernorState,
    JobOut,
    JobProgress,
    UploadResult,
)
from app.jobs.finetune_records import KIND as FINETUNE
from app.jobs.store import Job

JobId = Annotated[str, Path(max_length=100, description="The job's id.")]
# What the routes of one job may answer besides 200.
JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}

# Server paths are not part of a run's view: the data set's id and the job's id name them.
_PATH_SETTINGS = ("data", "output", "cache_dir")


def job_out(job: Job, metrics: list[dict[str, Any]] | None = None) -> JobOut:
    """The API's view of ``job``, with ``metrics`` as its logged steps (training jobs)."""
    out = JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=JobProgress(**job.progress),
        results=[UploadResult.model_validate(result) for result in job.results],
        error=ErrorDetail.model_validate(job.error) if job.error is not None else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
        pause_requested=job.pause_requested,
    )
    if job.kind != FINETUNE:
        return out
    state = job.metrics
    governor = state.get("governor") if job.status == "running" else None
    out.metrics = metrics or []
    out.eta_s = state.get("eta_s") if job.status == "running" else None
    out.governor = GovernorState.model_validate(governor) if governor else None
    out.finetune = finetune_info(job)
    return out


def finetune_info(job: Job) -> FinetuneInfo:
    """A training job's run: what it trains, where it stands, its evaluation and publications."""
    payload, state = job.payload, job.metrics
    config = {k: v for k, v in payload["config"].items() if k not in _PATH_SETTINGS}
    if job.status == "queued":
        phase = "queued"
    elif job.final:
        phase = "done"
    else:
        phase = state.get("phase") or "training"
    eval_error = state.get("eval_error")
    return FinetuneInfo(
        dataset_id=payload["dataset_id"],
        eval_dataset_id=payload.get("eval_dataset_id"),
        model=config["model"],
        method=config["method"],
        config=config,
        device=payload.get("device", "auto"),
        phase=phase,
        adapter_ready=bool(state.get("adapter_ready")),
        eval=state.get("eval"),
        eval_error=ErrorDetail.model_validate(eval_error) if eval_error else None,
        published=list(state.get("published") or []),
    )
