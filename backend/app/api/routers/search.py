"""``/api/search``: ranked chunks without an LLM, for playgrounds and other programs."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.deps import ReaderDep, RetrieverDep, SettingsDep, rate_limited
from app.api.schemas import ErrorResponse, SearchRequest, SearchResponse, SearchResult
from app.retriever.types import SearchHit

router = APIRouter(prefix="/api/search", tags=["search"])


def to_search_result(hit: SearchHit) -> SearchResult:
    """The API shape of one hit (``rag search --json`` prints the same objects)."""
    return SearchResult(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        text=hit.text,
        score=hit.score,
        metadata=hit.metadata,
    )


@router.post(
    "",
    response_model=SearchResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    dependencies=[rate_limited("search")],
)
async def search(
    body: SearchRequest, retriever: RetrieverDep, settings: SettingsDep, caller: ReaderDep
) -> SearchResponse:
    """Return the best-matching chunks of ready documents, best first."""
    hits = await asyncio.to_thread(
        retriever.search,
        body.query,
        top_k=body.top_k or settings.retrieval.top_k,
        mode=body.mode or settings.retrieval.mode,
        collection=caller.scope(body.collection),
        filters=body.filters,
    )
    return SearchResponse(results=[to_search_result(h) for h in hits])
