"""AnthropicLLM against a local server speaking the Messages API wire format, through the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.config import AnthropicSettings, LLMSettings
from app.core.errors import ModelUnavailable
from app.models.anthropic import AnthropicLLM
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from tests.utils.stub_server import StubRequest, StubResponse, StubServer, error_response

MESSAGES = [
    ChatMessage("system", "출처를 인용하세요."),
    ChatMessage("user", "첫 질문"),
    ChatMessage("assistant", "첫 답"),
    ChatMessage("user", "<sources>...</sources>"),
    ChatMessage("user", "질문: 부산은 어디에 있나요?"),
]
PIECES = ["부산은 ", "한반도 ", "남동쪽에 ", "있습니다 ", "[1]"]


def _message(model: str, content: list[dict[str, Any]], stop: str | None) -> dict[str, Any]:
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }


def anthropic_api(request: StubRequest) -> StubResponse:
    """Messages (whole or streamed) and the model list, as api.anthropic.com answers them."""
    if request.method == "GET" and request.path.startswith("/v1/models"):
        model = {
            "id": "claude-stub",
            "type": "model",
            "display_name": "Claude Stub",
            "created_at": "2025-01-01T00:00:00Z",
        }
        body = {
            "data": [model],
            "has_more": False,
            "first_id": "claude-stub",
            "last_id": "claude-stub",
        }
        return StubResponse(body=body)
    if request.method == "POST" and request.path == "/v1/messages":
        body = request.json()
        if not body.get("stream"):
            text = {"type": "text", "text": "".join(PIECES)}
            return StubResponse(body=_message(body["model"], [text], "end_turn"))
        events: list[tuple[str | None, Any]] = [
            (
                "message_start",
                {"type": "message_start", "message": _message(body["model"], [], None)},
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
            for p in PIECES
        ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return StubResponse(events=events)
    return error_response(404, f"no route {request.method} {request.path}")


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(anthropic_api).running() as server:
        yield server


def _llm(url: str, **overrides: Any) -> AnthropicLLM:
    settings = {
        "provider": "anthropic",
        "anthropic": AnthropicSettings(base_url=url, api_key="stub-key", model="claude-stub"),
        "max_retries": 2,
        "timeout_s": 5.0,
        **overrides,
    }
    return AnthropicLLM(LLMSettings(**settings))


async def _complete(llm: AnthropicLLM, options: GenerationOptions | None = None) -> str:
    try:
        return await llm.complete(MESSAGES, options)
    finally:
        await llm.aclose()


async def _stream(llm: AnthropicLLM) -> list[str]:
    try:
        return [piece async for piece in llm.stream(MESSAGES)]
    finally:
        await llm.aclose()


def test_complete_sends_system_apart_and_merges_turns(stub: StubServer) -> None:
    llm = _llm(stub.url, max_tokens=300)
    assert isinstance(llm, LLMClient)
    assert llm.name == "anthropic:claude-stub"
    assert asyncio.run(_complete(llm, GenerationOptions(max_tokens=64))) == "".join(PIECES)
    [request] = stub.requests
    body = request.json()
    assert request.headers["authorization"] == "Bearer stub-key"
    assert body["system"] == "출처를 인용하세요."
    assert body["messages"] == [
        {"role": "user", "content": "첫 질문"},
        {"role": "assistant", "content": "첫 답"},
        {"role": "user", "content": "<sources>...</sources>\n\n질문: 부산은 어디에 있나요?"},
    ]
    assert (body["model"], body["max_tokens"]) == ("claude-stub", 64)


def test_max_tokens_defaults_to_settings(stub: StubServer) -> None:
    asyncio.run(_complete(_llm(stub.url, max_tokens=300)))
    assert stub.requests[0].json()["max_tokens"] == 300


def test_stream_yields_pieces_in_order(stub: StubServer) -> None:
    assert asyncio.run(_stream(_llm(stub.url))) == PIECES
    assert stub.requests[0].json()["stream"] is True


@pytest.mark.parametrize("status", [429, 500, 529])
def test_sdk_retries_then_succeeds(stub: StubServer, status: int) -> None:
    stub.queue(error_response(status, "overloaded", **{"retry-after-ms": "10"}))
    assert asyncio.run(_complete(_llm(stub.url))) == "".join(PIECES)
    assert [r.headers["x-stainless-retry-count"] for r in stub.requests] == ["0", "1"]


def test_stream_is_retried_too(stub: StubServer) -> None:
    stub.queue(error_response(429, "rate limited", **{"retry-after-ms": "10"}))
    assert asyncio.run(_stream(_llm(stub.url))) == PIECES
    assert len(stub.requests) == 2


def test_persistent_failure_becomes_model_unavailable(stub: StubServer) -> None:
    stub.queue(*[error_response(500, "internal trouble", **{"retry-after-ms": "10"})] * 2)
    with pytest.raises(
        ModelUnavailable, match=r"^Anthropic failed \(500\) and retries did not help\.$"
    ):
        asyncio.run(_stream(_llm(stub.url, max_retries=1)))
    assert len(stub.requests) == 2


def test_bad_key_says_check_the_key(stub: StubServer) -> None:
    stub.queue(error_response(401, "invalid x-api-key"))
    with pytest.raises(
        ModelUnavailable,
        match=r"^Anthropic rejected the API key \(401\)\. Check ANTHROPIC_API_KEY\.$",
    ):
        asyncio.run(_complete(_llm(stub.url)))
    assert len(stub.requests) == 1


def test_check_lists_models(stub: StubServer) -> None:
    async def check() -> None:
        llm = _llm(stub.url)
        try:
            await llm.check()
        finally:
            await llm.aclose()

    asyncio.run(check())
    [request] = stub.requests
    assert (request.method, request.path.split("?")[0]) == ("GET", "/v1/models")


def test_unreachable_server_is_model_unavailable() -> None:
    with StubServer(anthropic_api).running() as server:
        url = server.url
    with pytest.raises(ModelUnavailable, match="could not be reached"):
        asyncio.run(_complete(_llm(url, max_retries=0)))
