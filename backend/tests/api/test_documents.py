"""Upload, re-upload, update, list, delete, and every way an upload can be refused."""

from __future__ import annotations

import threading

from tests.api.conftest import Api

KOREAN_DOC = (
    "사내 휴가 규정\n\n"
    "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다. 휴가 신청은 최소 사흘 전에 팀장에게 알려야 합니다.\n"
    "병가는 진단서가 있으면 연간 열흘까지 유급으로 쓸 수 있습니다."
)


def _upload(api: Api, *files: tuple[str, bytes], collection: str | None = None):
    data = {"collection": collection} if collection else None
    return api.client.post(
        "/api/documents",
        files=[("files", (name, content, "application/octet-stream")) for name, content in files],
        data=data,
    )


def _error_code(response) -> str:
    body = response.json()
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "params"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]["code"]


def test_upload_is_indexed_listed_and_idempotent(api: Api) -> None:
    first = _upload(api, ("휴가규정.txt", KOREAN_DOC.encode()))
    assert first.status_code == 200, first.text
    [result] = first.json()["results"]
    assert result["outcome"] == "indexed" and result["chunks"] >= 1
    document_id = result["document_id"]

    [again] = _upload(api, ("휴가규정.txt", KOREAN_DOC.encode())).json()["results"]
    assert again["outcome"] == "unchanged" and again["document_id"] == document_id

    listed = api.client.get("/api/documents").json()["documents"]
    [doc] = [d for d in listed if d["id"] == document_id]
    assert doc["status"] == "ready" and doc["source"] == "휴가규정.txt"
    assert doc["chunk_count"] == result["chunks"]
    assert api.client.get(f"/api/documents/{document_id}").json()["id"] == document_id


def test_changed_file_replaces_its_chunks(api: Api) -> None:
    old = "재택근무는 화요일과 목요일에 할 수 있습니다."
    new = "재택근무는 월요일과 금요일에만 할 수 있습니다."
    first = _upload(api, ("재택.txt", old.encode())).json()["results"][0]
    second = _upload(api, ("재택.txt", new.encode())).json()["results"][0]
    assert second["outcome"] == "indexed"
    assert second["document_id"] == first["document_id"]

    hits = api.client.post(
        "/api/search", json={"query": "재택근무 요일", "mode": "sparse", "top_k": 10}
    ).json()["results"]
    texts = [h["text"] for h in hits if h["document_id"] == first["document_id"]]
    assert texts and all("금요일" in t for t in texts)


def test_a_csv_row_taken_out_is_removed_only_on_replace(api: Api) -> None:
    header = "id,text\n"
    rows = [
        "r1,출장비는 영수증을 첨부해 청구합니다.\n",
        "r2,야근 식대는 저녁 8시 이후에 지원합니다.\n",
    ]
    first = _upload(api, ("경비.csv", (header + "".join(rows)).encode())).json()["results"]
    assert [(r["document_id"], r["outcome"]) for r in first] == [
        ("r1", "indexed"),
        ("r2", "indexed"),
    ]

    kept = _upload(api, ("경비.csv", (header + rows[0]).encode())).json()["results"]
    assert [(r["document_id"], r["outcome"]) for r in kept] == [("r1", "unchanged")]
    assert api.client.get("/api/documents/r2").status_code == 200

    second = api.client.post(
        "/api/documents",
        files=[("files", ("경비.csv", (header + rows[0]).encode(), "text/csv"))],
        data={"replace": "true"},
    ).json()["results"]
    assert [(r["filename"], r["document_id"], r["outcome"]) for r in second] == [
        ("경비.csv", "r1", "unchanged"),
        ("경비.csv", "r2", "removed"),
    ]
    assert api.client.get("/api/documents/r2").status_code == 404


