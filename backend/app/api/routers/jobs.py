"""``/api/jobs``: background jobs (uploads' indexing, fine-tuning), their progress, events, pausing
and cancelling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import AdminDep, ComponentsDep, EditorDep, ReaderDep
from app.api.job_views import JOB_ERRORS, JobId, job_out
from app.api.schemas import JobList, JobOut
from app.api.sse import format_event, sse_response
from app.auth.roles import Caller, Role
from app.components import Components
from app.jobs import finetune_records
from app.jobs.events import follow
from app.jobs.store import MAX_PAGE, Job, not_found

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", response_model=JobList, responses=JOB_ERRORS)
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
    seen = [j for j in page.jobs if _visible(j, components, caller)]
    return JobList(jobs=[job_out(j) for j in seen], total=len(seen), next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=JOB_ERRORS)
async def get_job(job_id: JobId, components: ComponentsDep, caller: ReaderDep) -> JobOut:
    """One job: status, progress, the results so far and, if it failed, why; for a training job
    also its logged steps, ETA, governor state, evaluation and publications."""
    job = await _granted_job(job_id, components, caller)
    return job_out(job, await _metrics(components, job))


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **JOB_ERRORS},
    response_class=StreamingResponse,
)
async def job_events(
    job_id: JobId, components: ComponentsDep, caller: ReaderDep
) -> StreamingResponse:
    """Server-Sent Events: ``progress`` with the job now and at each change, then ``done`` with
    the final job. Comments keep a quiet stream open. Leaving does not stop the job."""
    await _granted_job(job_id, components, caller)

    async def events() -> AsyncIterator[str]:
        last_step = -1
        async for job in follow(components.jobs.conninfo, components.jobs.schema, job_id):
            if job is None:
                yield ": still running\n\n"
                continue
            metrics = await _metrics(components, job, after_step=last_step)
            if metrics:
                last_step = int(metrics[-1]["step"])
            event = "done" if job.final else "progress"
            yield format_event(event, job_out(job, metrics).model_dump(mode="json"))

    return sse_response(events())


@router.post("/{job_id}/cancel", response_model=JobOut, responses=JOB_ERRORS)
async def cancel_job(job_id: JobId, components: ComponentsDep, caller: EditorDep) -> JobOut:
    """Cancel a job. A queued job ends at once; a running one stops at its next step (its events
    say when) and keeps the results of the files it finished; a training job keeps its last
    checkpoint. 409 once it succeeded or failed. Training jobs are cancelled by admins only."""
    job = await _granted_job(job_id, components, caller)
    if job.kind == finetune_records.KIND:
        caller.require(Role.admin)
    return job_out(await run_in_threadpool(components.jobs.cancel, job_id))


@router.post("/{job_id}/pause", response_model=JobOut, responses=JOB_ERRORS)
async def pause_job(job_id: JobId, components: ComponentsDep, caller: AdminDep) -> JobOut:
    """Pause a training job: it saves a checkpoint and idles between steps, across restarts,
    until resumed (its `governor` says when it has paused). 409 for an ingest job or one that
    ended."""
    await _granted_job(job_id, components, caller)
    job = await run_in_threadpool(finetune_records.set_paused, components.jobs, job_id, True)
    return job_out(job, await _metrics(components, job))


@router.post("/{job_id}/resume", response_model=JobOut, responses=JOB_ERRORS)
async def resume_job(job_id: JobId, components: ComponentsDep, caller: AdminDep) -> JobOut:
    """Let a paused training job go on (a schedule or load pause still holds while it applies)."""
    await _granted_job(job_id, components, caller)
    job = await run_in_threadpool(finetune_records.set_paused, components.jobs, job_id, False)
    return job_out(job, await _metrics(components, job))


async def _metrics(
    components: Components, job: Job, *, after_step: int = -1
) -> list[dict[str, Any]]:
    if job.kind != finetune_records.KIND:
        return []
    return await run_in_threadpool(
        finetune_records.metrics, components.jobs, job.id, after_step=after_step
    )


def _visible(job: Job, components: Components, caller: Caller) -> bool:
    """Whether ``caller`` may see ``job``: an ingest job's collection must be granted; training
    jobs belong to no collection, so a key limited to some collections sees none of them."""
    if job.kind == finetune_records.KIND:
        return caller.collections is None
    return caller.may_use(_collection(job, components))


def _collection(job: Job, components: Components) -> str:
    """The collection an ingest job writes to."""
    named = job.payload.get("collection")
    return named if isinstance(named, str) else components.settings.retrieval.default_collection


async def _granted_job(job_id: str, components: Components, caller: Caller) -> Job:
    """The job, or 404 alike for a missing one and one in a collection the key may not use."""
    job = await run_in_threadpool(components.jobs.require, job_id)
    if not _visible(job, components, caller):
        raise not_found(job_id)
    return job
