"""``GET /api/documents`` a page at a time: newest first, a total, an opaque cursor, bounded limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Api


def _jsonl(prefix: str, count: int, text: str = "페이지 시험 문서 {n}번입니다.") -> bytes:
    lines = [
        json.dumps({"id": f"{prefix}-{n:03d}", "text": text.format(n=n)}, ensure_ascii=False)
        for n in range(count)
    ]
    return "\n".join(lines).encode()


def _upload(api: Api, name: str, data: bytes, collection: str) -> list[str]:
    response = api.client.post(
        "/api/documents",
        files=[("files", (name, data, "application/octet-stream"))],
        data={"collection": collection},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["outcome"] in ("indexed", "unchanged") for r in results), results
    return [r["document_id"] for r in results]


def _page(api: Api, **params: Any) -> dict[str, Any]:
    response = api.client.get("/api/documents", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def stored(api: Api) -> list[str]:
    """250 documents in the collection ``pages``, one upload of one ``.jsonl``."""
    ids = _upload(api, "pages.jsonl", _jsonl("p", 250), "pages")
    # A line's id is its document's id.
    assert sorted(ids) == [f"p-{n:03d}" for n in range(250)]
    return ids


def test_three_pages_list_each_document_once_while_documents_are_added(
    api: Api, stored: list[str]
) -> None:
    first = _page(api, collection="pages", limit=100)
    assert first["total"] == 250 and len(first["documents"]) == 100

    added = _upload(api, "added-1.jsonl", _jsonl("a", 10), "pages")
    second = _page(api, collection="pages", limit=100, cursor=first["next_cursor"])
    assert second["total"] == 260 and len(second["documents"]) == 100

    added += _upload(api, "added-2.jsonl", _jsonl("b", 10), "pages")
    third = _page(api, collection="pages", limit=100, cursor=second["next_cursor"])
    assert third["total"] == 270 and len(third["documents"]) == 50
    assert third["next_cursor"] is None

    listed = [d["id"] for page in (first, second, third) for d in page["documents"]]
    assert len(listed) == len(set(listed)) == 250
    assert set(listed) == set(stored)
    # The documents added meanwhile are newer than any on the pages read: the next first page.
    newest = _page(api, collection="pages", limit=20)["documents"]
    assert {d["id"] for d in newest} == set(added)


def test_pages_are_newest_first_and_a_reindexed_document_keeps_its_place(
    api: Api, stored: list[str]
) -> None:
    everything = _page(api, collection="pages", limit=500)["documents"]
    keys = [(d["created_at"], d["id"]) for d in everything]
    assert keys == sorted(keys, reverse=True)

    first = _page(api, collection="pages", limit=100)
    later = _page(api, collection="pages", limit=100, cursor=first["next_cursor"])
    # A document of a later page is indexed again (new text) before that page is read.
    target = later["documents"][-1]["id"]
    lines = _jsonl("p", 250).decode().splitlines()
    lines[int(target.removeprefix("p-"))] = json.dumps({"id": target, "text": "바뀐 글입니다."})
    response = api.client.post(
        "/api/documents",
        files=[("files", ("pages.jsonl", "\n".join(lines).encode(), "application/json"))],
        data={"collection": "pages"},
    )
    outcomes = {r["document_id"]: r["outcome"] for r in response.json()["results"]}
    assert outcomes[target] == "indexed"
    again = _page(api, collection="pages", limit=100, cursor=first["next_cursor"])
    assert [d["id"] for d in again["documents"]] == [d["id"] for d in later["documents"]]


def test_collections_page_apart_and_the_whole_list_counts_all(api: Api, stored: list[str]) -> None:
    other = _upload(api, "other.jsonl", _jsonl("o", 3, "다른 컬렉션 문서 {n}"), "other-pages")
    page = _page(api, collection="other-pages", limit=2)
    assert page["total"] == 3 and len(page["documents"]) == 2
    rest = _page(api, collection="other-pages", limit=2, cursor=page["next_cursor"])
    assert rest["next_cursor"] is None
    assert {d["id"] for d in page["documents"] + rest["documents"]} == set(other)

    everything = _page(api)
    assert everything["total"] >= len(stored) + len(other)
    assert len(everything["documents"]) == 100


@pytest.mark.parametrize(
    "cursor", ["nonsense", "", "eyJhIjogMX0", "WyIyMDI1LTAzLTAxVDA5OjAwOjAwIiwgImQiXQ"]
)
def test_a_cursor_the_server_did_not_give_is_422(api: Api, cursor: str) -> None:
    response = api.client.get("/api/documents", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", [0, 501, -1])
def test_limit_out_of_bounds_is_422(api: Api, limit: int) -> None:
    response = api.client.get("/api/documents", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert "limit" in response.json()["error"]["params"]["fields"]
