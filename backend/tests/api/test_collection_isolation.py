"""Collections isolate, over a real server: a document id is unique within its collection only,
reads and deletes stay in the collections a key may use, and errors say nothing of the others.
Re-uploading a file removes the documents it no longer holds only when asked (``replace``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.auth.roles import Role
from app.auth.store import KeyStore
from app.main import create_app
from tests.api.test_access_control import CLIENT_TIMEOUT_S, _bearer, _guarded_settings
from tests.utils.live_server import live_server


@dataclass
class Keys:
    client: httpx.Client
    admin: dict[str, str]
    editor: dict[str, str]
    """May use collection ``a`` only."""


@pytest.fixture(scope="module")
def keys(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    settings = _guarded_settings(pg_url, tmp_path_factory.mktemp("data"))
    schema = f"iso_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        store = KeyStore(pg_url, schema)
        _, admin = store.create(Role.admin, name="admin")
        _, editor = store.create(Role.editor, name="editor of a", collections=["a"])
        yield Keys(client, _bearer(admin), _bearer(editor))


def _jsonl(*lines: tuple[str, str]) -> bytes:
    return "\n".join(
        json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in lines
    ).encode()


def _upload(
    keys: Keys,
    collection: str,
    name: str,
    data: bytes,
    *,
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    response = keys.client.post(
        "/api/documents",
        headers=headers or keys.admin,
        data={"collection": collection, **(form or {})},
        params=params,
        files=[("files", (name, data, "application/octet-stream"))],
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _search(keys: Keys, collection: str, query: str) -> list[tuple[str, str]]:
    response = keys.client.post(
        "/api/search",
        json={"query": query, "collection": collection, "mode": "sparse"},
        headers=keys.admin,
    )
    assert response.status_code == 200, response.text
    return [(r["document_id"], r["text"]) for r in response.json()["results"]]


def _without(body: dict[str, Any], document_id: str) -> str:
    """An error body with the id the request named taken out, to compare two of them."""
    return json.dumps(body, sort_keys=True, ensure_ascii=False).replace(document_id, "ID")


def test_the_same_id_in_two_collections_is_two_documents(keys: Keys) -> None:
    client, admin = keys.client, keys.admin
    texts = {"a": "가 모음의 출장 규정입니다.", "b": "나 모음의 출장 규정은 다릅니다."}
    for collection, text in texts.items():
        [result] = _upload(keys, collection, "shared.jsonl", _jsonl(("twin", text)))
        assert (result["document_id"], result["outcome"]) == ("twin", "indexed")
    for collection, text in texts.items():
        assert ("twin", text) in _search(keys, collection, "출장 규정")
        one = client.get("/api/documents/twin", params={"collection": collection}, headers=admin)
        assert one.status_code == 200 and one.json()["collection"] == collection

    ambiguous = client.get("/api/documents/twin", headers=admin)
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["code"] == "document_ambiguous"
    assert client.delete("/api/documents/twin", headers=admin).status_code == 409

    deleted = client.delete("/api/documents/twin", params={"collection": "a"}, headers=admin)
    assert deleted.status_code == 204
    gone = client.get("/api/documents/twin", params={"collection": "a"}, headers=admin)
    assert gone.status_code == 404
    assert all(i != "twin" for i, _ in _search(keys, "a", "출장 규정"))
    assert ("twin", texts["b"]) in _search(keys, "b", "출장 규정")
    # One collection holds it now: the id alone names it.
    assert client.get("/api/documents/twin", headers=admin).json()["collection"] == "b"


def test_an_editor_of_a_cannot_read_or_delete_bs_documents_and_learns_nothing_of_b(
    keys: Keys,
) -> None:
    client, editor = keys.client, keys.editor
    _upload(keys, "b", "b.jsonl", _jsonl(("only-b", "나 모음만의 문서"), ("both", "나 모음 쪽")))
    _upload(keys, "a", "a.jsonl", _jsonl(("both", "가 모음 쪽")))

    # "Exists in b" and "does not exist" answer alike, named collection or not.
    for method in ("GET", "DELETE"):
        for params in ({}, {"collection": "b"}):
            in_b = client.request(method, "/api/documents/only-b", params=params, headers=editor)
            nowhere = client.request(
                method, "/api/documents/no-such-doc", params=params, headers=editor
            )
            assert in_b.status_code == nowhere.status_code == (403 if params else 404)
            assert _without(in_b.json(), "only-b") == _without(nowhere.json(), "no-such-doc")
            assert " b" not in in_b.json()["error"]["message"]

    # An id both collections hold is the editor's own document: no parameter needed, and
    # deleting it leaves b's.
    mine = client.get("/api/documents/both", headers=editor)
    assert mine.status_code == 200 and mine.json()["collection"] == "a"
    assert client.delete("/api/documents/both", headers=editor).status_code == 204
    assert client.get("/api/documents/both", headers=editor).status_code == 404
    theirs = client.get("/api/documents/both", headers=keys.admin)
    assert theirs.status_code == 200 and theirs.json()["collection"] == "b"
    assert client.get("/api/documents/only-b", headers=keys.admin).status_code == 200


def test_a_re_upload_removes_the_lines_it_no_longer_holds_only_with_replace(keys: Keys) -> None:
    lines = [(f"rule-{n}", f"{n}번 규정: 휴가는 {n}일 전에 신청합니다.") for n in range(1, 6)]
    results = _upload(keys, "a", "rules.jsonl", _jsonl(*lines), headers=keys.editor)
    assert [r["outcome"] for r in results] == ["indexed"] * 5

    def stored() -> set[str]:
        page = keys.client.get(
            "/api/documents", params={"collection": "a", "limit": 500}, headers=keys.editor
        ).json()
        return {d["id"] for d in page["documents"] if d["source"] == "rules.jsonl"}

    one_line = _jsonl(lines[0])
    [kept] = _upload(keys, "a", "rules.jsonl", one_line, headers=keys.editor)
    assert kept["outcome"] == "unchanged"
    assert stored() == {i for i, _ in lines}

    two_lines = _jsonl(*lines[:2])
    replaced = _upload(
        keys, "a", "rules.jsonl", two_lines, headers=keys.editor, form={"replace": "true"}
    )
    assert sorted((r["document_id"], r["outcome"]) for r in replaced) == [
        ("rule-1", "unchanged"),
        ("rule-2", "unchanged"),
        ("rule-3", "removed"),
        ("rule-4", "removed"),
        ("rule-5", "removed"),
    ]
    assert stored() == {"rule-1", "rule-2"}
    # The query parameter asks the same.
    by_query = _upload(
        keys, "a", "rules.jsonl", one_line, headers=keys.editor, params={"replace": "true"}
    )
    assert [(r["document_id"], r["outcome"]) for r in by_query] == [
        ("rule-1", "unchanged"),
        ("rule-2", "removed"),
    ]
    assert stored() == {"rule-1"}
