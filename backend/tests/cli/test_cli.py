"""The ``rag`` command against the real embedded database: ingest, search, ask, docs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.core.config import get_settings
from app.main import create_app
from tests.utils.live_server import live_server


@pytest.fixture
def env(cli_env: Path) -> Path:
    return cli_env


@pytest.fixture
def corpus(env: Path) -> Path:
    folder = env / "문서"
    folder.mkdir()
    (folder / "출장.md").write_text(
        "# 출장 규정\n\n국내 출장비는 하루 5만 원까지 지원합니다. 숙박비는 영수증을 내야 받을 수 있습니다.",
        encoding="utf-8",
    )
    (folder / "보안.txt").write_text(
        "노트북은 퇴근할 때 잠금장치가 있는 서랍에 보관합니다. 비밀번호는 90일마다 바꿉니다.",
        encoding="utf-8",
    )
    (folder / "무시.bin").write_bytes(b"\x00\x01")
    return folder


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_ingest_is_idempotent(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(corpus), "--quiet", "--json"]) == 0
    first = _json(capsys)
    assert sorted(r["outcome"] for r in first) == ["indexed", "indexed"]
    assert main(["ingest", str(corpus), "--quiet", "--json"]) == 0
    assert [r["outcome"] for r in _json(capsys)] == ["unchanged", "unchanged"]


def test_search_json_matches_the_api(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["ingest", str(corpus), "--quiet"])
    capsys.readouterr()
    assert main(["search", "출장비 한도", "--json", "--top-k", "3"]) == 0
    from_cli = _json(capsys)
    assert from_cli["results"][0]["metadata"]["source"] == "출장.md"

    app = create_app(get_settings(), frontend_dir=None)
    with live_server(app) as url:
        from_api = httpx.post(f"{url}/api/search", json={"query": "출장비 한도", "top_k": 3}).json()
    assert from_cli == from_api


def test_ask_cites_the_document(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["ingest", str(corpus), "--quiet"])
    capsys.readouterr()
    assert main(["ask", "비밀번호는 며칠마다 바꾸나요?", "--json"]) == 0
    answer = _json(capsys)
    assert "90일" in answer["answer"]
    cited = answer["sources"][answer["cited"][0] - 1]
    assert cited["source"] == "보안.txt"

    assert main(["ask", "비밀번호는 며칠마다 바꾸나요?"]) == 0
    out = capsys.readouterr().out
    assert "90일" in out and "보안.txt" in out


def test_docs_list_and_delete(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["ingest", str(corpus), "--quiet"])
    capsys.readouterr()
    assert main(["docs", "list", "--json"]) == 0
    documents = _json(capsys)["documents"]
    assert {d["source"] for d in documents} == {"출장.md", "보안.txt"}
    target = next(d["id"] for d in documents if d["source"] == "보안.txt")

    assert main(["docs", "delete", target]) == 0
    capsys.readouterr()
    main(["docs", "list", "--json"])
    assert {d["source"] for d in _json(capsys)["documents"]} == {"출장.md"}

    assert main(["docs", "delete", target]) == 2
    assert "no document" in capsys.readouterr().err.lower()


def test_missing_path_is_a_clear_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(env / "없음")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_flag_exits_with_usage(env: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "질문", "--mode", "magic"])
    assert exit_info.value.code == 2


def _jsonl_file(path: Path, *lines: tuple[str, str]) -> Path:
    rows = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in lines]
    path.write_text("\n".join(rows), encoding="utf-8")
    return path


def test_docs_delete_names_the_collection_of_an_id_two_hold(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for collection in ("a", "b"):
        file = _jsonl_file(env / f"{collection}.jsonl", ("twin", f"{collection} 모음의 문서"))
        assert main(["ingest", str(file), "--collection", collection, "--quiet"]) == 0
    capsys.readouterr()

    assert main(["docs", "delete", "twin"]) == 2
    assert "name the collection" in capsys.readouterr().err
    assert main(["docs", "delete", "twin", "--collection", "a"]) == 0
    capsys.readouterr()
    main(["docs", "list", "--json"])
    assert [(d["id"], d["collection"]) for d in _json(capsys)["documents"]] == [("twin", "b")]


def test_ingest_removes_lines_taken_out_only_with_sync(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [("r1", "연차 휴가는 매달 하루씩 생깁니다."), ("r2", "법인카드는 출장비에만 씁니다.")]
    file = _jsonl_file(env / "rules.jsonl", *lines)
    assert main(["ingest", str(file), "--quiet"]) == 0
    capsys.readouterr()
    _jsonl_file(file, lines[0])
    assert main(["ingest", str(file), "--quiet", "--json"]) == 0
    assert [(r["document_id"], r["outcome"]) for r in _json(capsys)] == [("r1", "unchanged")]
    main(["docs", "list", "--json"])
    assert {d["id"] for d in _json(capsys)["documents"]} == {"r1", "r2"}

    assert main(["ingest", str(file), "--quiet", "--json", "--sync"]) == 0
    assert [(r["document_id"], r["outcome"]) for r in _json(capsys)] == [
        ("r1", "unchanged"),
        ("r2", "removed"),
    ]
    main(["docs", "list", "--json"])
    assert {d["id"] for d in _json(capsys)["documents"]} == {"r1"}
