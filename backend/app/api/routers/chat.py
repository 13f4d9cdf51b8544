"""``/api/chat``: answers grounded in the indexed documents, whole or streamed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from fastapi import APIRouter

from app.api.deps import RAGPipelineDep, ReaderDep, SettingsDep, rate_limited
from app.api.schemas import ChatRequest, ChatResponse, ErrorResponse, SourceOut
from app.api.sse import format_event, sse_response
from app.auth.roles import Caller
from app.core.config import Settings
from app.core.errors import TooLarge
from app.models.base import ChatMessage
from app.pipelines.rag import (
    DoneEvent,
    RAGEvent,
    RetrievalOptions,
    Source,
    SourcesEvent,
    TokenEvent,
)

router = APIRouter(prefix="/api/chat", tags=["chat"])

_ERRORS = {
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def _options(body: ChatRequest, settings: Settings, caller: Caller) -> RetrievalOptions:
    if len(body.question) > settings.api.max_question_chars:
        raise TooLarge(
            f"The question is {len(body.question)} characters; the limit is "
            f"{settings.api.max_question_chars}.",
            code="question_too_long",
        )
    return RetrievalOptions(
        top_k=body.top_k or settings.retrieval.top_k,
        mode=body.mode or settings.retrieval.mode,
        collection=caller.scope(body.collection),
        filters=body.filters,
    )


def _history(body: ChatRequest) -> list[ChatMessage]:
    return [ChatMessage(m.role, m.content) for m in body.history]


def _source_out(source: Source) -> SourceOut:
    return SourceOut(**dataclasses.asdict(source))


@router.post(
    "", response_model=ChatResponse, responses=_ERRORS, dependencies=[rate_limited("chat")]
)
async def chat(
    body: ChatRequest, pipeline: RAGPipelineDep, settings: SettingsDep, caller: ReaderDep
) -> ChatResponse:
    """Answer a question from the indexed documents, citing passages as ``[n]``."""
    options = _options(body, settings, caller)
    result = await pipeline.answer(body.question, options, _history(body))
    return ChatResponse(
        answer=result.answer,
        sources=[_source_out(s) for s in result.sources],
        cited=result.cited,
    )


@router.post(
    "/stream",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    dependencies=[rate_limited("chat")],
)
async def chat_stream(
    body: ChatRequest, pipeline: RAGPipelineDep, settings: SettingsDep, caller: ReaderDep
):
    """Stream the answer as Server-Sent Events: one ``sources`` event, ``token`` events, ``done``.

    A failure after streaming began arrives as an ``error`` event with ``{"error": {code, message}}``.
    """
    events = pipeline.stream(body.question, _options(body, settings, caller), _history(body))
    # Retrieval happens before the first event: its errors still get a proper status code.
    first = await anext(events)

    async def frames() -> AsyncIterator[str]:
        yield _frame(first)
        async for event in events:
            yield _frame(event)

    return sse_response(frames())


def _frame(event: RAGEvent) -> str:
    match event:
        case SourcesEvent(sources=sources):
            payload = [_source_out(s).model_dump(mode="json") for s in sources]
            return format_event("sources", {"sources": payload})
        case TokenEvent(text=text):
            return format_event("token", {"text": text})
        case DoneEvent(answer=answer):
            return format_event("done", {"answer": answer})
