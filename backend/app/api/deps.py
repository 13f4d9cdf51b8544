"""Injection points: routers depend on these named types, never on concrete adapters.

Everything here reads the parts built once in ``main.py``'s lifespan (``app.state.components``).
Tests swap any of them with ``app.dependency_overrides[get_llm_client] = ...``.

Most are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, one hand-off per
dependency and request, and these only read what is already there. What may wait (the database,
argon2, a thread being started) goes to the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from app.auth.authenticator import Authenticator
from app.auth.rate_limits import LimitedKind, RateLimits
from app.auth.roles import Caller, Role
from app.components import Components, make_rag_pipeline
from app.core.config import Settings
from app.models.base import EmbeddingClient, LLMClient
from app.models.review_model import ReviewModel
from app.pipelines.adapters import ServedAdapters
from app.pipelines.rag import RAGPipeline
from app.retriever.indexer import Indexer
from app.retriever.types import Retriever
from app.retriever.vector_store import PGVectorStore
from app.tuning.datasets import DatasetStore


async def get_components(request: Request) -> Components:
    """The parts opened at start-up."""
    return request.app.state.components


ComponentsDep = Annotated[Components, Depends(get_components)]


async def get_app_settings(components: ComponentsDep) -> Settings:
    return components.settings


async def get_llm_client(components: ComponentsDep) -> LLMClient:
    """The configured chat model."""
    return components.llm


async def get_review_model(components: ComponentsDep) -> ReviewModel:
    """The configured review writer (``REVIEW_*``)."""
    return components.reviews


async def get_served_adapters(components: ComponentsDep) -> ServedAdapters:
    """The review writer's adapters, loaded and unloaded while the server runs."""
    return components.adapters


async def get_embedding_client(components: ComponentsDep) -> EmbeddingClient:
    """The configured embedding model."""
    return components.embedder


async def get_vector_store(components: ComponentsDep) -> PGVectorStore:
    return components.store


async def get_retriever(components: ComponentsDep) -> Retriever:
    """Dense, sparse and hybrid search over ready documents."""
    return components.retriever


async def get_indexer(components: ComponentsDep) -> Indexer:
    return components.indexer


async def get_datasets(components: ComponentsDep) -> DatasetStore:
    """The fine-tuning data sets."""
    return components.datasets


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LLMDep = Annotated[LLMClient, Depends(get_llm_client)]
ReviewModelDep = Annotated[ReviewModel, Depends(get_review_model)]
ServedAdaptersDep = Annotated[ServedAdapters, Depends(get_served_adapters)]
EmbedderDep = Annotated[EmbeddingClient, Depends(get_embedding_client)]
StoreDep = Annotated[PGVectorStore, Depends(get_vector_store)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
IndexerDep = Annotated[Indexer, Depends(get_indexer)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]


async def get_rag_pipeline(
    llm: LLMDep, retriever: RetrieverDep, settings: SettingsDep
) -> RAGPipeline:
    """The chain assembled from whatever LLM and retriever are injected."""
    return make_rag_pipeline(llm, retriever, settings)


RAGPipelineDep = Annotated[RAGPipeline, Depends(get_rag_pipeline)]


async def get_caller(request: Request) -> Caller:
    """Who sends the request (``Unauthorized`` when it needs a key and has none that works).

    Bound to every ``/api`` router in ``main.py``; FastAPI computes it once per request, so the
    role dependencies below reuse it.
    """
    authenticator: Authenticator = request.app.state.authenticator
    headers = {name: request.headers[name] for name in request.headers}
    known = authenticator.known_caller(headers)
    if known is not None:
        return known
    # Reading the database and running argon2 do not belong on the event loop.
    return await run_in_threadpool(authenticator.caller, headers)


CallerDep = Annotated[Caller, Depends(get_caller)]


def _role(role: Role) -> Callable[[Caller], Awaitable[Caller]]:
    async def require(caller: CallerDep) -> Caller:
        caller.require(role)
        return caller

    require.__name__ = f"require_{role.name}"
    return require


ReaderDep = Annotated[Caller, Depends(_role(Role.reader))]
EditorDep = Annotated[Caller, Depends(_role(Role.editor))]
AdminDep = Annotated[Caller, Depends(_role(Role.admin))]


def rate_limited(kind: LimitedKind) -> Any:
    """A route dependency (``dependencies=[rate_limited("chat")]``) that counts one request of
    ``kind`` against the caller's rate."""

    # A plain def, run in the thread pool: ``limits`` starts a thread now and then to expire
    # old hits, and the event loop would wait for it to start.
    def count(request: Request, caller: CallerDep) -> None:
        limits: RateLimits = request.app.state.rate_limits
        limits.hit(kind, caller)

    count.__name__ = f"rate_limit_{kind}"
    return Depends(count)
