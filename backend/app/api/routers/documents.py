"""``/api/documents``: upload (indexed by a job), list, inspect and delete documents."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import (
    ComponentsDep,
    EditorDep,
    IndexerDep,
    ReaderDep,
    SettingsDep,
    StoreDep,
    rate_limited,
)
from app.api.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from app.api.schemas import (
    DocumentList,
    DocumentOut,
    ErrorDetail,
    ErrorResponse,
    RequestName,
    UploadAccepted,
    UploadResponse,
    UploadResult,
)
from app.auth.roles import Caller
from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound, TooLarge, Unavailable
from app.core.logger import get_logger
from app.jobs.events import wait_for_end
from app.jobs.ingest import rejected_result
from app.jobs.store import Job, JobFile, JobStore
from app.retriever.types import DocumentRecord
from app.retriever.vector_store import DocumentKey
from app.text import normalize_line, request_text_problem

log = get_logger(__name__)

router = APIRouter(prefix="/api/documents", tags=["documents"])

DocumentId = Annotated[RequestName, Path(max_length=200, description="The document's id.")]
DocumentCollection = Annotated[
    RequestName | None,
    Query(
        max_length=100,
        description="The document's collection; needed only when the id is in several of the "
        "collections the key may use.",
    ),
]
_REPLACE = (
    "Remove the documents an earlier upload of the same file held that it no longer holds "
    "(a line taken out of a .jsonl). Without it an upload adds and updates, and removes nothing."
)

_ERRORS = {
    404: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def _document_out(record: DocumentRecord) -> DocumentOut:
    return DocumentOut(**dataclasses.asdict(record))


def _job_file(upload: UploadFile, data: bytes | None, settings: Settings) -> JobFile:
    """What the job gets of one uploaded file: its bytes, or the reason it is refused already."""
    filename = PurePath(upload.filename or "").name or "upload"
    if (problem := request_text_problem(filename)) is not None:
        name = normalize_line(filename)
        return JobFile(
            name, result=rejected_result(name, InvalidInput(f"The file name {problem}."))
        )
    filename = normalize_line(filename) or "upload"
    if data is None:
        too_large = TooLarge.file(filename, upload.size or 0, settings.api.max_upload_bytes)
        return JobFile(filename, result=rejected_result(filename, too_large))
    return JobFile(filename, data=data)


def _served(request: Request, jobs: JobStore, settings: Settings) -> bool:
    """Whether a worker will run a new job: one this server started, or one anywhere whose
    heartbeat is recent (a worker taken for dead counts as none)."""
    if request.app.state.worker_processes.pids:
        return True
    return jobs.live_workers(settings.jobs.stalled_after_s) > 0


def _no_worker(job: Job) -> Unavailable:
    return Unavailable(
        f"No worker is running to index the upload. Job {job.id} stays queued and runs when one "
        "starts: run `rag worker` (or `rag serve` with JOBS_SERVE_WORKERS above 0) and follow "
        f"the job at /api/jobs/{job.id}.",
        code="no_worker",
        params={"id": job.id},
    )


def _job_answer(job: Job) -> UploadResponse | JSONResponse:
    """The synchronous upload's answer, from its job's end."""
    if job.status == "failed":
        assert job.error is not None
        detail = ErrorDetail.model_validate(job.error)
        return JSONResponse({"error": detail.model_dump()}, status_code=job.error["status"])
    body = UploadResponse(results=[UploadResult.model_validate(r) for r in job.results])
    if job.status == "cancelled":
        cancelled = ErrorDetail(
            code="job_cancelled",
            message=f"Job {job.id} was cancelled; the results are those of the files done before.",
            params={"id": job.id},
        )
        return JSONResponse({"error": cancelled.model_dump(), **body.model_dump()}, status_code=409)
    if body.results and all(r.outcome == "rejected" for r in body.results):
        first = body.results[0].error
        assert first is not None
        status = next(r["status"] for r in job.results if r["outcome"] == "rejected")
        return JSONResponse({"error": first.model_dump(), **body.model_dump()}, status_code=status)
    return body


@router.post(
    "",
    response_model=UploadResponse,
    responses={202: {"model": UploadAccepted}, 409: {"model": ErrorResponse}, **_ERRORS},
    dependencies=[rate_limited("uploads")],
)
async def upload_documents(
    request: Request,
    files: Annotated[list[UploadFile], File(description="One or more files to index.")],
    components: ComponentsDep,
    settings: SettingsDep,
    caller: EditorDep,
    collection: Annotated[RequestName | None, Form(max_length=100)] = None,
    replace_form: Annotated[bool, Form(alias="replace", description=_REPLACE)] = False,
    replace_query: Annotated[bool, Query(alias="replace", description=_REPLACE)] = False,
    wait: Annotated[
        bool,
        Query(description="Wait for the indexing job and answer its results (false: 202 at once)."),
    ] = True,
):
    """Index uploaded files. The type comes from the file name and content, not the content type.

    The files are indexed by a background job that goes on whatever happens to this request.
    By default the request waits for it: each file gets its own result (``indexed``,
    ``unchanged``, ``failed``, ``rejected`` + why), and a file that fails never affects the
    others. When every file is rejected the response carries the first rejection's status
    (413, 415 or 422); a job cancelled meanwhile answers 409 with the results it got to. With
    ``wait=false`` the answer is 202 ``{"job_id"}`` at once: follow ``/api/jobs/{job_id}``.
    With no worker running, a waiting upload answers 503 ``no_worker`` at once; its job (the
    error's ``params.id``) stays queued and runs when a worker starts. ``replace=true`` (a form
    field or a query parameter) makes each file replace what it held before; by default an
    upload never removes a document.
    """
    if len(files) > settings.api.max_files:
        raise TooLarge(
            f"{len(files)} files in one request; the limit is {settings.api.max_files}.",
            code="too_many_files",
        )
    max_bytes = settings.api.max_upload_bytes
    job_files = []
    for upload in files:
        fits = upload.size is None or upload.size <= max_bytes
        job_files.append(_job_file(upload, await upload.read() if fits else None, settings))
    jobs = components.jobs
    payload = {"collection": caller.scope(collection), "replace": replace_form or replace_query}
    job = await run_in_threadpool(jobs.create, "ingest", payload, job_files)
    if not wait:
        return JSONResponse(UploadAccepted(job_id=job.id).model_dump(), status_code=202)
    if not await run_in_threadpool(_served, request, jobs, settings):
        raise _no_worker(job)
    return _job_answer(await wait_for_end(jobs.conninfo, jobs.schema, job.id))


@router.get("", response_model=DocumentList, responses=_ERRORS)
async def list_documents(
    store: StoreDep,
    caller: ReaderDep,
    collection: Annotated[RequestName | None, Query(max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DocumentList:
    """Documents (optionally of one collection), newest first, with their indexing status, a
    page at a time: ``total`` counts them all, ``next_cursor`` asks for the next page (none on
    the last). Paging lists each document that existed at the first page once."""
    after = DocumentKey(*decode_cursor(cursor)) if cursor is not None else None
    scope = caller.scope(collection)
    page = await run_in_threadpool(store.page_documents, scope, limit=limit, after=after)
    next_cursor = encode_cursor(*page.next_after) if page.next_after is not None else None
    return DocumentList(
        documents=[_document_out(r) for r in page.documents],
        total=page.total,
        next_cursor=next_cursor,
    )


_BY_ID_ERRORS = {403: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, **_ERRORS}


@router.get("/{document_id}", response_model=DocumentOut, responses=_BY_ID_ERRORS)
async def get_document(
    document_id: DocumentId,
    store: StoreDep,
    caller: ReaderDep,
    collection: DocumentCollection = None,
) -> DocumentOut:
    """One document and its status (``failed`` documents carry the reason in ``error``).

    The same id in two collections is two documents. Without ``collection`` the id is looked
    up in the collections the key may use: 404 when none holds it, 409 ``document_ambiguous``
    when several do. A collection the key may not use is 403, whatever it holds.
    """
    return _document_out(await _granted_document(document_id, collection, store, caller))


@router.delete("/{document_id}", status_code=204, responses=_BY_ID_ERRORS)
async def delete_document(
    document_id: DocumentId,
    indexer: IndexerDep,
    store: StoreDep,
    caller: EditorDep,
    collection: DocumentCollection = None,
) -> Response:
    """Delete a document and all its chunks; ``collection`` as for reading one."""
    record = await _granted_document(document_id, collection, store, caller)
    await run_in_threadpool(indexer.delete, document_id, collection=record.collection)
    return Response(status_code=204)


async def _granted_document(
    document_id: str, collection: str | None, store: StoreDep, caller: Caller
) -> DocumentRecord:
    """The document, or 404 alike for a missing one and one in a collection the key may not use;
    no error names a collection the caller did not name or may not use."""
    missing = NotFound(f"No document with id {document_id!r}.", code="document_not_found")
    if collection is not None:
        caller.require_collection(collection)
        record = await run_in_threadpool(store.get_document, document_id, collection=collection)
        if record is None:
            raise missing
        return record
    found = await run_in_threadpool(store.documents_with_id, document_id)
    granted = [record for record in found if caller.may_use(record.collection)]
    if not granted:
        raise missing
    if len(granted) > 1:
        raise Conflict(
            f"Several collections hold a document with id {document_id!r} "
            f"({', '.join(r.collection for r in granted)}); name one with ?collection=.",
            code="document_ambiguous",
            params={"document_id": document_id},
        )
    return granted[0]
