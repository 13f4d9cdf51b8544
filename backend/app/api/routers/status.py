"""``/api/status`` and ``/api/collections``: what is configured and what exists."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.api.deps import (
    CallerDep,
    ComponentsDep,
    EmbedderDep,
    LLMDep,
    ReviewModelDep,
    SettingsDep,
    StoreDep,
)
from app.api.schemas import (
    CollectionList,
    DatabaseInfo,
    EmbeddingInfo,
    LimitsInfo,
    ProviderInfo,
    RetrievalInfo,
    ReviewStatus,
    StatusResponse,
)
from app.auth.redact import model_name_for
from app.core.errors import RagError

router = APIRouter(prefix="/api", tags=["status"])


def app_version() -> str:
    """The installed package version."""
    try:
        return version("rag")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@router.get("/status", response_model=StatusResponse)
async def status(
    settings: SettingsDep,
    llm: LLMDep,
    reviews: ReviewModelDep,
    embedder: EmbedderDep,
    store: StoreDep,
    components: ComponentsDep,
    caller: CallerDep,
) -> StatusResponse:
    """Both model roles (the chat model as ``llm``, the review writer as ``reviews``), the
    embedding model, database mode, retrieval defaults and upload limits. Model folders and
    addresses are shown to admins only."""
    try:
        await run_in_threadpool(store.ping)
        database_ok = True
    except RagError:
        database_ok = False
    return StatusResponse(
        version=app_version(),
        llm=ProviderInfo(provider=settings.llm.provider, name=model_name_for(caller, llm.name)),
        reviews=ReviewStatus(
            provider=reviews.provider,
            name=model_name_for(caller, reviews.name),
            adapters=list(reviews.adapters()),
            shares_chat_model=reviews.shares_chat_model,
        ),
        embedding=EmbeddingInfo(
            provider=settings.embedding.provider,
            name=model_name_for(caller, embedder.name),
            dimension=embedder.dimension,
        ),
        database=DatabaseInfo(mode=components.database_mode, ok=database_ok),
        retrieval=RetrievalInfo(mode=settings.retrieval.mode, top_k=settings.retrieval.top_k),
        limits=LimitsInfo(
            max_upload_mb=settings.api.max_upload_mb,
            max_files=settings.api.max_files,
            max_question_chars=settings.api.max_question_chars,
        ),
    )


@router.get("/collections", response_model=CollectionList)
async def collections(store: StoreDep, caller: CallerDep) -> CollectionList:
    """Names of the collections that hold documents (those the key may use)."""
    names = await run_in_threadpool(store.list_collections)
    return CollectionList(collections=[name for name in names if caller.may_use(name)])
