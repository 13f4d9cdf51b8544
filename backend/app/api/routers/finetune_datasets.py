"""``/api/finetune``: review data sets to train on, the memory plan and the start form's options."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path, PurePath
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.deps import AdminDep, DatasetsDep, ReaderDep
from app.api.finetune_schemas import (
    MAX_NAME_CHARS,
    DatasetList,
    DatasetOptions,
    DatasetOut,
    DatasetPathRequest,
    FormOptions,
)
from app.api.schemas import ErrorResponse
from app.api.streamed_form import read_form
from app.auth.redact import is_location
from app.auth.roles import Caller, Role
from app.core.errors import InvalidInput, TooLarge
from app.recipes.plan import make_plan
from app.recipes.plan_estimate import PlanSettings
from app.recipes.train_config import DEFAULT_MODEL
from app.text import normalize_line, request_text_problem
from app.tuning.dataset_checks import too_large
from app.tuning.datasets import Dataset, DatasetStore, DatasetUpload
from app.tuning.form_options import form_options

router = APIRouter(prefix="/api/finetune", tags=["finetune"])
# Where data sets are uploaded: their bodies have a size limit of their own (``main.py``).
UPLOAD_PATH = "/api/finetune/datasets"

DatasetId = Annotated[str, PathParam(max_length=100, description="The data set's id.")]
# A JSON body names a path and a few options; nothing near this.
_MAX_JSON_BYTES = 64 * 1024
# Multipart framing and the form's text fields (16 of at most 4 KB), on top of the file itself.
_FORM_OVERHEAD_BYTES = 128 * 1024

_Body = TypeVar("_Body", bound=BaseModel)

_ERRORS = {
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}
_DATASET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "maxLength": MAX_NAME_CHARS},
                        "format": DatasetOptions.model_json_schema()["properties"]["format"],
                        "rating_scale": {"type": "integer", "enum": [5, 10]},
                    },
                }
            },
            "application/json": {"schema": DatasetPathRequest.model_json_schema()},
        },
    }
}


def _dataset_out(dataset: Dataset) -> DatasetOut:
    fields = asdict(dataset)
    del fields["path"]
    return DatasetOut.model_validate(fields)


@router.post(
    "/datasets",
    response_model=DatasetOut,
    status_code=201,
    responses=_ERRORS,
    openapi_extra=_DATASET_BODY,
)
async def add_dataset(request: Request, datasets: DatasetsDep, _: AdminDep) -> DatasetOut:
    """Add a review data set, in any format ``rag finetune train`` reads (NSMC tsv, jsonl, csv,
    shopping txt, NSMC JSON, or a ``.gz`` of one), and report what training would read from it.

    Either ``multipart/form-data`` with the ``file`` and optional ``name``, ``format`` and
    ``rating_scale`` fields, streamed to the server's disk, or JSON ``{"path": ...}`` naming a
    file or NSMC folder already on the server (for files too large to upload), read where it
    is. 413 over ``FINETUNE_MAX_DATASET_MB`` (compressed files as they expand); 422 with the
    reason for a file no review can be read from (empty, binary, a broken gzip, a line over
    1 MB, no usable review) or a path that is not a readable file or folder. Nothing is stored
    for a refused file.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = _validated(DatasetPathRequest, await _json_body(request))
        dataset = await run_in_threadpool(
            datasets.add_path,
            Path(body.path),
            name=body.name,
            data_format=body.format,
            rating_scale=body.rating_scale,
        )
    elif content_type == "multipart/form-data":
        dataset = await _add_upload(request, datasets)
    else:
        raise InvalidInput(
            "Send the data set as multipart/form-data (field file) or name a server path in "
            f'JSON {{"path": ...}}; got content type {content_type or "none"}.'
        )
    return _dataset_out(dataset)


@router.get("/datasets", response_model=DatasetList, responses=_ERRORS)
async def list_datasets(datasets: DatasetsDep, _: ReaderDep) -> DatasetList:
    """Every data set with its report, newest first."""
    stored = await run_in_threadpool(datasets.list)
    return DatasetList(datasets=[_dataset_out(d) for d in stored])


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, responses=_ERRORS)
async def get_dataset(dataset_id: DatasetId, datasets: DatasetsDep, _: ReaderDep) -> DatasetOut:
    """One data set and its report."""
    return _dataset_out(await run_in_threadpool(datasets.require, dataset_id))


