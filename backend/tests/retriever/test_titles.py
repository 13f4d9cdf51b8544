"""Placeholder titles give way to the first heading or the file name, for every format."""

from __future__ import annotations

import json

import pytest

from app.retriever.loaders import LoadedDocument, load_documents
from app.retriever.loaders.titles import MAX_HEADING_CHARS, first_heading, is_placeholder
from tests.utils.documents import make_docx, make_hwp, make_hwpx, make_pdf
from tests.utils.hwp_files import hangul_summary, make_hwpml

HEADING = "2024년 연차 휴가 운영 지침"
PARAGRAPH = (
    "연차 휴가는 입사 첫해에 매달 하루씩 생기며, 이듬해부터는 전년도 출근율에 따라 "
    "열다섯 날이 주어집니다. 쓰지 못한 휴가는 다음 해 3월까지 이월할 수 있습니다."
)


def _only(filename: str, data: bytes) -> LoadedDocument:
    [document] = load_documents(filename, data)
    return document


@pytest.mark.parametrize(
    "title",
    [
        "",
        "   ",
        "1111",
        "3",
        "- 1 -",
        "2024.03.12",
        "제목",
        "제목 없음",
        "제목을 입력하세요",
        "Title",
        "Untitled-1",
        "문서1",
        "Document 2",
        "본문내용본문내용",
        "제목 제목 제목",
        "ㅁㅁㅁ",
        "PowerPoint 프레젠테이션",
        "Sheet1",
    ],
)
def test_placeholders(title: str) -> None:
    assert is_placeholder(title)


@pytest.mark.parametrize(
    "title",
    [
        HEADING,
        "휴가 규정",
        "제1장 총칙",
        "Hello World",
        "제목입니다.",
        "문서 보안 지침",
        "2024년 3월 이사회 회의록",
        "a",
    ],
)
def test_titles_that_name_something(title: str) -> None:
    assert not is_placeholder(title)


def test_first_heading_passes_over_page_numbers_placeholders_and_table_rows() -> None:
    text = f"- 1 -\n\n제목\n\n구분 | 내용\n\n## {HEADING} ##\n\n{PARAGRAPH}"
    assert first_heading(text) == HEADING


def test_a_text_that_opens_with_a_paragraph_has_no_heading() -> None:
    assert len(PARAGRAPH) > MAX_HEADING_CHARS
    assert first_heading(f"{PARAGRAPH}\n\n{HEADING}") == ""
    assert first_heading("") == ""


# ------------------------------------------------------------------- applied to every format


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("붙임1.hwpx", make_hwpx([[HEADING, PARAGRAPH]], title="1111")),
        ("붙임1.hwpx", make_hwpx([[HEADING, PARAGRAPH]], title="본문내용본문내용")),
        ("붙임1.hwp", make_hwp([[HEADING, PARAGRAPH]], summary=hangul_summary("제목"))),
        ("붙임1.docx", make_docx([PARAGRAPH], title="Title", heading=HEADING)),
        ("붙임1.pdf", make_pdf([f"{HEADING}\n{PARAGRAPH[:40]}"], title="3")),
        ("붙임1.hwpml", make_hwpml([[HEADING, PARAGRAPH]], title="제목 없음")),
        ("3.txt", f"{HEADING}\n\n{PARAGRAPH}".encode()),
    ],
    ids=["hwpx-digits", "hwpx-repeated", "hwp5-template-word", "docx", "pdf", "hwpml", "txt"],
)
def test_placeholder_title_falls_back_to_the_first_heading(filename: str, data: bytes) -> None:
    assert _only(filename, data).title == HEADING


def test_placeholder_title_without_a_heading_falls_back_to_the_file_name() -> None:
    data = make_hwpx([[PARAGRAPH, HEADING]], title="제목")
    assert _only("2024 휴가 지침.hwpx", data).title == "2024 휴가 지침"


def test_real_titles_are_kept() -> None:
    assert _only("a.hwpx", make_hwpx([[HEADING]], title="휴가 규정")).title == "휴가 규정"
    assert _only("휴가.txt", PARAGRAPH.encode()).title == "휴가"


def test_each_document_of_a_jsonl_file_is_titled_on_its_own() -> None:
    lines = [
        {"id": "7", "text": f"{HEADING}\n{PARAGRAPH}"},
        {"id": "faq-2", "text": PARAGRAPH},
        {"id": "8", "text": PARAGRAPH},
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    assert [d.title for d in load_documents("faq.jsonl", data)] == [HEADING, "faq-2", "faq"]
