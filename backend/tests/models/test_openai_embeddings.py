"""OpenAIEmbedder against a local server speaking the embeddings wire format, through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.core.errors import ModelUnavailable
from app.models.base import EmbeddingClient
from app.models.openai_embeddings import OpenAIEmbedder
from tests.utils.stub_server import StubRequest, StubResponse, StubServer, error_response

NATIVE_SIZE = 6


def _vector(text: str, size: int) -> list[float]:
    return [float(len(text))] + [float(ord(text[0]) % 97 if text else 0)] * (size - 1)


def embeddings_api(request: StubRequest) -> StubResponse:
    """``POST /v1/embeddings``; items come back in reverse order, which the API allows (``index``)."""
    if request.method != "POST" or request.path != "/v1/embeddings":
        return error_response(404, f"no route {request.method} {request.path}")
    body = request.json()
    if any(text == "" for text in body["input"]):
        return error_response(400, "'$.input' is invalid: empty string")
    size = body.get("dimensions", NATIVE_SIZE)
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(text, size)}
        for i, text in enumerate(body["input"])
    ]
    usage = {"prompt_tokens": 3, "total_tokens": 3}
    return StubResponse(
        body={"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
    )


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(embeddings_api).running() as server:
        yield server


def _embedder(stub: StubServer, **overrides: Any) -> OpenAIEmbedder:
    options: dict[str, Any] = {
        "api_key": "stub-key",
        "base_url": f"{stub.url}/v1",
        "batch_size": 2,
        "max_retries": 2,
        "timeout_s": 5.0,
        **overrides,
    }
    return OpenAIEmbedder("stub-embed", **options)


def test_batches_keep_order(stub: StubServer) -> None:
    embedder = _embedder(stub)
    assert embedder.name == "openai:stub-embed"
    texts = ["가", "나다", "라마바", "", "English"]
    try:
        vectors = embedder.embed_documents(texts)
    finally:
        embedder.close()
    assert vectors == [_vector(t or " ", NATIVE_SIZE) for t in texts]
    assert [r.json()["input"] for r in stub.requests] == [
        ["가", "나다"],
        ["라마바", " "],
        ["English"],
    ]
    assert all(r.json()["encoding_format"] == "float" for r in stub.requests)
    assert "dimensions" not in stub.requests[0].json()
    # Checked last: on Python 3.11 isinstance() reads the dimension property, which may ask the server.
    assert isinstance(embedder, EmbeddingClient)


def test_dimension_is_learnt_from_the_first_call(stub: StubServer) -> None:
    embedder = _embedder(stub)
    assert stub.requests == []
    assert embedder.dimension == NATIVE_SIZE
    assert embedder.embed_query("질문") == _vector("질문", NATIVE_SIZE)
    assert embedder.dimension == NATIVE_SIZE and len(stub.requests) == 2
    embedder.close()


def test_configured_dimension_is_requested(stub: StubServer) -> None:
    embedder = _embedder(stub, dimension=3)
    assert embedder.dimension == 3 and stub.requests == []
    assert len(embedder.embed_query("질문")) == 3
    assert stub.requests[0].json()["dimensions"] == 3
    embedder.close()


def test_sdk_retries_then_succeeds(stub: StubServer) -> None:
    stub.queue(error_response(429, "slow down", **{"retry-after-ms": "10"}))
    embedder = _embedder(stub)
    assert embedder.embed_documents(["가", "나"]) == [_vector("가", 6), _vector("나", 6)]
    assert [r.headers["x-stainless-retry-count"] for r in stub.requests] == ["0", "1"]
    embedder.close()


def test_persistent_failure_becomes_model_unavailable(stub: StubServer) -> None:
    stub.queue(*[error_response(500, "embedding backend down", **{"retry-after-ms": "10"})] * 3)
    embedder = _embedder(stub)
    with pytest.raises(
        ModelUnavailable, match=r"^OpenAI failed \(500\) and retries did not help\.$"
    ):
        embedder.embed_query("가")
    assert len(stub.requests) == 3
    embedder.close()


def test_wrong_vector_size_is_caught() -> None:
    def shrinking(request: StubRequest) -> StubResponse:
        response = embeddings_api(request)
        response.body["data"][0]["embedding"] = response.body["data"][0]["embedding"][:2]
        return response

    with StubServer(shrinking).running() as server:
        embedder = _embedder(server, dimension=NATIVE_SIZE)
        with pytest.raises(ModelUnavailable, match="size 2, expected 6"):
            embedder.embed_query("가")
        embedder.close()
