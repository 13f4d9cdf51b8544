"""PDF text as Korean office programs lay it out: justified lines without space characters, and
words wrapped across lines without a hyphen. ``pdftotext`` (poppler) is the reference for spaces."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.core.errors import InvalidInput, TooLarge
from app.retriever.loaders import load_documents
from app.retriever.loaders.common import MAX_EXPANDED_BYTES
from tests.utils.pdf_files import Paragraph, inflating_pdf, typeset_pdf

# As Hangul sets them: the first paragraph justified over two full lines, each broken inside a
# word (수|립, 둔|다); a heading; a paragraph whose first line breaks inside 마감했|습니다.
PURPOSE = Paragraph(
    [
        "국가교육위원회는 교육의 중장기 발전을 위한 국가교육발전계획 수",
        "립 기본계획 및 주요 정책 등을 심의ㆍ의결하기 위하여 위원회를 둔",
        "다. 위원회는 대통령 소속으로 한다.",
    ],
    indent=10,
)
HEADING = Paragraph(["제2장 위원회의 구성"])
DEADLINE = Paragraph(
    [
        "올해 신입생 모집 원서 접수는 지난달 31일 오후 6시에 마감했",
        "습니다. 합격자는 다음 달 발표합니다.",
    ]
)
PAGE_TEXT = (
    "국가교육위원회는 교육의 중장기 발전을 위한 국가교육발전계획 수립 기본계획 및 주요 정책 "
    "등을 심의ㆍ의결하기 위하여 위원회를 둔다. 위원회는 대통령 소속으로 한다.\n"
    "제2장 위원회의 구성\n"
    "올해 신입생 모집 원서 접수는 지난달 31일 오후 6시에 마감했습니다. 합격자는 다음 달 발표합니다."
)


def _text(data: bytes) -> str:
    [document] = load_documents("위원회 규정.pdf", data)
    return document.text


@pytest.mark.parametrize("drawing", ["positioned", "kerned"])
def test_justified_lines_drawn_glyph_by_glyph_keep_spaces_and_rejoin_broken_words(
    drawing: str,
) -> None:
    assert _text(typeset_pdf([[PURPOSE, HEADING, DEADLINE]], drawing=drawing)) == PAGE_TEXT


def test_tight_and_loose_letter_spacing_read_the_same() -> None:
    for letter_spacing, word_gap in ((-0.1, 0.25), (0.0, 0.5), (0.05, 0.35)):
        data = typeset_pdf(
            [[PURPOSE, HEADING, DEADLINE]], letter_spacing=letter_spacing, word_gap=word_gap
        )
        assert _text(data) == PAGE_TEXT, (letter_spacing, word_gap)


def test_a_full_line_that_ends_between_words_keeps_its_line_break() -> None:
    notice = Paragraph(
        [
            "위원회의 심의 결과는 위원장이 지체 없이 관계 중앙행정기관의 장에게",
            "통보하여야 하며 관계 기관은 특별한 사유가 없으면 이에 따라야 한다.",
            "그 밖에 필요한 사항은 대통령령으로 정한다",
        ]
    )
    # The last line ends in a syllable without a full stop, and the next paragraph starts with
    # one, but the line stops short of the edge: a paragraph break, not a wrapped word.
    closing = Paragraph(["부칙 이 법은 공포 후 6개월이 경과한 날부터 시행한다."])
    assert _text(typeset_pdf([[notice, closing]])) == (
        "위원회의 심의 결과는 위원장이 지체 없이 관계 중앙행정기관의 장에게\n"
        "통보하여야 하며 관계 기관은 특별한 사유가 없으면 이에 따라야 한다.\n"
        "그 밖에 필요한 사항은 대통령령으로 정한다\n"
        "부칙 이 법은 공포 후 6개월이 경과한 날부터 시행한다."
    )


def test_each_page_keeps_its_offset() -> None:
    [document] = load_documents("a.pdf", typeset_pdf([[DEADLINE], [], [PURPOSE, HEADING]]))
    purpose, heading, deadline = PAGE_TEXT.split("\n")
    assert document.text == f"{deadline}\n\n{purpose}\n{heading}"
    third = len(deadline) + 2
    assert document.page_starts == (0, third, third)
    assert document.metadata == {"page_count": 3}


def _pdftotext() -> str:
    binary = shutil.which("pdftotext")
    if binary is None:
        message = "pdftotext is not installed (Debian package poppler-utils)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.mark.parametrize("drawing", ["positioned", "kerned"])
def test_spaces_agree_with_pdftotext(tmp_path: Path, drawing: str) -> None:
    path = tmp_path / "justified.pdf"
    path.write_bytes(typeset_pdf([[PURPOSE, HEADING, DEADLINE]], drawing=drawing))
    reference = subprocess.run(
        [_pdftotext(), "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout
    lines = [" ".join(line.split()) for line in reference.splitlines() if line.strip()]
    # pdftotext keeps every line as it was set, so each is a stretch of the loader's text,
    # with the same spaces; only the breaks inside words are gone.
    assert lines[1] == "립 기본계획 및 주요 정책 등을 심의ㆍ의결하기 위하여 위원회를 둔"
    assert lines[4:6] == [
        "올해 신입생 모집 원서 접수는 지난달 31일 오후 6시에 마감했",
        "습니다. 합격자는 다음 달 발표합니다.",
    ]
    text = _text(path.read_bytes())
    assert all(line in text for line in lines)
    assert text.split() == PAGE_TEXT.split()


def test_streams_that_inflate_past_the_limit_are_refused_before_parsing() -> None:
    with pytest.raises(TooLarge, match="expands to more than") as refused:
        load_documents("bomb.pdf", inflating_pdf(MAX_EXPANDED_BYTES + 1))
    assert refused.value.code == "file_too_large"
    # Under the limit, the same construction is an ordinary (blank) PDF.
    with pytest.raises(InvalidInput, match="no text layer"):
        load_documents("blank.pdf", inflating_pdf(1 << 20))