def test_delete_removes_document_and_chunks(api: Api) -> None:
    result = _upload(
        api, ("삭제용.md", "# 삭제 시험\n\n이 문서는 곧 지워집니다. 고유어휘 펭귄사과.".encode())
    ).json()
    document_id = result["results"][0]["document_id"]
    assert api.client.delete(f"/api/documents/{document_id}").status_code == 204
    assert api.client.get(f"/api/documents/{document_id}").status_code == 404
    hits = api.client.post("/api/search", json={"query": "펭귄사과", "mode": "sparse"}).json()
    assert all(h["document_id"] != document_id for h in hits["results"])
    missing = api.client.delete(f"/api/documents/{document_id}")
    assert missing.status_code == 404 and _error_code(missing) == "document_not_found"


def test_concurrent_uploads_of_one_file_make_one_document(api: Api) -> None:
    content = "동시 업로드 시험 문서입니다. 같은 파일을 여러 번 동시에 올립니다.".encode()
    responses = []

    def upload() -> None:
        responses.append(_upload(api, ("동시.txt", content)))

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.json()["results"][0]["outcome"] for r in responses)
    assert outcomes == ["indexed", "unchanged", "unchanged", "unchanged"]
    listed = api.client.get("/api/documents").json()["documents"]
    assert sum(d["source"] == "동시.txt" for d in listed) == 1


def test_collection_scopes_upload_and_search(api: Api) -> None:
    _upload(
        api, ("모음.txt", "컬렉션 분리 시험: 고유어휘 해바라기우산.".encode()), collection="team-a"
    )
    in_a = api.client.post(
        "/api/search", json={"query": "해바라기우산", "collection": "team-a", "mode": "sparse"}
    ).json()["results"]
    in_default = api.client.post(
        "/api/search", json={"query": "해바라기우산", "collection": "default", "mode": "sparse"}
    ).json()["results"]
    assert in_a and in_a[0]["metadata"]["collection"] == "team-a"
    assert not in_default
    assert "team-a" in api.client.get("/api/collections").json()["collections"]


def test_unsupported_type_is_415(api: Api) -> None:
    response = _upload(api, ("program.exe", b"MZ\x90\x00binary"))
    assert response.status_code == 415
    assert _error_code(response) == "unsupported_type"
    assert response.json()["results"][0]["outcome"] == "rejected"


def test_content_that_does_not_match_extension_is_415(api: Api) -> None:
    response = _upload(api, ("report.pdf", "그냥 텍스트입니다".encode()))
    assert response.status_code == 415


def test_empty_file_is_422(api: Api) -> None:
    response = _upload(api, ("empty.txt", b""))
    assert response.status_code == 422


def test_file_over_limit_is_413(api: Api) -> None:
    response = _upload(api, ("big.txt", "가".encode() * 400_000))
    assert response.status_code == 413
    assert _error_code(response) == "file_too_large"


def test_body_over_limit_is_413_before_indexing(api: Api) -> None:
    chunks = [("files", (f"b{i}.txt", b"a" * 1_500_000, "text/plain")) for i in range(3)]
    response = api.client.post("/api/documents", files=chunks)
    assert response.status_code == 413
    assert _error_code(response) == "request_too_large"


def test_too_many_files_is_413(api: Api) -> None:
    files = [(f"f{i}.txt", f"파일 {i}".encode()) for i in range(4)]
    response = _upload(api, *files)
    assert response.status_code == 413 and _error_code(response) == "too_many_files"


def test_mixed_upload_reports_each_file(api: Api) -> None:
    response = _upload(api, ("좋은.txt", "정상 문서입니다.".encode()), ("나쁜.exe", b"MZ"))
    assert response.status_code == 200
    outcomes = {r["filename"]: r["outcome"] for r in response.json()["results"]}
    assert outcomes == {"좋은.txt": "indexed", "나쁜.exe": "rejected"}


def test_upload_without_files_is_422(api: Api) -> None:
    response = api.client.post("/api/documents", data={"collection": "x"})
    assert response.status_code == 422 and _error_code(response) == "invalid_input"


def test_chunked_body_over_limit_is_413(api: Api) -> None:
    boundary = "rag-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(20):
            yield b"a" * 256_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = api.client.post(
        "/api/documents",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert _error_code(response) == "request_too_large"
