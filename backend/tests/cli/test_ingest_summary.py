"""``rag ingest`` over a folder of good and bad files: it goes on, sums up, and says so in its exit code."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from app.cli import main
from app.retriever import indexer as indexer_module
from app.retriever.loaders import LOADERS, LoadedDocument, load_documents
from tests.utils.documents import make_hwp


@pytest.fixture
def folder(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings through the environment, and a folder of three good files and three bad ones."""
    tmp_path = cli_env

    def broken(filename: str, data: bytes) -> list[LoadedDocument]:
        raise RuntimeError("a bug in the HTML loader")

    monkeypatch.setitem(LOADERS, ".html", broken)
    # Parsed in this process, so that the broken loader is the one that runs.
    monkeypatch.setattr(
        indexer_module,
        "parse_bounded",
        lambda filename, data, limits: load_documents(filename, data),
    )
    docs = tmp_path / "문서"
    docs.mkdir()
    (docs / "출장.md").write_text(
        "# 출장 규정\n\n국내 출장비는 하루 5만 원까지 지원합니다.", encoding="utf-8"
    )
    nfd = unicodedata.normalize("NFD", "재택근무는 주 2일까지 신청합니다.")
    (docs / unicodedata.normalize("NFD", "재택.txt")).write_text(nfd, encoding="utf-8")
    (docs / "보고서.hwp").write_bytes(
        make_hwp([["분기 매출은 전년보다 늘었습니다."]], title="분기 보고\x00\x00홍길동")
    )
    (docs / "버그.html").write_text("<p>읽히지 않습니다</p>", encoding="utf-8")
    (docs / "깨진.jsonl").write_text('{"text": "좋은 줄"}\n{깨진 줄', encoding="utf-8")
    (docs / "빈.txt").write_bytes(b"")
    return docs


def test_ingest_goes_on_past_bad_files_and_prints_a_summary(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(folder), "--quiet"]) == 1
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split() == ["outcome", "documents", "chunks", "file"]
    by_file = {row.split()[3]: row for row in rows}
    assert set(by_file) == {
        "깨진.jsonl",
        "버그.html",
        "보고서.hwp",
        "빈.txt",
        "재택.txt",
        "출장.md",
    }
    for name in ("보고서.hwp", "재택.txt", "출장.md"):
        outcome, documents, chunks, _ = by_file[name].split()
        assert (outcome, documents) == ("indexed", "1") and int(chunks) >= 1
    assert by_file["버그.html"].split()[:3] == ["failed", "0", "-"]
    assert "RuntimeError: a bug in the HTML loader" in by_file["버그.html"]
    assert "line 2" in by_file["깨진.jsonl"] and by_file["깨진.jsonl"].startswith("failed")
    assert "empty" in by_file["빈.txt"] and by_file["빈.txt"].startswith("failed")
    assert "6 files, 3 failed" in captured.err
    assert "Traceback" not in captured.out + captured.err

    for query, source in [
        ("출장비", "출장.md"),
        ("재택근무 신청", "재택.txt"),
        ("분기 매출", "보고서.hwp"),
    ]:
        assert main(["search", query, "--json", "--mode", "sparse", "--top-k", "1"]) == 0
        [hit] = json.loads(capsys.readouterr().out)["results"]
        assert hit["metadata"]["source"] == source

    assert main(["ingest", str(folder), "--quiet", "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert all(set(r) == {"document_id", "source", "outcome", "chunks", "error"} for r in results)
    outcomes = {r["source"]: r["outcome"] for r in results}
    assert outcomes == {
        "깨진.jsonl": "failed",
        "버그.html": "failed",
        "보고서.hwp": "unchanged",
        "빈.txt": "failed",
        "재택.txt": "unchanged",
        "출장.md": "unchanged",
    }


def test_ingest_of_good_files_only_exits_0(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("버그.html", "깨진.jsonl", "빈.txt"):
        (folder / bad).unlink()
    assert main(["ingest", str(folder), "--quiet"]) == 0
    assert main(["ingest", str(folder), "--quiet"]) == 0
    rows = capsys.readouterr().out.splitlines()[-3:]
    assert [row.split()[:3] for row in rows] == [["unchanged", "1", "-"]] * 3
