"""Citations name the file and the page (slide, sheet) without clients reading chunk metadata."""

from __future__ import annotations

import pytest

from app.cli.search import citation_line
from app.pipelines.rag import to_sources
from app.retriever.types import SearchHit


def _hit(**metadata: object) -> SearchHit:
    return SearchHit("doc_1", "doc_1:0", "연차는 1년에 15일입니다.", 0.5, dict(metadata))


def test_a_pdf_passage_names_its_file_and_page() -> None:
    [source] = to_sources([_hit(source="규정/휴가규정.pdf", title="휴가 규정", page=3)])
    assert (source.filename, source.page, source.page_end) == ("휴가규정.pdf", 3, None)
    assert (source.page_unit, source.page_label) == ("page", None)
    assert source.title == "휴가 규정" and source.source == "규정/휴가규정.pdf"
    assert source.metadata["page"] == 3


def test_a_passage_over_several_pages_keeps_the_range() -> None:
    [source] = to_sources([_hit(source="a.pdf", page=3, page_end=4)])
    assert (source.page, source.page_end) == (3, 4)


@pytest.mark.parametrize(
    ("name", "unit"), [("발표.pptx", "slide"), ("예산.XLSX", "sheet"), ("보고.pdf", "page")]
)
def test_slides_and_sheets_count_as_such(name: str, unit: str) -> None:
    [source] = to_sources([_hit(source=name, page=2)])
    assert source.page_unit == unit


def test_a_sheet_keeps_its_name() -> None:
    [source] = to_sources([_hit(source="예산.xlsx", page=2, page_label="인건비")])
    assert (source.page, source.page_label, source.page_unit) == (2, "인건비", "sheet")


@pytest.mark.parametrize("page", [None, 0, -1, True, "3", 2.5])
def test_no_page_or_a_page_that_is_not_one(page: object) -> None:
    metadata = {"source": "메모.txt"} if page is None else {"source": "메모.txt", "page": page}
    [source] = to_sources([_hit(**metadata)])
    assert (source.page, source.page_end, source.page_unit) == (None, None, None)
    assert source.filename == "메모.txt" and source.title == "메모.txt"


def test_a_page_end_before_the_page_is_dropped() -> None:
    [source] = to_sources([_hit(source="a.pdf", page=5, page_end=5)])
    assert source.page_end is None


def test_the_cli_line_shows_file_and_page() -> None:
    pdf, deck, sheet, text = to_sources(
        [
            _hit(source="규정/휴가규정.pdf", title="휴가 규정", page=3, page_end=4),
            _hit(source="발표.pptx", title="발표", page=2),
            _hit(source="예산.xlsx", title="예산", page=1, page_label="인건비"),
            _hit(source="메모.txt", title="메모"),
        ]
    )
    assert citation_line(pdf) == "[1] 휴가 규정 — 규정/휴가규정.pdf · p. 3–4 (doc_1)"
    assert citation_line(deck) == "[2] 발표 — 발표.pptx · slide 2 (doc_1)"
    assert citation_line(sheet) == "[3] 예산 — 예산.xlsx · sheet 1: 인건비 (doc_1)"
    assert citation_line(text) == "[4] 메모 — 메모.txt (doc_1)"
