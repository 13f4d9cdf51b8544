"""``/api/models``: the chat model and the review writer, and the review writer's LoRA adapters,
which load and unload while the server runs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from app.api.deps import AdminDep, CallerDep, LLMDep, ReviewModelDep, ServedAdaptersDep, SettingsDep
from app.api.schemas import (
    AdapterInfo,
    AdapterLoadRequest,
    AdapterRunInfo,
    ErrorResponse,
    ModelRoleInfo,
    ModelsResponse,
    ReviewRoleInfo,
)
from app.auth.redact import model_name_for, path_for
from app.auth.roles import Caller
from app.models.base import LLMClient
from app.pipelines.adapters import ServedAdapter

router = APIRouter(prefix="/api/models", tags=["models"])


@runtime_checkable
class _LoadedLocally(Protocol):
    """What a model loaded in this process reports (``LocalLLM``)."""

    base_model: str
    device: object
    dtype: object
    quantization: str | None


def _role(provider: str, llm: LLMClient | None, caller: Caller) -> ModelRoleInfo:
    info = ModelRoleInfo(
        provider=provider,
        name=model_name_for(caller, llm.name) if llm is not None else None,
        base_model=None,
        device=None,
        dtype=None,
        quantization=None,
    )
    if isinstance(llm, _LoadedLocally):
        info.base_model = model_name_for(caller, llm.base_model)
        info.device = str(llm.device)
        info.dtype = str(llm.dtype).removeprefix("torch.")
        info.quantization = llm.quantization
    return info


def adapter_info(adapter: ServedAdapter, caller: Caller) -> AdapterInfo:
    """The API's view of a served adapter; its folders as ``caller`` may see them."""
    run = AdapterRunInfo(**asdict(adapter.run)) if adapter.run is not None else None
    if run is not None:
        run.base_model = model_name_for(caller, run.base_model)
        run.data = path_for(caller, run.data) if run.data is not None else None
    path = path_for(caller, str(adapter.path))
    return AdapterInfo(name=adapter.name, path=path, origin=adapter.origin, run=run)


@router.get("", response_model=ModelsResponse)
async def models(
    llm: LLMDep,
    reviews: ReviewModelDep,
    adapters: ServedAdaptersDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> ModelsResponse:
    """Both roles: the chat model (``LLM_*``) and the review writer (``REVIEW_*``) with its
    adapters and how each was trained; base model, device, dtype and quantisation for a local one
    (null for remote providers). Folders are shown whole to admins only."""
    served = await run_in_threadpool(adapters.loaded)
    role = _role(reviews.provider, reviews.llm, caller)
    return ModelsResponse(
        chat=_role(settings.llm.provider, llm, caller),
        reviews=ReviewRoleInfo(
            **role.model_dump(),
            writes_reviews=reviews.capabilities.writes_reviews,
            loads_adapters=reviews.capabilities.loads_adapters,
            shares_chat_model=reviews.shares_chat_model,
            adapters=[adapter_info(a, caller) for a in served],
        ),
    )


@router.post(
    "/adapters",
    response_model=AdapterInfo,
    status_code=201,
    responses={
        409: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def load_adapter(
    body: AdapterLoadRequest, adapters: ServedAdaptersDep, caller: AdminDep
) -> AdapterInfo:
    """Load the LoRA adapter in the server's folder ``path`` as ``name``; no restart needed.

    422 when the folder holds no adapter or one trained on another base (the message names both
    models), 409 when the name is taken or the review model cannot load adapters while it runs.
    Generation goes on meanwhile; the adapter is kept in the database and loaded again at start.
    """
    served = await run_in_threadpool(adapters.load, body.name, Path(body.path))
    return adapter_info(served, caller)


@router.delete(
    "/adapters/{name}",
    status_code=204,
    responses={
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def unload_adapter(name: str, adapters: ServedAdaptersDep, _: AdminDep) -> Response:
    """Unload an adapter loaded at run time, once the requests writing with it have finished;
    new requests naming it are refused from now on. 409 for an adapter of REVIEW_ADAPTERS."""
    await run_in_threadpool(adapters.unload, name)
    return Response(status_code=204)
