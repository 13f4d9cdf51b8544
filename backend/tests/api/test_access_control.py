"""API keys over a real server: who may do what, in which collections, and what a browser may send.

Keys are created in the database while the server runs, as ``rag keys create`` does; the server
trusts a verified key for ``AUTH_CACHE_S`` (0 here, so each request asks the database).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.auth.roles import Role
from app.auth.store import KeyStore
from app.core.config import AuthSettings, LLMSettings, OpenAISettings, Settings
from app.main import create_app
from tests.api.conftest import make_settings
from tests.conftest import drop_schema
from tests.utils.live_server import live_server
from tests.utils.stub_server import StubRequest, StubResponse, StubServer
from tests.utils.workers import BACKEND_DIR

# At most this many review requests per key: the third is refused.
REVIEWS_PER_KEY = 2
# A ceiling, not a measure: the first upload waits for a worker to load Kiwi on a busy machine.
CLIENT_TIMEOUT_S = 600
_SETTINGS_PREFIXES = ("DATABASE_", "LLM_", "EMBEDDING_", "RETRIEVAL_", "API_", "RAG_", "AUTH_")


@dataclass
class Guarded:
    """A server with keys of each role; the editor may use collection ``a`` only."""

    url: str
    client: httpx.Client
    keys: KeyStore
    operations: list[tuple[str, str]]
    """Every (method, path) the OpenAPI schema lists."""
    admin: dict[str, str]
    reader: dict[str, str]
    editor: dict[str, str]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _upload(client: httpx.Client, headers: dict[str, str], collection: str, name: str, text: str):
    return client.post(
        "/api/documents",
        headers=headers,
        data={"collection": collection},
        files=[("files", (name, text.encode(), "text/markdown"))],
    )


def _guarded_settings(pg_url: str, data_dir: Path, **auth: object) -> Settings:
    settings = make_settings(pg_url, data_dir)
    rates = {"rate_reviews": f"{REVIEWS_PER_KEY}/hour"}
    return settings.model_copy(update={"auth": AuthSettings(cache_s=0, **rates | auth)})


@pytest.fixture(scope="module")
def guarded(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    settings = _guarded_settings(pg_url, tmp_path_factory.mktemp("data"))
    schema = f"auth_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        keys = KeyStore(pg_url, schema)
        _, admin = keys.create(Role.admin, name="admin")
        _, reader = keys.create(Role.reader, name="reader")
        _, editor = keys.create(Role.editor, name="editor of a", collections=["a"])
        paths = app.openapi()["paths"]
        routes = [(method.upper(), path) for path, item in paths.items() for method in item]
        guarded = Guarded(
            url, client, keys, routes, _bearer(admin), _bearer(reader), _bearer(editor)
        )
        for collection in ("a", "b"):
            response = _upload(
                client,
                guarded.admin,
                collection,
                f"{collection}.md",
                f"# 문서 {collection}\n\n{collection} 모음의 휴가 규정입니다.",
            )
            assert response.status_code == 200, response.text
        yield guarded


def _document_of(guarded: Guarded, collection: str) -> str:
    page = guarded.client.get(
        "/api/documents", params={"collection": collection}, headers=guarded.admin
    )
    return page.json()["documents"][0]["id"]


def test_every_api_route_refuses_a_request_without_a_key(guarded: Guarded) -> None:
    api_routes = [(m, p) for m, p in guarded.operations if p.startswith("/api")]
    assert len(api_routes) >= 15
    for method, template in api_routes:
        path = re.sub(r"\{[^}]+\}", "x", template)
        response = guarded.client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "auth_required"
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_and_ready_stay_open(guarded: Guarded) -> None:
    assert guarded.client.get("/health").status_code == 200
    ready = guarded.client.get("/ready")
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize(
    "authorization",
    ["Bearer rag_000000000000_" + "x" * 43, "Bearer not-a-key", "Basic YWRtaW46YWRtaW4="],
)
def test_an_unknown_or_malformed_key_is_refused(guarded: Guarded, authorization: str) -> None:
    response = guarded.client.get("/api/documents", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_invalid"


def test_a_key_with_the_right_secret_but_another_id_is_refused(guarded: Guarded) -> None:
    reader_secret = guarded.reader["Authorization"].split("_", 2)[2]
    admin_id = guarded.admin["Authorization"].split("_")[1]
    forged = _bearer(f"rag_{admin_id}_{reader_secret}")
    assert guarded.client.get("/api/documents", headers=forged).status_code == 401


def test_a_reader_searches_and_chats_but_cannot_upload_delete_or_load(guarded: Guarded) -> None:
    client, reader = guarded.client, guarded.reader
    search = client.post("/api/search", json={"query": "휴가 규정"}, headers=reader)
    assert search.status_code == 200 and search.json()["results"]
    chat = client.post("/api/chat", json={"question": "휴가 규정은?"}, headers=reader)
    assert chat.status_code == 200
    assert client.get("/api/documents", headers=reader).json()["total"] == 2

    upload = _upload(client, reader, "a", "c.md", "# 새 문서")
    assert upload.status_code == 403
    assert upload.json()["error"]["code"] == "forbidden_role"
    delete = client.delete(f"/api/documents/{_document_of(guarded, 'a')}", headers=reader)
    assert delete.status_code == 403
    load = client.post(
        "/api/models/adapters", json={"name": "x", "path": "/nowhere"}, headers=reader
    )
    assert load.status_code == 403
    assert client.get("/api/documents", headers=guarded.admin).json()["total"] == 2


def test_an_editor_works_in_its_collection_and_learns_nothing_of_another(
    guarded: Guarded,
) -> None:
    client, editor = guarded.client, guarded.editor
    theirs = _document_of(guarded, "b")
    listing = client.get("/api/documents", headers=editor).json()
    assert {d["collection"] for d in listing["documents"]} == {"a"}
    assert client.get("/api/collections", headers=editor).json()["collections"] == ["a"]

    missing = client.get("/api/documents/no-such-id", headers=editor)
    hidden = client.get(f"/api/documents/{theirs}", headers=editor)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == "document_not_found"
    assert client.delete(f"/api/documents/{theirs}", headers=editor).status_code == 404
    assert client.get(f"/api/documents/{theirs}", headers=guarded.admin).status_code == 200

    refusals = [
        client.get("/api/documents", params={"collection": "b"}, headers=editor),
        client.post("/api/search", json={"query": "규정", "collection": "b"}, headers=editor),
        client.post("/api/chat", json={"question": "규정?", "collection": "b"}, headers=editor),
        _upload(client, editor, "b", "b2.md", "# 남의 모음"),
    ]
    for response in refusals:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "forbidden_collection"
        assert not re.search(r"\bb\b", error["message"]), error["message"]

    search = client.post("/api/search", json={"query": "휴가 규정"}, headers=editor).json()
    assert search["results"] and all(theirs != r["document_id"] for r in search["results"])
    mine = _upload(client, editor, "a", "a2.md", "# 문서 a2\n\na 모음의 두 번째 문서입니다.")
    assert mine.status_code == 200, mine.text
    new_id = mine.json()["results"][0]["document_id"]
    assert client.delete(f"/api/documents/{new_id}", headers=editor).status_code == 204


def test_an_editor_sees_only_its_collections_jobs(guarded: Guarded) -> None:
    client = guarded.client
    theirs = _upload(client, guarded.admin, "b", "b3.md", "# b3")
    mine = _upload(client, guarded.editor, "a", "a3.md", "# a3")
    assert theirs.status_code == mine.status_code == 200
    jobs = client.get("/api/jobs", headers=guarded.admin).json()["jobs"]
    visible = client.get("/api/jobs", headers=guarded.editor).json()["jobs"]
    assert 0 < len(visible) < len(jobs)
    hidden = next(j["id"] for j in jobs if j["id"] not in {v["id"] for v in visible})
    assert client.get(f"/api/jobs/{hidden}", headers=guarded.editor).status_code == 404
    cancel = client.post(f"/api/jobs/{hidden}/cancel", headers=guarded.editor)
    assert cancel.status_code == 404


def test_a_cross_origin_multipart_upload_is_refused(guarded: Guarded) -> None:
    client = guarded.client
    before = client.get("/api/documents", headers=guarded.admin).json()["total"]
    for browser in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(
            "/api/documents",
            headers=guarded.admin | browser,
            files=[("files", ("evil.md", b"# evil", "text/markdown"))],
        )
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "cross_origin_refused"
    assert client.get("/api/documents", headers=guarded.admin).json()["total"] == before
    same_origin = client.post(
        "/api/search",
        json={"query": "규정"},
        headers=guarded.reader | {"Origin": guarded.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert same_origin.status_code == 200


def test_a_request_to_a_foreign_host_name_is_refused(guarded: Guarded) -> None:
    for path in ("/api/status", "/ready", "/health"):
        response = guarded.client.get(
            path, headers=guarded.admin | {"Host": "rebound.evil.example"}
        )
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "host_not_allowed"
    assert guarded.client.get("/health", headers={"Host": "localhost"}).status_code == 200


def test_too_many_reviews_get_429_with_retry_after(guarded: Guarded) -> None:
    body = {"rating": 8, "n": 1, "max_new_tokens": 8, "seed": 1}
    answers = [
        guarded.client.post("/api/reviews/generate", json=body, headers=guarded.reader)
        for _ in range(REVIEWS_PER_KEY + 1)
    ]
    assert [a.status_code for a in answers] == [200] * REVIEWS_PER_KEY + [429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # Counted per key: another key still has its own allowance.
    other = guarded.client.post("/api/reviews/generate", json=body, headers=guarded.admin)
    assert other.status_code == 200


def test_a_revoked_key_stops_working(guarded: Guarded) -> None:
    record, key = guarded.keys.create(Role.reader, name="short-lived")
    assert guarded.client.get("/api/documents", headers=_bearer(key)).status_code == 200
    assert guarded.keys.revoke(record.id)
    response = guarded.client.get("/api/documents", headers=_bearer(key))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_invalid"


def test_without_keys_a_loopback_server_serves_the_local_user_until_a_key_exists(
    pg_url: str, tmp_path: Path
) -> None:
    settings = _guarded_settings(pg_url, tmp_path)
    schema = f"auth_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        assert client.get("/api/documents").status_code == 200
        # A request a reverse proxy forwarded may come from anywhere.
        forwarded = client.get("/api/documents", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status_code == 401
        _, key = KeyStore(pg_url, schema).create(Role.reader)
        assert client.get("/api/documents").status_code == 401
        assert client.get("/api/documents", headers=_bearer(key)).status_code == 200


def test_without_keys_a_non_loopback_server_does_not_start(pg_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env |= {"DATABASE_URL": pg_url, "RAG_DATA_DIR": str(tmp_path / "data")}
    env |= {"API_INDEX_SAMPLE_CORPUS": "false", "JOBS_SERVE_WORKERS": "0"}
    env["PYTHONPATH"] = str(BACKEND_DIR)
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", "0"]
    try:
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        drop_schema(pg_url, "rag")
    assert done.returncode != 0
    assert "rag keys create --role admin" in done.stderr
    assert "AUTH_DISABLED=true" in done.stderr


def test_auth_disabled_serves_a_non_loopback_server_without_keys(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _guarded_settings(pg_url, tmp_path, disabled=True)
    app = create_app(settings, schema=f"auth_{uuid.uuid4().hex[:10]}", bind_host="0.0.0.0")
    with live_server(app) as url:
        assert httpx.get(f"{url}/api/documents", timeout=CLIENT_TIMEOUT_S).status_code == 200
    assert any("AUTH_DISABLED=true" in r.getMessage() for r in caplog.records)


ECHOED_KEY = "sk-test-secret-0123456789"


def _echo_key(request: StubRequest) -> StubResponse:
    """A gateway that puts the key it was sent into its error message."""
    sent = request.headers.get("authorization", "")
    return StubResponse(401, {"error": {"message": f"bad key: {sent}", "type": "auth"}})


def test_an_upstream_that_echoes_its_key_never_shows_it_to_a_client(
    pg_url: str, tmp_path: Path
) -> None:
    with StubServer(_echo_key).running() as stub:
        settings = make_settings(pg_url, tmp_path).model_copy(
            update={
                "llm": LLMSettings(
                    provider="openai",
                    openai=OpenAISettings(base_url=f"{stub.url}/v1", api_key=ECHOED_KEY),
                    max_retries=0,
                )
            }
        )
        app = create_app(settings, schema=f"auth_{uuid.uuid4().hex[:10]}", frontend_dir=None)
        with (
            live_server(app) as url,
            httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client,
        ):
            upload = _upload(client, {}, "a", "a.md", "# 휴가 규정\n\n휴가는 15일입니다.")
            assert upload.status_code == 200, upload.text
            answers = [
                client.get("/ready"),
                client.post("/api/chat", json={"question": "휴가 규정?"}),
                client.post("/api/chat/stream", json={"question": "휴가 규정?"}),
                client.get("/api/status"),
            ]
        echoed = [r for r in stub.requests if ECHOED_KEY in r.headers.get("authorization", "")]
        assert len(echoed) >= 3
    assert answers[0].status_code == answers[1].status_code == 503
    assert "OpenAI rejected the API key (401)" in answers[0].text
    assert answers[1].json()["error"]["code"] == "model_unavailable"
    for answer in answers:
        assert ECHOED_KEY not in answer.text
        assert "sk-" not in answer.text and stub.url not in answer.text
