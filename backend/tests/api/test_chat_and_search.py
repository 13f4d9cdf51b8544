"""Ingest → search → chat end to end over HTTP, including the SSE stream and input validation."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.utils.sse import parse_sse

DOC = (
    "# 도서관 이용 안내\n\n"
    "중앙도서관은 평일 오전 9시부터 오후 10시까지 문을 엽니다. 주말에는 오후 5시에 문을 닫습니다.\n\n"
    "책은 한 번에 다섯 권까지 2주 동안 빌릴 수 있습니다. 연체하면 하루에 100원의 연체료가 붙습니다."
)


@pytest.fixture(scope="module", autouse=True)
def indexed(api: Api) -> str:
    response = api.client.post(
        "/api/documents", files=[("files", ("도서관.md", DOC.encode(), "text/markdown"))]
    )
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["document_id"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_search_finds_the_document(api: Api, indexed: str, mode: str) -> None:
    response = api.client.post("/api/search", json={"query": "도서관 연체료", "mode": mode})
    assert response.status_code == 200
    [first, *_] = response.json()["results"]
    assert first["document_id"] == indexed
    assert set(first) == {"document_id", "chunk_id", "text", "score", "metadata"}
    assert first["metadata"]["source"] == "도서관.md"


def test_search_filters_on_metadata(api: Api, indexed: str) -> None:
    hit = api.client.post(
        "/api/search", json={"query": "도서관", "filters": {"source": "도서관.md"}}
    ).json()["results"]
    miss = api.client.post(
        "/api/search", json={"query": "도서관", "filters": {"source": "없는파일.md"}}
    ).json()["results"]
    assert hit and all(h["document_id"] == indexed for h in hit)
    assert miss == []


def test_chat_answers_with_sources(api: Api, indexed: str) -> None:
    response = api.client.post("/api/chat", json={"question": "주말에는 몇 시에 닫나요?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sources"] and body["sources"][0]["number"] == 1
    assert body["sources"][0]["document_id"] == indexed
    assert body["answer"]
    assert all(1 <= n <= len(body["sources"]) for n in body["cited"])


def test_chat_stream_sends_sources_tokens_done(api: Api, indexed: str) -> None:
    with api.client.stream(
        "POST", "/api/chat/stream", json={"question": "책은 몇 권까지 빌릴 수 있나요?"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert names.count("sources") == 1 and "token" in names
    streamed = "".join(data["text"] for name, data in events if name == "token")
    assert streamed.strip() == events[-1][1]["answer"]
    assert events[0][1]["sources"][0]["document_id"] == indexed


def test_history_is_accepted(api: Api) -> None:
    response = api.client.post(
        "/api/chat",
        json={
            "question": "그럼 평일은요?",
            "history": [
                {"role": "user", "content": "주말 운영 시간은?"},
                {"role": "assistant", "content": "오후 5시에 닫습니다 [1]."},
            ],
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"question": ""}),
        ("/api/chat", {"question": "   "}),
        ("/api/chat", {"question": "질문", "top_k": 0}),
        ("/api/chat", {"question": "질문", "mode": "magic"}),
        ("/api/chat", {"question": "질문", "history": [{"role": "system", "content": "x"}]}),
        ("/api/chat/stream", {"question": ""}),
        ("/api/search", {"query": ""}),
        ("/api/search", {"query": "검색", "top_k": 1000}),
        ("/api/search", {"query": "검색", "unknown_field": 1}),
        ("/api/search", {"query": "검색", "filters": {"a": {"nested": 1}}}),
    ],
)
def test_invalid_input_is_422(api: Api, path: str, body: dict) -> None:
    response = api.client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"invalid_input", "empty_question"}


def test_malformed_json_is_422(api: Api) -> None:
    response = api.client.post(
        "/api/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_question_over_limit_is_413(api: Api) -> None:
    question = "가" * (api.settings.api.max_question_chars + 1)
    response = api.client.post("/api/chat", json={"question": question})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "question_too_long"


def test_unknown_route_uses_error_shape(api: Api) -> None:
    response = api.client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_health_ready_status(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    ready = api.client.get("/ready")
    assert ready.status_code == 200
    assert {k for k, v in ready.json()["checks"].items() if v["ok"]} == {
        "database",
        "embedding",
        "llm",
    }
    status = api.client.get("/api/status").json()
    assert status["llm"]["provider"] == "fake"
    assert status["embedding"]["dimension"] == 256
    assert status["database"] == {"mode": "external", "ok": True}


def test_openapi_lists_the_contract(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/chat",
        "/api/chat/stream",
        "/api/search",
        "/api/documents",
        "/health",
        "/ready",
    ):
        assert path in paths
