"""``/api/documents``: upload (index), list, inspect and delete documents."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import IndexerDep, SettingsDep, StoreDep
from app.api.schemas import (
    DocumentList,
    DocumentOut,
    ErrorDetail,
    ErrorResponse,
    RequestName,
    UploadResponse,
    UploadResult,
)
from app.core.config import Settings
from app.core.errors import InvalidInput, NotFound, RagError, TooLarge, Unavailable
from app.core.logger import get_logger
from app.retriever.indexer import Indexer, failure_reason
from app.retriever.types import DocumentRecord, IngestResult
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


def _rejected(filename: str, error: RagError) -> tuple[UploadResult, int]:
    detail = ErrorDetail(code=error.code, message=error.message, params=error.params)
    return UploadResult(filename=filename, document_id=None, outcome="rejected", error=detail), (
        error.status_code
    )


def _upload_result(filename: str, outcome: IngestResult) -> UploadResult:
    error = ErrorDetail(code="indexing_failed", message=outcome.error) if outcome.error else None
    return UploadResult(
        filename=filename,
        document_id=outcome.document_id,
        outcome=outcome.outcome,
        chunks=outcome.chunks,
        error=error,
    )


async def _ingest_upload(
    upload: UploadFile, indexer: Indexer, settings: Settings, collection: str | None
) -> tuple[list[UploadResult], int | None]:
    """The results of one uploaded file, and its rejection's status (``None``: not rejected).

    Whatever goes wrong with this file is its own result; only an outage of a dependency
    (``Unavailable``) fails the whole request.
    """
    filename = PurePath(upload.filename or "").name or "upload"
    if (problem := request_text_problem(filename)) is not None:
        result, status = _rejected(
            normalize_line(filename), InvalidInput(f"The file name {problem}.")
        )
        return [result], status
    filename = normalize_line(filename) or "upload"
    max_bytes = int(settings.api.max_upload_mb * 1024 * 1024)
    if upload.size is not None and upload.size > max_bytes:
        result, status = _rejected(
            filename,
            TooLarge(
                f"{filename} is {upload.size / 1e6:.1f} MB; the limit is "
                f"{settings.api.max_upload_mb:g} MB.",
                code="file_too_large",
            ),
        )
        return [result], status
    data = await upload.read()
    try:
        outcomes = await run_in_threadpool(
            indexer.ingest_bytes, filename, data, collection=collection
        )
    except Unavailable:
        raise
    except RagError as exc:
        result, status = _rejected(filename, exc)
        return [result], status
    # A bug in a loader or below: this file failed, the others of the request go on.
    except Exception as exc:
        log.exception("indexing the upload %s failed", filename)
        outcomes = [IngestResult(None, filename, "failed", error=failure_reason(exc))]
    return [_upload_result(filename, outcome) for outcome in outcomes], None


@router.post("", response_model=UploadResponse, responses=_ERRORS)
async def upload_documents(
    files: Annotated[list[UploadFile], File(description="One or more files to index.")],
    indexer: IndexerDep,
    settings: SettingsDep,
    collection: Annotated[RequestName | None, Form(max_length=100)] = None,
):
    """Index uploaded files. The type comes from the file name and content, not the content type.

    Each file gets its own result (``indexed``, ``unchanged``, ``failed``, ``rejected`` + why), and
    a file that fails never affects the others. When every file is rejected the response
    carries the first rejection's status (413, 415 or 422).
    """
    if len(files) > settings.api.max_files:
        raise TooLarge(
            f"{len(files)} files in one request; the limit is {settings.api.max_files}.",
            code="too_many_files",
        )
    results: list[UploadResult] = []
    statuses: list[int] = []
    for upload in files:
        file_results, status = await _ingest_upload(upload, indexer, settings, collection)
        results += file_results
        if status is not None:
            statuses.append(status)
    body = UploadResponse(results=results)
    if results and all(r.outcome == "rejected" for r in results):
        first = results[0].error
        assert first is not None
        payload = {"error": first.model_dump(), **body.model_dump()}
        return JSONResponse(payload, status_code=statuses[0])
    return body


@router.get("", response_model=DocumentList, responses=_ERRORS)
async def list_documents(
    store: StoreDep,
    collection: Annotated[RequestName | None, Query(max_length=100)] = None,
) -> DocumentList:
    """All documents (optionally of one collection), newest first, with their indexing status."""
    records = await run_in_threadpool(store.list_documents, collection)
    return DocumentList(documents=[_document_out(r) for r in records])


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
