"""Each file on its own: a bad one fails alone, and a file of many documents is stored whole or
not at all. On the embedded PostgreSQL with the offline hash embedder and real Kiwi."""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever import indexer as indexer_module
from app.retriever.indexer import Indexer
from app.retriever.loaders import LOADERS, LoadedDocument, load_documents
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens
from tests.conftest import StoreFactory
from tests.utils.documents import make_hwp

SETTINGS = RetrievalSettings(chunk_size=200, chunk_overlap=40)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dimension=64)


@pytest.fixture
def store(store_factory: StoreFactory, embedder: HashEmbedder) -> PGVectorStore:
    return store_factory(dimension=embedder.dimension, embedder_name=embedder.name)


@pytest.fixture
def indexer(
    store: PGVectorStore, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> Indexer:
    # Parsed in this process, so that the loaders these tests break are the ones that run.
    monkeypatch.setattr(
        indexer_module,
        "parse_bounded",
        lambda filename, data, limits: load_documents(filename, data),
    )
    return Indexer(store, embedder, SETTINGS, max_file_bytes=100_000)


def _jsonl(*records: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()


def _texts(store: PGVectorStore, query: str, collection: str) -> dict[str, str]:
    hits = store.search_sparse(search_tokens(query), k=50, collection=collection)
    return {h.document_id: h.text for h in hits}


class _RefusedVectors(HashEmbedder):
    """The hash embedder, except that a text holding ``marker`` gets a vector the store refuses."""

    def __init__(self, marker: str) -> None:
        super().__init__(dimension=64)
        self._marker = marker

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        vectors = super().embed_array(texts)
        vectors[[i for i, text in enumerate(texts) if self._marker in text]] = np.nan
        return vectors


def _broken_loader(filename: str, data: bytes) -> list[LoadedDocument]:
    raise KeyError("a bug in the Markdown loader")


def test_a_folder_goes_on_past_bad_files(
    indexer: Indexer, store: PGVectorStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(LOADERS, ".md", _broken_loader)
    (tmp_path / "a.txt").write_text("첫 번째 문서입니다. 출장비를 다룹니다.", encoding="utf-8")
    (tmp_path / "b.md").write_text("# 버그\n\n읽히지 않는 문서", encoding="utf-8")
    (tmp_path / "c.hwp").write_bytes(
        make_hwp([["한글 문서의 본문입니다."]], title="주간 보고\x00\x00작성자\x00홍길동")
    )
    (tmp_path / "d.jsonl").write_bytes(_jsonl({"id": "d-1", "text": "좋은 줄"}) + b"\n{broken")
    nfd = unicodedata.normalize("NFD", "재택근무는 주 2일까지 신청합니다.")
    (tmp_path / unicodedata.normalize("NFD", "재택.txt")).write_text(nfd, encoding="utf-8")

    results = indexer.ingest_path(tmp_path, collection="folder")
    outcomes = {r.source: r.outcome for r in results}
    assert outcomes == {
        "a.txt": "indexed",
        "b.md": "failed",
        "c.hwp": "indexed",
        "d.jsonl": "failed",
        "재택.txt": "indexed",
    }
    errors = {r.source: r.error or "" for r in results}
    assert errors["b.md"] == "KeyError: 'a bug in the Markdown loader'"
    assert "line 2" in errors["d.jsonl"]

    documents = {d.source: d for d in store.list_documents("folder")}
    assert set(documents) == {"a.txt", "c.hwp", "재택.txt"}
    title = documents["c.hwp"].title
    assert title.startswith("주간 보고") and "\x00" not in title
    assert documents["재택.txt"].title == "재택"
    [hit] = store.search_sparse(search_tokens("재택근무 신청"), k=5, collection="folder")
    assert hit.text == unicodedata.normalize("NFC", nfd)


def test_a_line_that_cannot_be_stored_leaves_the_file_as_it_was(
    indexer: Indexer, store: PGVectorStore
) -> None:
    indexer.ingest_bytes(
        "other.jsonl", _jsonl({"id": "taken", "text": "남의 문서"}), collection="b"
    )
    first = [
        {"id": "r1", "text": "연차 휴가는 매달 하루씩 생깁니다."},
        {"id": "r2", "text": "법인카드는 출장비에만 씁니다."},
        {"id": "r3", "text": "재택근무는 주 2일까지 신청합니다."},
    ]
    assert [
        r.outcome for r in indexer.ingest_bytes("rules.jsonl", _jsonl(*first), collection="a")
    ] == ["indexed"] * 3
    before = {d.id: d for d in store.list_documents("a")}

    # Lines 1 and 2 change, line 3 is dropped (so r3 would be removed), and line 4 (whose id
    # collection b holds too) gets a vector the store refuses.
    second = [
        {"id": "r1", "text": "연차 휴가는 입사 첫날부터 생깁니다."},
        {"id": "r2", "text": "법인카드는 회의비에도 씁니다."},
        {"id": "new", "text": "새로 들어온 규정입니다."},
        {"id": "taken", "text": "저장할 수 없는 줄"},
    ]
    refusing = Indexer(store, _RefusedVectors("저장할 수 없는"), SETTINGS)
    [failed] = refusing.ingest_bytes("rules.jsonl", _jsonl(*second), collection="a", replace=True)
    assert (failed.outcome, failed.document_id) == ("failed", "taken")
    assert failed.error is not None
    assert "(4 of 4)" in failed.error and "NaN" in failed.error
    assert "nothing from rules.jsonl was stored" in failed.error

    assert {d.id: d for d in store.list_documents("a")} == before
    assert _texts(store, "연차 휴가", "a") == {"r1": first[0]["text"]}
    assert _texts(store, "법인카드", "a") == {"r2": first[1]["text"]}
    assert _texts(store, "재택근무", "a") == {"r3": first[2]["text"]}
    assert store.get_document("new") is None
    assert store.get_document("taken").collection == "b"

    fixed = [*second[:3], {"id": "taken", "text": "다른 모음과 같은 아이디의 줄"}]
    results = indexer.ingest_bytes("rules.jsonl", _jsonl(*fixed), collection="a", replace=True)
    assert [(r.document_id, r.outcome) for r in results] == [
        ("r1", "indexed"),
        ("r2", "indexed"),
        ("new", "indexed"),
        ("taken", "indexed"),
        ("r3", "removed"),
    ]
    assert _texts(store, "연차 휴가", "a") == {"r1": second[0]["text"]}
    assert _texts(store, "남의 문서", "b") == {"taken": "남의 문서"}


def test_concurrent_uploads_of_one_jsonl_store_it_once(
    indexer: Indexer, store: PGVectorStore
) -> None:
    data = _jsonl(
        {"id": "c1", "text": "연차 휴가는 매달 하루씩 생깁니다."},
        {"id": "c2", "text": "법인카드는 출장비에만 씁니다."},
    )
    start = threading.Barrier(3)
    outcomes: list[list[str]] = []

    def ingest() -> None:
        start.wait()
        outcomes.append([r.outcome for r in indexer.ingest_bytes("같은.jsonl", data)])

    threads = [threading.Thread(target=ingest) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [["indexed", "indexed"], ["unchanged"] * 2, ["unchanged"] * 2]
    assert store.count_chunks() == sum(d.chunk_count for d in store.list_documents())


def test_pages_stay_on_their_text_when_normalising_changes_its_length(
    indexer: Indexer, store: PGVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentences = [
        "첫째 쪽은 연차 휴가를 다룹니다. 휴가는 매달 하루씩 생기고 다음 해로 넘길 수 있습니다.",
        "둘째 쪽은 출장비를 다룹니다. 숙박비는 영수증을 내야 받을 수 있고 식비는 하루 삼만 원입니다.",
        "셋째 쪽은 보안을 다룹니다. 노트북은 퇴근할 때 잠금장치가 있는 서랍에 넣어 둡니다.",
    ]
    # Decomposed Hangul is two to three times as long as composed: unadjusted page starts
    # would point far into later pages.
    pages = [unicodedata.normalize("NFD", (s + " ") * 3) + "\x00\x07\n" for s in sentences]
    starts = tuple(sum(len(p) for p in pages[:i]) for i in range(len(pages)))

    def paged(filename: str, data: bytes) -> list[LoadedDocument]:
        return [LoadedDocument("".join(pages), "쪽", {}, page_starts=starts)]

    monkeypatch.setitem(LOADERS, ".txt", paged)
    [result] = indexer.ingest_bytes("쪽.txt", b"pages")
    assert result.outcome == "indexed"
    for number, query in enumerate(
        ["연차 휴가 다음 해", "숙박비 영수증 식비", "노트북 잠금장치 서랍"], 1
    ):
        [hit, *_] = store.search_sparse(search_tokens(query), k=1)
        first, last = hit.metadata["page"], hit.metadata.get("page_end", hit.metadata["page"])
        assert first <= number <= last
        assert unicodedata.is_normalized("NFC", hit.text) and "\x00" not in hit.text
