"""Chat sources name the file and the page; errors carry the values their message names."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.utils.documents import make_pdf
from tests.utils.sse import parse_sse

# One chunk over both pages of one file; in the other, the text begins on page 2 (page 1 is blank).
FILES = {
    "휴가규정.pdf": [
        "휴가 규정\n연차 휴가는 입사 첫해에 열하루가 주어집니다.",
        "병가는 육십 일까지 씁니다.",
    ],
    "병가.pdf": [
        "",
        "병가 규정\n병가는 한 해에 최대 육십 일까지 쓸 수 있으며 진단서를 내야 합니다.",
    ],
}
QUESTION = "병가는 며칠까지 쓸 수 있나요?"


@pytest.fixture(scope="module", autouse=True)
def indexed(api: Api) -> dict[str, str]:
    files = [("files", (name, make_pdf(pages), "application/pdf")) for name, pages in FILES.items()]
    response = api.client.post("/api/documents", files=files)
    assert response.status_code == 200, response.text
    return {r["filename"]: r["document_id"] for r in response.json()["results"]}


def test_chat_sources_name_the_file_and_the_page(api: Api, indexed: dict[str, str]) -> None:
    response = api.client.post("/api/chat", json={"question": QUESTION})
    assert response.status_code == 200, response.text
    sources = {s["filename"]: s for s in response.json()["sources"]}
    assert sources.keys() == FILES.keys()
    both, second = sources["휴가규정.pdf"], sources["병가.pdf"]
    assert both["document_id"] == indexed["휴가규정.pdf"] and both["source"] == "휴가규정.pdf"
    assert (both["page"], both["page_end"], both["page_unit"]) == (1, 2, "page")
    assert (second["page"], second["page_end"], second["page_unit"]) == (2, None, "page")
    assert second["page_label"] is None and second["metadata"]["page"] == 2
    assert second["title"]


def test_the_stream_sends_the_same_sources(api: Api) -> None:
    answer = api.client.post("/api/chat", json={"question": QUESTION}).json()
    with api.client.stream("POST", "/api/chat/stream", json={"question": QUESTION}) as response:
        assert response.status_code == 200
        events = parse_sse(response.iter_lines())
    name, data = events[0]
    assert name == "sources" and data["sources"] == answer["sources"]


def test_a_validation_error_names_the_fields(api: Api) -> None:
    response = api.client.post("/api/search", json={"query": "", "top_k": 0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["message"].startswith("Invalid request")
    assert error["params"] == {"fields": "query, top_k"}


def test_an_error_without_values_has_no_params(api: Api) -> None:
    response = api.client.post("/api/chat", json={"question": "   "})
    assert response.status_code == 422
    assert response.json()["error"].keys() == {"code", "message"}


def test_a_body_over_the_limit_says_the_limit(api: Api) -> None:
    # A declared length over the limit, and a chunked body that only grows over it.
    limit = api.settings.api.max_upload_mb * api.settings.api.max_files + 1
    declared = api.client.post(
        "/api/documents",
        files=[("files", ("big.txt", b"a" * int(limit * 1024 * 1024), "text/plain"))],
    )

    def chunks():
        for _ in range(int(limit) * 4 + 4):
            yield b"a" * 262_144

    streamed = api.client.post(
        "/api/chat", content=chunks(), headers={"content-type": "application/json"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "request_too_large"
        assert error["params"] == {"limit_mb": int(limit)}
        assert f"{int(limit)} MB" in error["message"]
