"""The indexer on the embedded PostgreSQL with the offline hash embedder and real Kiwi."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app.core.config import RetrievalSettings
from app.core.errors import InvalidInput, NotFound, TooLarge, Unsupported
from app.models.hash import HashEmbedder
from app.retriever.document_versions import derive_document_id
from app.retriever.indexer import Indexer
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens
from tests.conftest import StoreFactory
from tests.utils.documents import korquad_paragraphs, make_hwp, make_pdf

SETTINGS = RetrievalSettings(chunk_size=200, chunk_overlap=40)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dimension=64)


@pytest.fixture
def store(store_factory: StoreFactory, embedder: HashEmbedder) -> PGVectorStore:
    return store_factory(dimension=embedder.dimension, embedder_name=embedder.name)


@pytest.fixture
def indexer(store: PGVectorStore, embedder: HashEmbedder) -> Indexer:
    return Indexer(store, embedder, SETTINGS, max_file_bytes=100_000)


def _article(count: int = 3) -> str:
    return "\n\n".join(context for context, _ in korquad_paragraphs(count))


def _texts_of(store: PGVectorStore, document_id: str, query: str) -> list[str]:
    hits = store.search_sparse(search_tokens(query), k=50)
    return [h.text for h in hits if h.document_id == document_id]


def test_ingest_is_idempotent(indexer: Indexer, store: PGVectorStore) -> None:
    data = _article().encode()
    [first] = indexer.ingest_bytes("임종석.txt", data)
    assert first.outcome == "indexed" and first.chunks > 3 and first.source == "임종석.txt"
    assert first.document_id == derive_document_id("default", "임종석.txt")
    record = store.get_document(first.document_id)
    assert record is not None
    assert (record.status, record.chunk_count, record.title) == ("ready", first.chunks, "임종석")
    assert (record.collection, record.size_bytes) == ("default", len(data))

    [again] = indexer.ingest_bytes("임종석.txt", data)
    assert (again.outcome, again.document_id, again.chunks) == ("unchanged", first.document_id, 0)
    assert store.get_document(first.document_id) == record
    assert store.count_chunks() == first.chunks


def test_changed_file_replaces_its_chunks(indexer: Indexer, store: PGVectorStore) -> None:
    [first] = indexer.ingest_bytes(
        "재택.txt", "재택근무는 화요일과 목요일에 할 수 있습니다.".encode()
    )
    [second] = indexer.ingest_bytes(
        "재택.txt", "재택근무는 월요일과 금요일에만 할 수 있습니다.".encode()
    )
    assert second.outcome == "indexed" and second.document_id == first.document_id
    texts = _texts_of(store, first.document_id, "재택근무 목요일 금요일")
    assert texts == ["재택근무는 월요일과 금요일에만 할 수 있습니다."]


def test_chunking_settings_change_reindexes(
    indexer: Indexer, store: PGVectorStore, embedder: HashEmbedder
) -> None:
    data = _article().encode()
    [first] = indexer.ingest_bytes("기사.txt", data)
    finer = Indexer(store, embedder, RetrievalSettings(chunk_size=100, chunk_overlap=0))
    [second] = finer.ingest_bytes("기사.txt", data)
    assert second.outcome == "indexed" and second.chunks > first.chunks
    assert store.count_chunks() == second.chunks


def test_chunks_are_searchable_by_morphemes_and_meaning(
    indexer: Indexer, store: PGVectorStore, embedder: HashEmbedder
) -> None:
    contexts = korquad_paragraphs(6)
    for number, (context, _) in enumerate(contexts):
        indexer.ingest_bytes(f"문단{number}.txt", context.encode())
    _, questions = contexts[4]
    source = derive_document_id("default", "문단4.txt")
    sparse = store.search_sparse(search_tokens(questions[0]), k=3)
    dense = store.search_dense(embedder.embed_query(questions[0]), k=3)
    assert source in {h.document_id for h in sparse}
    assert source in {h.document_id for h in dense}


def test_delete_removes_document_and_chunks(indexer: Indexer, store: PGVectorStore) -> None:
    [result] = indexer.ingest_bytes(
        "삭제.md", "# 삭제 시험\n\n고유어휘 펭귄사과가 있는 문서.".encode()
    )
    assert result.document_id is not None
    indexer.delete(result.document_id)
    assert store.get_document(result.document_id) is None
    assert store.count_chunks() == 0
    assert store.search_sparse(search_tokens("펭귄사과"), k=5) == []
    with pytest.raises(NotFound) as missing:
        indexer.delete(result.document_id)
    assert missing.value.code == "document_not_found"


def test_concurrent_ingest_of_one_file_indexes_it_once(
    indexer: Indexer, store: PGVectorStore
) -> None:
    data = _article(2).encode()
    start = threading.Barrier(3)
    outcomes: list[str] = []

    def ingest() -> None:
        start.wait()
        outcomes.extend(r.outcome for r in indexer.ingest_bytes("동시.txt", data))

    threads = [threading.Thread(target=ingest) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["indexed", "unchanged", "unchanged"]
    [record] = store.list_documents()
    assert store.count_chunks() == record.chunk_count


def test_failure_mid_ingest_keeps_the_previous_version(
    indexer: Indexer, store: PGVectorStore
) -> None:
    old = "출장비는 하루 5만 원까지 지급합니다. 영수증을 첨부해야 합니다."
    new = "출장비는 하루 7만 원까지 지급합니다. 영수증은 전자로 제출합니다."
    [first] = indexer.ingest_bytes("출장.txt", old.encode())
    # An embedder the index was not built for: its vectors cannot be stored.
    misconfigured = Indexer(store, HashEmbedder(dimension=32), SETTINGS)
    [failed] = misconfigured.ingest_bytes("출장.txt", new.encode())
    assert failed.outcome == "failed" and failed.document_id == first.document_id
    assert failed.error is not None and "64 dimensions" in failed.error
    record = store.get_document(first.document_id)
    assert record is not None and (record.status, record.error) == ("failed", failed.error)
    assert _texts_of(store, first.document_id, "출장비 영수증") == [old]

    [retried] = indexer.ingest_bytes("출장.txt", new.encode())
    assert retried.outcome == "indexed"
    assert _texts_of(store, first.document_id, "출장비 영수증") == [new]


def test_jsonl_ids_and_metadata_round_trip(indexer: Indexer, store: PGVectorStore) -> None:
    lines = [
        {
            "id": "faq-1",
            "text": "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다.",
            "metadata": {"team": "인사", "year": 2024},
        },
        {
            "id": "faq-2",
            "text": "법인카드는 회의비와 출장비에만 씁니다.",
            "metadata": {"team": "재무"},
        },
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    results = indexer.ingest_bytes(
        "faq.jsonl", data, collection="faq", metadata={"origin": "upload"}
    )
    assert [(r.document_id, r.outcome) for r in results] == [
        ("faq-1", "indexed"),
        ("faq-2", "indexed"),
    ]
    record = store.get_document("faq-1")
    assert record is not None
    assert record.metadata == {"origin": "upload", "team": "인사", "year": 2024}
    assert (record.source, record.title, record.collection) == ("faq.jsonl", "faq-1", "faq")

    [hit] = store.search_sparse(
        search_tokens("연차 휴가"), k=5, collection="faq", filters={"team": "인사"}
    )
    assert hit.document_id == "faq-1"
    assert hit.metadata == {
        "origin": "upload",
        "team": "인사",
        "year": 2024,
        "source": "faq.jsonl",
        "title": "faq-1",
        "collection": "faq",
    }
    again = indexer.ingest_bytes("faq.jsonl", data, collection="faq", metadata={"origin": "upload"})
    assert [r.outcome for r in again] == ["unchanged", "unchanged"]


def _jsonl_rows(*rows: tuple[str, str]) -> bytes:
    lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in rows]
    return "\n".join(lines).encode()


_RULES = [
    ("a", "연차 휴가는 매달 하루씩 생깁니다."),
    ("b", "법인카드는 출장비에만 씁니다."),
    ("c", "재택근무는 주 2일까지 신청합니다."),
]


def test_a_file_ingested_again_without_replace_keeps_the_lines_it_no_longer_holds(
    indexer: Indexer, store: PGVectorStore
) -> None:
    indexer.ingest_bytes("rules.jsonl", _jsonl_rows(*_RULES), collection="rules")
    changed = ("a", "연차 휴가는 입사 첫날부터 생깁니다.")
    again = indexer.ingest_bytes("rules.jsonl", _jsonl_rows(changed), collection="rules")
    assert [(r.document_id, r.outcome) for r in again] == [("a", "indexed")]
    assert store.document_ids_from("rules", "rules.jsonl") == ["a", "b", "c"]
    assert store.search_sparse(search_tokens("재택근무"), k=5, collection="rules")
    # A one-document file does not remove the earlier documents of its source either.
    indexer.ingest_bytes("rules.jsonl", _jsonl_rows(*_RULES[:2]), collection="rules")
    [single] = indexer.ingest_bytes("rules.jsonl", _jsonl_rows(_RULES[0]), collection="rules")
    assert single.outcome == "unchanged"
    assert store.document_ids_from("rules", "rules.jsonl") == ["a", "b", "c"]


def test_a_line_taken_out_of_a_file_removes_its_document_on_replace(
    indexer: Indexer, store: PGVectorStore
) -> None:
    jsonl = _jsonl_rows
    rows = _RULES
    indexer.ingest_bytes("rules.jsonl", jsonl(*rows), collection="rules")
    indexer.ingest_bytes("other.jsonl", jsonl(("d", "다른 파일의 문서입니다.")), collection="rules")
    assert store.search_sparse(search_tokens("재택근무"), k=5, collection="rules")

    again = indexer.ingest_bytes("rules.jsonl", jsonl(*rows[:2]), collection="rules", replace=True)
    assert [(r.document_id, r.outcome) for r in again] == [
        ("a", "unchanged"),
        ("b", "unchanged"),
        ("c", "removed"),
    ]
    assert store.get_document("c") is None
    assert store.search_sparse(search_tokens("재택근무"), k=5, collection="rules") == []
    # Only documents of that file are touched, and a file that cannot be read removes nothing.
    assert store.get_document("d") is not None
    with pytest.raises(InvalidInput):
        indexer.ingest_bytes("rules.jsonl", b"{not json", collection="rules", replace=True)
    assert store.document_ids_from("rules", "rules.jsonl") == ["a", "b"]
    # Down to one document, the file removes the other on replace too.
    [kept, removed] = indexer.ingest_bytes(
        "rules.jsonl", jsonl(rows[0]), collection="rules", replace=True
    )
    assert (kept.outcome, removed.document_id, removed.outcome) == ("unchanged", "b", "removed")


def test_documents_without_ids_in_one_file_get_distinct_stable_ids(indexer: Indexer) -> None:
    data = "\n".join(
        json.dumps({"text": t}, ensure_ascii=False) for t in ["첫째 문서", "둘째 문서"]
    ).encode()
    results = indexer.ingest_bytes("묶음.jsonl", data)
    assert [r.document_id for r in results] == [
        derive_document_id("default", "묶음.jsonl", 0),
        derive_document_id("default", "묶음.jsonl", 1),
    ]


def test_the_same_id_in_two_collections_is_two_documents(
    indexer: Indexer, store: PGVectorStore
) -> None:
    line = json.dumps({"id": "shared", "text": "공용 문서입니다."}, ensure_ascii=False).encode()
    [first] = indexer.ingest_bytes("a.jsonl", line, collection="team-a")
    [second] = indexer.ingest_bytes("b.jsonl", line, collection="team-b")
    assert (first.outcome, second.outcome) == ("indexed", "indexed")
    assert [r.collection for r in store.documents_with_id("shared")] == ["team-a", "team-b"]
    for collection in ("team-a", "team-b"):
        [hit] = store.search_sparse(search_tokens("공용 문서"), k=5, collection=collection)
        assert hit.document_id == "shared" and hit.metadata["collection"] == collection
    indexer.delete("shared", collection="team-a")
    assert store.get_document("shared", collection="team-a") is None
    record = store.get_document("shared")
    assert record is not None and (record.collection, record.status) == ("team-b", "ready")


def test_pdf_chunks_cite_their_page(store: PGVectorStore, embedder: HashEmbedder) -> None:
    pages = [context for context, _ in korquad_paragraphs(3)]
    indexer = Indexer(store, embedder, RetrievalSettings(chunk_size=300, chunk_overlap=0))
    [result] = indexer.ingest_bytes("보고서.pdf", make_pdf(pages))
    assert result.outcome == "indexed"
    for number, page in enumerate(pages, start=1):
        sentence = page.split(". ")[1]
        [hit, *_] = store.search_sparse(search_tokens(sentence), k=1)
        assert sentence in hit.text
        # A chunk that runs over a page break names both ends.
        first, last = hit.metadata["page"], hit.metadata.get("page_end", hit.metadata["page"])
        assert first <= number <= last and hit.metadata["page_count"] == 3


def test_ingest_path_walks_a_folder(indexer: Indexer, store: PGVectorStore, tmp_path: Path) -> None:
    (tmp_path / "sub" / ".git").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("첫 번째 문서입니다.", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# 둘째\n\n두 번째 문서입니다.", encoding="utf-8")
    (tmp_path / "sub" / "c.hwp").write_bytes(make_hwp([["한글 문서입니다."]]))
    (tmp_path / "broken.pdf").write_text("PDF가 아닌 내용", encoding="utf-8")
    (tmp_path / "image.gif").write_bytes(b"GIF89a")
    (tmp_path / "sub" / ".git" / "config.txt").write_text("숨은 파일", encoding="utf-8")
    (tmp_path / "~$a.docx").write_bytes(b"lock")
    calls: list[tuple[int, int, str]] = []

    results = indexer.ingest_path(
        tmp_path, collection="folder", progress=lambda *c: calls.append(c)
    )
    assert [(r.source, r.outcome) for r in results] == [
        ("a.txt", "indexed"),
        ("broken.pdf", "failed"),
        ("sub/b.md", "indexed"),
        ("sub/c.hwp", "indexed"),
    ]
    assert results[1].document_id is None and "not a PDF" in (results[1].error or "")
    assert calls == [(1, 4, "a.txt"), (2, 4, "broken.pdf"), (3, 4, "sub/b.md"), (4, 4, "sub/c.hwp")]
    assert {d.source for d in store.list_documents("folder")} == {"a.txt", "sub/b.md", "sub/c.hwp"}

    again = indexer.ingest_path(tmp_path, collection="folder")
    assert [r.outcome for r in again] == ["unchanged", "failed", "unchanged", "unchanged"]
    [single] = indexer.ingest_path(tmp_path / "a.txt", collection="folder")
    assert single.outcome == "unchanged" and single.document_id == results[0].document_id
    with pytest.raises(NotFound):
        indexer.ingest_path(tmp_path / "missing")


def test_file_over_the_limit_is_refused(
    store: PGVectorStore, embedder: HashEmbedder, tmp_path: Path
) -> None:
    small = Indexer(store, embedder, SETTINGS, max_file_bytes=100)
    big = "가나다라마바사아자차카타파하 " * 20
    with pytest.raises(TooLarge) as refused:
        small.ingest_bytes("big.txt", big.encode())
    assert refused.value.code == "file_too_large"
    (tmp_path / "big.txt").write_text(big, encoding="utf-8")
    [result] = small.ingest_path(tmp_path / "big.txt")
    assert result.outcome == "failed" and "limit" in (result.error or "")
    assert store.list_documents() == []


def test_unreadable_files_store_nothing(indexer: Indexer, store: PGVectorStore) -> None:
    with pytest.raises(Unsupported):
        indexer.ingest_bytes("program.exe", b"MZ\x90\x00")
    with pytest.raises(InvalidInput):
        indexer.ingest_bytes("empty.txt", b"")
    with pytest.raises(InvalidInput):
        indexer.ingest_bytes("a.txt", "문서".encode(), collection=" ")
    assert store.list_documents() == []
