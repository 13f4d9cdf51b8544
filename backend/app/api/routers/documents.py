"""``/api/documents``: upload (indexed by a job), list, inspect and delete documents."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import ComponentsDep, IndexerDep, SettingsDep, StoreDep
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
from app.core.config import Settings
from app.core.errors import InvalidInput, NotFound, TooLarge
from app.core.logger import get_logger
from app.jobs.events import wait_for_end
from app.jobs.ingest import rejected_result
from app.jobs.store import Job, JobFile
from app.retriever.types import DocumentRecord
from app.retriever.vector_store import DocumentKey
from app.text import normalize_line, request_text_problem

log = get_logger(__name__)

router = APIRouter(prefix="/api/documents", tags=["documents"])

DocumentId = Annotated[RequestName, Path(max_length=200, description="The document's id.")]

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
        too_large = TooLarge(
            f"{filename} is {(upload.size or 0) / 1e6:.1f} MB; the limit is "
            f"{settings.api.max_upload_mb:g} MB.",
            code="file_too_large",
        )
        return JobFile(filename, result=rejected_result(filename, too_large))
    return JobFile(filename, data=data)


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
)
async def upload_documents(
    files: Annotated[list[UploadFile], File(description="One or more files to index.")],
    components: ComponentsDep,
    settings: SettingsDep,
    collection: Annotated[RequestName | None, Form(max_length=100)] = None,
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
    """
    if len(files) > settings.api.max_files:
        raise TooLarge(
            f"{len(files)} files in one request; the limit is {settings.api.max_files}.",
            code="too_many_files",
        )
    max_bytes = int(settings.api.max_upload_mb * 1024 * 1024)
    job_files = []
    for upload in files:
        fits = upload.size is None or upload.size <= max_bytes
        job_files.append(_job_file(upload, await upload.read() if fits else None, settings))
    jobs = components.jobs
    job = await run_in_threadpool(jobs.create, "ingest", {"collection": collection}, job_files)
    if not wait:
        return JSONResponse(UploadAccepted(job_id=job.id).model_dump(), status_code=202)
    return _job_answer(await wait_for_end(jobs.conninfo, jobs.schema, job.id))


@router.get("", response_model=DocumentList, responses=_ERRORS)
async def list_documents(
    store: StoreDep,
    collection: Annotated[RequestName | None, Query(max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DocumentList:
    """Documents (optionally of one collection), newest first, with their indexing status, a
    page at a time: ``total`` counts them all, ``next_cursor`` asks for the next page (none on
    the last). Paging lists each document that existed at the first page once."""
    after = DocumentKey(*decode_cursor(cursor)) if cursor is not None else None
    page = await run_in_threadpool(store.page_documents, collection, limit=limit, after=after)
    next_cursor = encode_cursor(*page.next_after) if page.next_after is not None else None
    return DocumentList(
        documents=[_document_out(r) for r in page.documents],
        total=page.total,
        next_cursor=next_cursor,
    )


@router.get("/{document_id}", response_model=DocumentOut, responses=_ERRORS)
async def get_document(document_id: DocumentId, store: StoreDep) -> DocumentOut:
    """One document and its status (``failed`` documents carry the reason in ``error``)."""
    record = await run_in_threadpool(store.get_document, document_id)
    if record is None:
        raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")
    return _document_out(record)


@router.delete("/{document_id}", status_code=204, responses=_ERRORS)
async def delete_document(document_id: DocumentId, indexer: IndexerDep) -> Response:
    """Delete a document and all its chunks."""
    await run_in_threadpool(indexer.delete, document_id)
    return Response(status_code=204)
