"""``/api/status`` and ``/api/collections``: what is configured and what exists."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.api.deps import ComponentsDep, StoreDep
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
from app.core.errors import RagError

router = APIRouter(prefix="/api", tags=["status"])


def app_version() -> str:
    """The installed package version."""
    try:
        return version("rag")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@router.get("/status", response_model=StatusResponse)
async def status(components: ComponentsDep) -> StatusResponse:
    """Both model roles (the chat model as ``llm``, the review writer as ``reviews``), the
    embedding model, database mode, retrieval defaults and upload limits."""
    settings = components.settings
    reviews = components.reviews
    try:
        await run_in_threadpool(components.store.ping)
        database_ok = True
    except RagError:
        database_ok = False
    return StatusResponse(
        version=app_version(),
        llm=ProviderInfo(provider=settings.llm.provider, name=components.llm.name),
        reviews=ReviewStatus(
            provider=reviews.provider,
            name=reviews.name,
            adapters=list(reviews.adapters()),
            shares_chat_model=reviews.shares_chat_model,
        ),
        embedding=EmbeddingInfo(
            provider=settings.embedding.provider,
            name=components.embedder.name,
            dimension=components.embedder.dimension,
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
async def collections(store: StoreDep) -> CollectionList:
    """Names of the collections that hold documents."""
    return CollectionList(collections=await run_in_threadpool(store.list_collections))
