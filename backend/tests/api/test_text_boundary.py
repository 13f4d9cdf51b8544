"""The text boundary through a real server: what a request may carry, how text is stored.

NUL and lone surrogates in request fields are refused with 422 in the API's error shape, never a
500; what files carry is stored NFC and free of control characters, and searched as such.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api
from tests.utils.documents import make_hwp
from tests.utils.hostile_files import deep_html

Send = Callable[[httpx.Client], httpx.Response]


def _json(path: str, body: str) -> Send:
    """A POST of ``body`` as written: JSON escapes such as ``\\ud800`` reach the server as such."""
    headers = {"Content-Type": "application/json"}
    return lambda client: client.post(path, content=body.encode(), headers=headers)


def _upload(*files: tuple[str, bytes], collection: str | None = None) -> Send:
    data = {"collection": collection} if collection is not None else None
    parts = [("files", (name, content, "application/octet-stream")) for name, content in files]
    return lambda client: client.post("/api/documents", files=parts, data=data)


def _raw_upload(filename: bytes, content: bytes) -> Send:
    """A multipart upload written by hand: httpx would percent-encode a NUL in the file name."""
    boundary = b"rag-text-boundary"
    body = (
        b'--%s\r\nContent-Disposition: form-data; name="files"; filename="%s"\r\n'
        b"Content-Type: text/plain\r\n\r\n%s\r\n--%s--\r\n"
    ) % (boundary, filename, content, boundary)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    return lambda client: client.post("/api/documents", content=body, headers=headers)


GOOD = "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다.".encode()

# Every request field that used to answer 500 for NUL or a lone surrogate.
REFUSED: dict[str, Send] = {
    "search query NUL": _json("/api/search", r'{"query": "휴가\u0000"}'),
    "search query surrogate": _json("/api/search", r'{"query": "휴가\ud800"}'),
    "search collection NUL": _json("/api/search", r'{"query": "휴가", "collection": "a\u0000"}'),
    "search collection surrogate": _json(
        "/api/search", r'{"query": "휴가", "collection": "\udc80"}'
    ),
    "search filter value NUL": _json(
        "/api/search", r'{"query": "휴가", "filters": {"team": "인사\u0000"}}'
    ),
    "search filter list value surrogate": _json(
        "/api/search", r'{"query": "휴가", "filters": {"team": ["인사", "\ud800"]}}'
    ),
    "search filter key NUL": _json("/api/search", r'{"query": "휴가", "filters": {"t\u0000": 1}}'),
    "search unknown field named by a surrogate": _json(
        "/api/search", r'{"query": "휴가", "\ud800": 1}'
    ),
    "search bad filter under a surrogate key": _json(
        "/api/search", r'{"query": "휴가", "filters": {"\ud800": {"a": 1}}}'
    ),
    "chat question NUL": _json("/api/chat", r'{"question": "휴가는\u0000?"}'),
    "chat question surrogate": _json("/api/chat", r'{"question": "휴가는\ud800?"}'),
    "chat history NUL": _json(
        "/api/chat",
        r'{"question": "휴가는?", "history": [{"role": "user", "content": "\u0000"}]}',
    ),
    "chat collection NUL": _json("/api/chat", r'{"question": "휴가는?", "collection": "\u0000"}'),
    "chat filter value surrogate": _json(
        "/api/chat", r'{"question": "휴가는?", "filters": {"team": "\udfff"}}'
    ),
    "chat stream question NUL": _json("/api/chat/stream", r'{"question": "\u0000"}'),
    "document id NUL": lambda client: client.get("/api/documents/doc%00x"),
    "delete document id NUL": lambda client: client.delete("/api/documents/doc%00x"),
    "list collection NUL": lambda client: client.get("/api/documents?collection=a%00"),
    "upload collection NUL": _upload(("휴가.txt", GOOD), collection="팀\x00"),
    "upload file name NUL": _raw_upload("휴가\x00.txt".encode(), GOOD),
}


def _error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert {"code", "message"} <= set(error)
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


@pytest.mark.parametrize("send", REFUSED.values(), ids=REFUSED.keys())
def test_nul_and_lone_surrogates_in_requests_are_422(api: Api, send: Send) -> None:
    response = send(api.client)
    assert response.status_code == 422, response.text
    assert _error(response)["code"] == "invalid_input"


def _is_clean(value: Any) -> bool:
    """NFC, no control characters but newline and tab, no surrogates, in every key and string."""
    if isinstance(value, dict):
        return all(_is_clean(k) and _is_clean(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_clean(item) for item in value)
    if not isinstance(value, str):
        return True
    return unicodedata.is_normalized("NFC", value) and not any(
        unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t" for c in value
    )


def _search(api: Api, query: str, **body: Any) -> list[dict[str, Any]]:
    response = api.client.post(
        "/api/search", json={"query": query, "mode": "sparse", "top_k": 10, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_decomposed_hangul_is_stored_composed_and_found_either_way(api: Api) -> None:
    text = "재택근무는 화요일과 목요일에 신청합니다. 신청서는 전날까지 팀장에게 냅니다."
    name = unicodedata.normalize("NFD", "재택근무.txt")
    # A NUL would make the file binary; the other control characters are dropped.
    body = unicodedata.normalize("NFD", text) + "\x07\x1b\r\n끝."
    response = _upload((name, body.encode()), collection="boundary-nfd")(api.client)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["outcome"] == "indexed" and result["filename"] == "재택근무.txt"

    [document] = api.client.get("/api/documents?collection=boundary-nfd").json()["documents"]
    assert (document["source"], document["title"]) == ("재택근무.txt", "재택근무")
    for query in ("재택근무 신청", unicodedata.normalize("NFD", "재택근무 신청")):
        hits = _search(api, query, collection="boundary-nfd")
        assert [h["document_id"] for h in hits] == [document["id"]]
        assert hits[0]["text"] == text + "\n끝."
        assert _is_clean(hits[0])


def test_jsonl_fields_with_nul_and_surrogates_are_stored_clean(api: Api) -> None:
    lines = [
        r'{"id": "faq\u0000-1", "title": "휴가\u0000 안내\ud800", "text": "연차는 매달\u0000 하루씩'
        r' 생깁니다.", "metadata": {"te\u0000am": "인사\u0007팀", "tags": ["a\ud800", "b"]}}',
        r'{"id": "faq-2", "text": "법인카드는 출장비에만 씁니다.\u001b", "metadata": {"team": "재무"}}',
    ]
    response = _upload(
        ("자주묻는질문.jsonl", "\n".join(lines).encode()), collection="boundary-jsonl"
    )(api.client)
    assert response.status_code == 200, response.text
    assert [(r["document_id"], r["outcome"]) for r in response.json()["results"]] == [
        ("faq-1", "indexed"),
        ("faq-2", "indexed"),
    ]

    document = api.client.get("/api/documents/faq-1").json()
    assert document["title"] == "휴가 안내\ufffd"
    assert document["metadata"] == {"team": "인사팀", "tags": ["a\ufffd", "b"]}
    hits = _search(api, "연차 하루", collection="boundary-jsonl", filters={"team": "인사팀"})
    assert [h["document_id"] for h in hits] == ["faq-1"]
    assert hits[0]["text"] == "연차는 매달 하루씩 생깁니다."
    for listed in api.client.get("/api/documents?collection=boundary-jsonl").json()["documents"]:
        assert _is_clean(listed)
    assert _is_clean(_search(api, "법인카드 출장비", collection="boundary-jsonl"))


def test_one_bad_file_never_sinks_the_others(api: Api) -> None:
    # A loader's own bug is covered in-process (tests/retriever/test_ingest_isolation.py); here
    # a hostile file breaks its parsing process while the files around it are indexed.
    hwp = make_hwp(
        [["분기 보고서 본문입니다. 매출은 전년보다 늘었습니다."]], title="분기 보고서\x00\x00홍길동"
    )
    response = _upload(
        ("좋은.txt", "출장비는 하루 5만 원까지 지원합니다.".encode()),
        ("깊은.html", deep_html(5_000)),
        ("보고서.hwp", hwp),
        collection="boundary-mixed",
    )(api.client)
    assert response.status_code == 200, response.text
    results = {r["filename"]: r for r in response.json()["results"]}
    assert {name: r["outcome"] for name, r in results.items()} == {
        "좋은.txt": "indexed",
        "깊은.html": "rejected",
        "보고서.hwp": "indexed",
    }
    rejected = results["깊은.html"]
    assert rejected["document_id"] is None
    assert _error_detail(rejected)["code"] == "too_deep"

    documents = api.client.get("/api/documents?collection=boundary-mixed").json()["documents"]
    titles = {d["source"]: d["title"] for d in documents}
    assert set(titles) == {"좋은.txt", "보고서.hwp"}
    assert titles["보고서.hwp"].startswith("분기 보고서") and _is_clean(titles["보고서.hwp"])
    assert _search(api, "출장비", collection="boundary-mixed")
    assert _search(api, "매출 전년", collection="boundary-mixed")

    # A line whose id another collection holds is a document of this collection: both stay, and
    # the broken file beside them fails alone.
    taken = json.dumps(
        {"id": "boundary-taken", "text": "다른 팀의 문서입니다."}, ensure_ascii=False
    )
    assert (
        _upload(("다른팀.jsonl", taken.encode()), collection="boundary-other")(api.client).json()[
            "results"
        ][0]["outcome"]
        == "indexed"
    )
    lines = [{"id": "boundary-new", "text": "새 문서입니다."}, json.loads(taken)]
    second = _upload(
        ("둘째.txt", "재택근무는 주 2일까지 합니다.".encode()),
        ("겹침.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines).encode()),
        ("깨진.jsonl", b'{"text": "first"}\n{not json'),
        collection="boundary-mixed",
    )(api.client)
    assert second.status_code == 200, second.text
    results = second.json()["results"]
    assert [(r["filename"], r["document_id"], r["outcome"]) for r in results] == [
        ("둘째.txt", results[0]["document_id"], "indexed"),
        ("겹침.jsonl", "boundary-new", "indexed"),
        ("겹침.jsonl", "boundary-taken", "indexed"),
        ("깨진.jsonl", None, "rejected"),
    ]
    for collection in ("boundary-mixed", "boundary-other"):
        found = api.client.get("/api/documents/boundary-taken", params={"collection": collection})
        assert found.status_code == 200 and found.json()["collection"] == collection
    assert "line 2" in _error_detail(results[3])["message"]


def _error_detail(result: dict[str, Any]) -> dict[str, Any]:
    assert result["error"] is not None and {"code", "message"} <= set(result["error"])
    return result["error"]
