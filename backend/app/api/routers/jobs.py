"""``/api/jobs``: background jobs (uploads' indexing), their progress, events and cancelling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import ComponentsDep
from app.api.schemas import ErrorDetail, ErrorResponse, JobList, JobOut, JobProgress, UploadResult
from app.api.sse import format_event, sse_response
from app.jobs.events import follow
from app.jobs.store import MAX_PAGE, Job

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[str, Path(max_length=100, description="The job's id.")]

_ERRORS = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def job_out(job: Job) -> JobOut:
    """The API's view of a stored job."""
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=JobProgress(**job.progress),
        results=[UploadResult.model_validate(result) for result in job.results],
        error=ErrorDetail.model_validate(job.error) if job.error is not None else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


@router.get("", response_model=JobList, responses=_ERRORS)
async def list_jobs(
    components: ComponentsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Jobs on one page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=40, description="The `next_cursor` of the page before.")
    ] = None,
) -> JobList:
    """Jobs, newest first, one page at a time, with the number of all jobs."""
    page = await run_in_threadpool(components.jobs.page, limit=limit, cursor=cursor)
    return JobList(
        jobs=[job_out(j) for j in page.jobs], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, responses=_ERRORS)
async def get_job(job_id: JobId, components: ComponentsDep) -> JobOut:
    """One job: status, progress, the results so far and, if it failed, why."""
    return job_out(await run_in_threadpool(components.jobs.require, job_id))


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    response_class=StreamingResponse,
)
async def job_events(job_id: JobId, components: ComponentsDep) -> StreamingResponse:
    """Server-Sent Events: ``progress`` with the job now and at each change, then ``done`` with
    the final job. Comments keep a quiet stream open. Leaving does not stop the job."""
    await run_in_threadpool(components.jobs.require, job_id)

    async def events() -> AsyncIterator[str]:
        async for job in follow(components.jobs.conninfo, components.jobs.schema, job_id):
            if job is None:
                yield ": still running\n\n"
            else:
                event = "done" if job.final else "progress"
                yield format_event(event, job_out(job).model_dump(mode="json"))

    return sse_response(events())


@router.post("/{job_id}/cancel", response_model=JobOut, responses=_ERRORS)
async def cancel_job(job_id: JobId, components: ComponentsDep) -> JobOut:
    """Cancel a job. A queued job ends at once; a running one stops at its next step (its events
    say when) and keeps the results of the files it finished. 409 once it succeeded or failed."""
    return job_out(await run_in_threadpool(components.jobs.cancel, job_id))
