"""One upload of files that would each hold the server for minutes or gigabytes, beside a good one:
every bad file is refused with its reason, the good one is indexed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.core.config import APISettings, ParseSettings
from app.main import create_app
from tests.api.conftest import Api, make_settings
from tests.utils.documents import make_docx, make_hwpx
from tests.utils.hostile_files import Member, deep_html, jsonl, with_member
from tests.utils.live_server import live_server

MB = 1024 * 1024
# A megabyte of section XML, repeated to make members of hundreds of megabytes.
SECTION_CHUNK = (
    "<hp:p><hp:run><hp:t>되풀이되는 문단입니다.</hp:t></hp:run></hp:p>" * 20_000
).encode()[:MB]
PARSING = ParseSettings(
    timeout_s=2,
    memory_mb=128,
    max_expanded_mb=256,
    # Nothing refuses the deep page up front: the clock stops it.
    max_html_depth=200_000,
    max_document_chars=1000,
    workers=1,
)


@pytest.fixture(scope="module")
def api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(pg_url, tmp_path_factory.mktemp("data")).model_copy(
        update={
            "api": APISettings(index_sample_corpus=False, max_upload_mb=4.0, max_files=8),
            "parsing": PARSING,
        }
    )
    schema = f"api_{uuid.uuid4().hex[:10]}"
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield Api(url, client, settings, schema)


def test_each_file_over_a_limit_fails_alone_with_its_reason(api: Api) -> None:
    files = {
        "규정.txt": "출장비는 하루 5만 원까지 지원합니다.".encode(),
        "slow.html": deep_html(100_000),
        "lying.docx": with_member(
            make_docx(["문단"]),
            Member("word/document.xml", SECTION_CHUNK, times=300, claimed_size=1000),
        ),
        "long.jsonl": jsonl({"id": "a", "text": "짧은 줄"}, {"id": "b", "text": "a" * 2000}),
        "huge.hwpx": with_member(
            make_hwpx([["본문"]]), Member("Contents/section0.xml", SECTION_CHUNK, times=300)
        ),
        "hog.docx": with_member(make_docx(["문단"]), Member("word/media/x.bin", b"\0" * MB, 200)),
    }
    response = api.client.post(
        "/api/documents",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files.items()],
        data={"collection": "bounded"},
    )
    assert response.status_code == 200, response.text
    results = {r["filename"]: r for r in response.json()["results"]}
    assert results["규정.txt"]["outcome"] == "indexed"
    refused = {
        name: (r["outcome"], r["error"]["code"])
        for name, r in results.items()
        if name != "규정.txt"
    }
    assert refused == {
        "slow.html": ("rejected", "parse_timeout"),
        "lying.docx": ("rejected", "invalid_input"),
        "long.jsonl": ("rejected", "document_too_long"),
        "huge.hwpx": ("rejected", "file_too_large"),
        "hog.docx": ("rejected", "parse_memory"),
    }
    assert "its header says" in results["lying.docx"]["error"]["message"]
    assert results["slow.html"]["error"]["params"] == {"filename": "slow.html", "limit_s": 2.0}

    listed = api.client.get("/api/documents", params={"collection": "bounded"}).json()
    assert [d["source"] for d in listed["documents"]] == ["규정.txt"]
    hits = api.client.post(
        "/api/search", json={"query": "출장비", "collection": "bounded", "mode": "sparse"}
    ).json()["results"]
    assert hits and hits[0]["text"].startswith("출장비")