@router.delete("/datasets/{dataset_id}", status_code=204, responses=_ERRORS)
async def delete_dataset(dataset_id: DatasetId, datasets: DatasetsDep, _: AdminDep) -> Response:
    """Delete a data set; an uploaded file goes with it, a server path's file stays. 409
    ``dataset_in_use`` while a queued or running training job reads it."""
    await run_in_threadpool(datasets.delete, dataset_id)
    return Response(status_code=204)


@router.get("/plan", response_model=dict[str, Any], responses=_ERRORS)
async def plan(
    caller: ReaderDep,
    gpu_mem_gb: Annotated[float, Query(ge=0.5, le=1024, description="GPU memory in GiB.")],
    model: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            description="Hub id (read from the known-config table or the local cache) or a "
            "model folder on the server (admins only).",
        ),
    ] = DEFAULT_MODEL,
    seq_len: Annotated[int, Query(ge=16, le=65536, description="Tokens per sequence.")] = (
        PlanSettings.seq_len
    ),
    micro_batch: Annotated[int, Query(ge=1, le=1024, description="Sequences per step.")] = (
        PlanSettings.micro_batch
    ),
    lora_rank: Annotated[int, Query(ge=1, le=1024, description="Adapter rank.")] = (
        PlanSettings.lora_rank
    ),
) -> dict[str, Any]:
    """The memory plan of ``rag finetune plan --json``: each method's estimate with and without
    gradient checkpointing on a GPU of ``gpu_mem_gb`` GiB, and the recommended setting. 404
    for a model with no config anywhere the planner looks (nothing is downloaded), 415 for a
    model family it does not plan."""
    if is_location(model):
        # A folder on the server: what exists there is for admins to know.
        caller.require(Role.admin)
    settings = PlanSettings(seq_len=seq_len, micro_batch=micro_batch, lora_rank=lora_rank)
    result = await run_in_threadpool(make_plan, model, gpu_mem_gb, settings)
    return _plan_for(caller, result.to_dict())


@router.get("/options", response_model=FormOptions, responses=_ERRORS)
async def options(_: ReaderDep) -> FormOptions:
    """The defaults, choices and help text of every field of a training job, by section:
    ``train`` (top-level fields), ``data`` (``data_options``), ``governor`` and ``eval``."""
    sections = {name: [asdict(o) for o in found] for name, found in form_options().items()}
    return FormOptions.model_validate(sections)


async def _add_upload(request: Request, datasets: DatasetStore) -> Dataset:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > datasets.max_bytes + _FORM_OVERHEAD_BYTES:
        raise too_large("The upload", datasets.max_bytes)
    upload: DatasetUpload | None = None

    def open_upload(filename: str) -> DatasetUpload:
        nonlocal upload
        upload = datasets.begin_upload(_file_name(filename))
        return upload

    try:
        form = await read_form(request, "file", open_upload)
        fields = _validated(DatasetOptions, form.fields)
        if upload is None:
            raise InvalidInput("The upload holds no file (field file).")
        finished: DatasetUpload = upload
        return await run_in_threadpool(
            datasets.add_upload,
            finished,
            name=fields.name or finished.filename,
            data_format=fields.format,
            rating_scale=fields.rating_scale,
        )
    except BaseException:
        if upload is not None:
            await run_in_threadpool(upload.discard)
        raise


def _validated(model: type[_Body], data: Any) -> _Body:
    """``model`` from ``data``, refused as FastAPI refuses a body (422 naming the fields)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def _json_body(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_JSON_BYTES:
            raise TooLarge(f"A JSON body is at most {_MAX_JSON_BYTES // 1024} KB here.")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}") from exc


def _file_name(filename: str) -> str:
    """The upload's own name, as errors and the default data set name show it."""
    name = PurePath(filename.replace("\\", "/")).name
    if request_text_problem(name) is not None:
        return "upload"
    return normalize_line(name)[:MAX_NAME_CHARS] or "upload"


def _plan_for(caller: Caller, plan: dict[str, Any]) -> dict[str, Any]:
    """The plan as ``caller`` may see it: where a cached config lies is for admins."""
    if not caller.is_admin:
        plan["source"] = str(plan["source"]).split(" (", 1)[0]
    return plan
