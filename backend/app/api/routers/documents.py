"""``/api/documents``: upload (index), list, inspect and delete documents."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import IndexerDep, SettingsDep, StoreDep
from app.api.schemas import (
    DocumentList,
    DocumentOut,
    ErrorDetail,
    ErrorResponse,
    UploadResponse,
    UploadResult,
)
from app.core.errors import NotFound, RagError, TooLarge, Unavailable
from app.retriever.types import DocumentRecord

router = APIRouter(prefix="/api/documents", tags=["documents"])

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
    detail = ErrorDetail(code=error.code, message=error.message)
    return UploadResult(filename=filename, document_id=None, outcome="rejected", error=detail), (
        error.status_code
    )


@router.post("", response_model=UploadResponse, responses=_ERRORS)
async def upload_documents(
    files: Annotated[list[UploadFile], File(description="One or more files to index.")],
    indexer: IndexerDep,
    settings: SettingsDep,
    collection: Annotated[str | None, Form(max_length=100)] = None,
):
    """Index uploaded files. The type comes from the file name and content, not the content type.

    Each file gets its own result (``indexed``, ``unchanged``, ``failed``, ``rejected`` + why). When every
    file is rejected the response carries the first rejection's status (413, 415 or 422).
    """
    if len(files) > settings.api.max_files:
        raise TooLarge(
            f"{len(files)} files in one request; the limit is {settings.api.max_files}.",
            code="too_many_files",
        )
    max_bytes = int(settings.api.max_upload_mb * 1024 * 1024)
    results: list[UploadResult] = []
    statuses: list[int] = []
    for upload in files:
        filename = PurePath(upload.filename or "").name or "upload"
        if upload.size is not None and upload.size > max_bytes:
            result, status = _rejected(
                filename,
                TooLarge(
                    f"{filename} is {upload.size / 1e6:.1f} MB; the limit is "
                    f"{settings.api.max_upload_mb:g} MB.",
                    code="file_too_large",
                ),
            )
            results.append(result)
            statuses.append(status)
            continue
        data = await upload.read()
        try:
            outcomes = await run_in_threadpool(
                indexer.ingest_bytes, filename, data, collection=collection
            )
        except Unavailable:
            raise
        except RagError as exc:
            result, status = _rejected(filename, exc)
            results.append(result)
            statuses.append(status)
            continue
        for outcome in outcomes:
            error = (
                ErrorDetail(code="indexing_failed", message=outcome.error)
                if outcome.error
                else None
            )
            results.append(
                UploadResult(
                    filename=filename,
                    document_id=outcome.document_id,
                    outcome=outcome.outcome,
                    chunks=outcome.chunks,
                    error=error,
                )
            )
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
    collection: Annotated[str | None, Query(max_length=100)] = None,
) -> DocumentList:
    """All documents (optionally of one collection), newest first, with their indexing status."""
    records = await run_in_threadpool(store.list_documents, collection)
    return DocumentList(documents=[_document_out(r) for r in records])


@router.get("/{document_id}", response_model=DocumentOut, responses=_ERRORS)
async def get_document(document_id: str, store: StoreDep) -> DocumentOut:
    """One document and its status (``failed`` documents carry the reason in ``error``)."""
    record = await run_in_threadpool(store.get_document, document_id)
    if record is None:
        raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")
    return _document_out(record)


@router.delete("/{document_id}", status_code=204, responses=_ERRORS)
async def delete_document(document_id: str, indexer: IndexerDep) -> Response:
    """Delete a document and all its chunks."""
    await run_in_threadpool(indexer.delete, document_id)
    return Response(status_code=204)
