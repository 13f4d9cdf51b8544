"""OpenAILLM against a local server speaking the OpenAI wire format: the real SDK does the HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.config import LLMSettings, OpenAISettings
from app.core.errors import ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from app.models.openai import OpenAILLM
from tests.utils.stub_server import StubRequest, StubResponse, StubServer, error_response

MESSAGES = [ChatMessage("system", "간결하게 답하세요."), ChatMessage("user", "서울의 인구는?")]


def _reply_to(body: dict[str, Any]) -> str:
    return f"답변: {body['messages'][-1]['content']} 약 940만 명입니다 [1]"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_api(request: StubRequest) -> StubResponse:
    """Chat completions (whole or streamed) and the model list, as api.openai.com answers them."""
    if request.method == "GET" and request.path == "/v1/models":
        model = {"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}
        return StubResponse(body={"object": "list", "data": [model]})
    if request.method == "POST" and request.path == "/v1/chat/completions":
        body = request.json()
        reply = _reply_to(body)
        if body.get("stream"):
            words = reply.split(" ")
            pieces = [w + " " for w in words[:-1]] + [words[-1]]
            events: list[tuple[str | None, Any]] = [(None, _chunk({"role": "assistant"}))]
            events += [(None, _chunk({"content": p})) for p in pieces]
            events += [(None, _chunk({}, "stop")), (None, "[DONE]")]
            return StubResponse(events=events)
        message = {"role": "assistant", "content": reply}
        return StubResponse(
            body={
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )
    return error_response(404, f"no route {request.method} {request.path}")


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(openai_api).running() as server:
        yield server


def _llm(stub: StubServer, **overrides: Any) -> OpenAILLM:
    settings = {
        "provider": "openai",
        "openai": OpenAISettings(base_url=f"{stub.url}/v1", api_key="stub-key", model="stub-model"),
        "max_retries": 2,
        "timeout_s": 5.0,
        **overrides,
    }
    return OpenAILLM(LLMSettings(**settings))


async def _complete(llm: OpenAILLM, options: GenerationOptions | None = None) -> str:
    try:
        return await llm.complete(MESSAGES, options)
    finally:
        await llm.aclose()


async def _stream(llm: OpenAILLM) -> list[str]:
    try:
        return [piece async for piece in llm.stream(MESSAGES)]
    finally:
        await llm.aclose()


def test_complete_sends_the_conversation_and_options(stub: StubServer) -> None:
    llm = _llm(stub, temperature=0.3, max_tokens=77)
    assert isinstance(llm, LLMClient)
    assert llm.name == "openai:stub-model"
    options = GenerationOptions(temperature=0.0, top_p=0.9, seed=7)
    assert asyncio.run(_complete(llm, options)) == "답변: 서울의 인구는? 약 940만 명입니다 [1]"
    [request] = stub.requests
    body = request.json()
    assert request.headers["authorization"] == "Bearer stub-key"
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert body["model"] == "stub-model"
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.0, 0.9, 7)
    # A compatible server gets max_tokens; the settings' default applies when options leave it out.
    assert body["max_tokens"] == 77


def test_settings_defaults_fill_missing_options(stub: StubServer) -> None:
    asyncio.run(_complete(_llm(stub, temperature=0.6)))
    body = stub.requests[0].json()
    assert body["temperature"] == 0.6
    assert "top_p" not in body and "seed" not in body


def test_stream_yields_pieces_in_order(stub: StubServer) -> None:
    pieces = asyncio.run(_stream(_llm(stub)))
    assert pieces == ["답변: ", "서울의 ", "인구는? ", "약 ", "940만 ", "명입니다 ", "[1]"]
    assert stub.requests[0].json()["stream"] is True


@pytest.mark.parametrize("status", [429, 500])
def test_sdk_retries_then_succeeds(stub: StubServer, status: int) -> None:
    stub.queue(error_response(status, "busy", **{"retry-after-ms": "10"}))
    assert asyncio.run(_complete(_llm(stub))).startswith("답변:")
    assert [r.headers["x-stainless-retry-count"] for r in stub.requests] == ["0", "1"]


def test_stream_is_retried_too(stub: StubServer) -> None:
    stub.queue(error_response(429, "slow down", **{"retry-after-ms": "10"}))
    assert "".join(asyncio.run(_stream(_llm(stub)))).startswith("답변:")
    assert len(stub.requests) == 2


def test_persistent_failure_becomes_model_unavailable(stub: StubServer) -> None:
    stub.queue(*[error_response(503, "overloaded", **{"retry-after-ms": "10"})] * 3)
    with pytest.raises(
        ModelUnavailable, match=r"^OpenAI failed \(503\) and retries did not help\.$"
    ):
        asyncio.run(_complete(_llm(stub, max_retries=2)))
    assert len(stub.requests) == 3


def test_bad_key_says_check_the_key(stub: StubServer) -> None:
    stub.queue(error_response(401, "Incorrect API key provided"))
    with pytest.raises(
        ModelUnavailable, match=r"^OpenAI rejected the API key \(401\)\. Check OPENAI_API_KEY\.$"
    ):
        asyncio.run(_complete(_llm(stub)))
    assert len(stub.requests) == 1


def test_unknown_model_names_the_setting(stub: StubServer) -> None:
    stub.queue(error_response(404, "The model `nope` does not exist"))
    with pytest.raises(
        ModelUnavailable, match=r"^OpenAI does not know the model.*Check OPENAI_MODEL[^`]*$"
    ):
        asyncio.run(_stream(_llm(stub)))


def test_check_lists_models(stub: StubServer) -> None:
    async def check() -> None:
        llm = _llm(stub)
        try:
            await llm.check()
        finally:
            await llm.aclose()

    asyncio.run(check())
    assert [(r.method, r.path) for r in stub.requests] == [("GET", "/v1/models")]


def test_unreachable_server_is_model_unavailable() -> None:
    with StubServer(openai_api).running() as server:
        url = server.url
    llm = OpenAILLM(
        LLMSettings(
            provider="openai",
            openai=OpenAISettings(base_url=f"{url}/v1"),
            max_retries=0,
            timeout_s=5.0,
        )
    )
    with pytest.raises(ModelUnavailable, match="could not be reached"):
        asyncio.run(_complete(llm))


def test_slow_server_times_out() -> None:
    gave_up = threading.Event()

    def slow(request: StubRequest) -> StubResponse:
        # Answers only once the client has given up, however long that takes on a busy machine.
        gave_up.wait(timeout=30)
        return openai_api(request)

    with StubServer(slow).running() as server:
        llm = _llm(server, max_retries=0, timeout_s=0.2)
        try:
            with pytest.raises(ModelUnavailable, match="did not answer in time"):
                asyncio.run(_complete(llm))
        finally:
            gave_up.set()
