"""``/api/jobs``: background jobs (uploads' indexing), their progress, events and cancelling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import ComponentsDep, EditorDep, ReaderDep
from app.api.schemas import ErrorDetail, ErrorResponse, JobList, JobOut, JobProgress, UploadResult
from app.api.sse import format_event, sse_response
from app.auth.roles import Caller
from app.components import Components
from app.jobs.events import follow
from app.jobs.store import MAX_PAGE, Job, not_found

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
    caller: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Jobs on one page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=40, description="The `next_cursor` of the page before.")
    ] = None,
) -> JobList:
    """Jobs, newest first, one page at a time, with the number of all jobs.

    A key limited to some collections sees only their jobs: its pages may hold fewer than
    ``limit`` (follow ``next_cursor`` to the end) and ``total`` counts the jobs of this page."""
    page = await run_in_threadpool(components.jobs.page, limit=limit, cursor=cursor)
    if caller.collections is None:
        return JobList(
            jobs=[job_out(j) for j in page.jobs], total=page.total, next_cursor=page.next_cursor
        )
    seen = [j for j in page.jobs if caller.may_use(_collection(j, components))]
    return JobList(jobs=[job_out(j) for j in seen], total=len(seen), next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=_ERRORS)
async def get_job(job_id: JobId, components: ComponentsDep, caller: ReaderDep) -> JobOut:
    """One job: status, progress, the results so far and, if it failed, why."""
    return job_out(await _granted_job(job_id, components, caller))


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    response_class=StreamingResponse,
)
async def job_events(
    job_id: JobId, components: ComponentsDep, caller: ReaderDep
) -> StreamingResponse:
    """Server-Sent Events: ``progress`` with the job now and at each change, then ``done`` with
    the final job. Comments keep a quiet stream open. Leaving does not stop the job."""
    await _granted_job(job_id, components, caller)

    async def events() -> AsyncIterator[str]:
        async for job in follow(components.jobs.conninfo, components.jobs.schema, job_id):
            if job is None:
                yield ": still running\n\n"
            else:
                event = "done" if job.final else "progress"
                yield format_event(event, job_out(job).model_dump(mode="json"))

    return sse_response(events())


@router.post("/{job_id}/cancel", response_model=JobOut, responses=_ERRORS)
async def cancel_job(job_id: JobId, components: ComponentsDep, caller: EditorDep) -> JobOut:
    """Cancel a job. A queued job ends at once; a running one stops at its next step (its events
    say when) and keeps the results of the files it finished. 409 once it succeeded or failed."""
    await _granted_job(job_id, components, caller)
    return job_out(await run_in_threadpool(components.jobs.cancel, job_id))


def _collection(job: Job, components: Components) -> str:
    """The collection an ingest job writes to."""
    named = job.payload.get("collection")
    return named if isinstance(named, str) else components.settings.retrieval.default_collection


async def _granted_job(job_id: str, components: Components, caller: Caller) -> Job:
    """The job, or 404 alike for a missing one and one in a collection the key may not use."""
    job = await run_in_threadpool(components.jobs.require, job_id)
    caller.hide_unless_granted(_collection(job, components), not_found(job_id))
    return job
