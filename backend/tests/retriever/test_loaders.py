"""Every supported format from real files, and every way a file is refused."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import pytest
from extract_hwp import extract_text_from_hwp5, extract_text_from_hwpx
from pypdf import PdfReader, PdfWriter

from app.core.errors import InvalidInput, TooLarge, Unsupported
from app.retriever.loaders import is_supported, load_documents
from app.retriever.loaders.common import MAX_EXPANDED_BYTES
from tests.utils.documents import (
    HWP_PASSWORD,
    compound_file,
    hwp_file_header,
    hwp_record,
    make_docx,
    make_hwp,
    make_hwpx,
    make_pdf,
    nsmc_reviews,
)

POLICY = "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다. 병가는 진단서가 있으면 연간 열흘까지 쓸 수 있습니다."


def _only(filename: str, data: bytes):
    [document] = load_documents(filename, data)
    return document


# --------------------------------------------------------------------------- text formats


@pytest.mark.parametrize(
    "encoded",
    [
        POLICY.encode("utf-8"),
        b"\xef\xbb\xbf" + POLICY.encode("utf-8"),
        POLICY.encode("cp949"),
        POLICY.encode("euc-kr"),
        b"\xff\xfe" + POLICY.encode("utf-16-le"),
    ],
    ids=["utf-8", "utf-8-bom", "cp949", "euc-kr", "utf-16-bom"],
)
def test_txt_in_every_korean_encoding(encoded: bytes) -> None:
    document = _only("휴가 규정.txt", encoded)
    assert document.text == POLICY
    assert document.title == "휴가 규정"
    assert document.id is None


def test_txt_line_endings_and_control_characters_are_normalised() -> None:
    document = _only("a.txt", "첫 줄\r\n둘째 줄  \r\n\r\n\r\n\r\n셋째\x07 줄\x0b".encode())
    assert document.text == "첫 줄\n둘째 줄\n\n셋째 줄"


def test_markdown_title_is_the_first_heading() -> None:
    text = "머리말 없는 첫 줄\n\n## 재택근무 규정 ##\n\n본문입니다.\n\n# 나중 제목\n"
    document = _only("notes.md", text.encode())
    assert document.title == "재택근무 규정"
    assert document.text == text.strip()


def test_markdown_setext_heading_and_no_heading() -> None:
    assert _only("a.md", "회의록\n=====\n\n내용".encode()).title == "회의록"
    assert _only("회의.md", "제목이 없는 메모입니다.".encode()).title == "회의"


def test_html_keeps_readable_text_only() -> None:
    page = """<!DOCTYPE html><html><head><meta charset="euc-kr"><title>사내 공지</title>
    <style>body { color: red }</style><script>var secret = "스크립트";</script></head>
    <body><nav><a href="/">홈</a> | <a href="/menu">메뉴</a></nav>
    <h1>휴가   안내</h1><p>연차는 <b>입사 첫해</b>에
    생깁니다.<br>병가는 별도입니다.</p><!-- 주석 -->
    <ul><li>항목 하나</li><li>항목 둘</li></ul>
    <table><tr><th>구분</th><th>일수</th></tr><tr><td>연차</td><td>15일</td></tr></table>
    <footer>저작권 표시</footer></body></html>"""
    document = _only("notice.HTML", page.encode("cp949"))
    assert document.title == "사내 공지"
    assert document.text == (
        "휴가 안내\n\n연차는 입사 첫해에 생깁니다.\n병가는 별도입니다.\n\n"
        "항목 하나\n항목 둘\n\n구분 | 일수\n연차 | 15일"
    )


def test_html_title_falls_back_to_h1_then_file_name() -> None:
    assert _only("a.htm", "<h1>제목 하나</h1><p>본문</p>".encode()).title == "제목 하나"
    assert _only("b.htm", "<p>본문만 있습니다</p>".encode()).title == "b"


# ------------------------------------------------------------------------------- jsonl


def test_jsonl_ids_titles_and_metadata_round_trip() -> None:
    lines = [
        {
            "id": "faq-1",
            "text": "휴가는 어떻게 신청하나요?",
            "metadata": {"team": "인사", "year": 2024},
        },
        {"id": 7, "text": "재택근무는 주 2회입니다.", "title": "재택근무"},
        {"text": "아이디 없는 줄", "metadata": {"title": "메타데이터 제목"}},
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n"
    documents = load_documents("faq.jsonl", data.encode())
    assert [d.id for d in documents] == ["faq-1", "7", None]
    assert [d.title for d in documents] == ["faq-1", "재택근무", "메타데이터 제목"]
    assert documents[0].metadata == {"team": "인사", "year": 2024}
    assert documents[1].text == "재택근무는 주 2회입니다."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "text": "좋은 줄"}\n{"id": "b", "text": 깨진 줄}', "line 2: not valid JSON"),
        ('{"id": "a", "text": "좋은 줄"}\n\n["배열"]', "line 3: expected a JSON object"),
        ('{"id": "a", "text": "   "}', 'line 1: "text" must be a non-empty string'),
        ('{"id": "a", "text": "x", "metadata": [1]}', 'line 1: "metadata" must be a JSON object'),
        ('{"id": true, "text": "x"}', 'line 1: "id" must be a string or an integer'),
        (
            '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}',
            "line 2: id 'a' was already used on line 1",
        ),
    ],
)
def test_jsonl_broken_line_rejects_the_file_naming_the_line(content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_documents("data.jsonl", content.encode())


# --------------------------------------------------------------------------------- csv


def test_csv_with_a_text_column_is_one_document_per_row() -> None:
    table = (
        'id,제목,내용,분류\nq1,휴가,"연차는 15일, 병가는 10일",인사\nq2,,재택은 주 2회,\n,빈 줄,,\n'
    )
    documents = load_documents("faq.csv", table.encode("cp949"))
    assert [d.id for d in documents] == ["q1", "q2"]
    assert [d.text for d in documents] == ["연차는 15일, 병가는 10일", "재택은 주 2회"]
    assert [d.title for d in documents] == ["휴가", "q2"]
    assert documents[0].metadata == {"분류": "인사", "row": 1}


def test_csv_of_real_reviews_by_tab_is_one_document_per_review() -> None:
    reviews = nsmc_reviews(50)
    table = "rating\ttext\n" + "\n".join(
        f"{i % 10 + 1}\t{r.replace(chr(34), '')}" for i, r in enumerate(reviews)
    )
    documents = load_documents("reviews.csv", table.encode())
    assert len(documents) == 50
    assert documents[3].metadata == {"rating": "4", "row": 4}


def test_csv_without_a_text_column_is_one_labelled_document() -> None:
    document = _only("직원.csv", "이름;부서;내선\n김철수;인사;1234\n이영희;;5678\n".encode())
    assert document.text == "이름: 김철수 | 부서: 인사 | 내선: 1234\n이름: 이영희 | 내선: 5678"
    assert document.title == "직원"
    assert document.metadata == {"rows": 2}


def test_csv_row_with_too_many_fields_names_the_line() -> None:
    with pytest.raises(InvalidInput, match="line 3: 3 fields but the header has 2"):
        load_documents("a.csv", "id,text\n1,좋음\n2,쉼표가, 있음\n".encode())


# --------------------------------------------------------------------------------- pdf


def test_pdf_text_pages_and_title() -> None:
    data = make_pdf(
        ["첫 페이지입니다.\n둘째 줄 with English", "", "셋째 페이지의 본문."], title="분기 보고서"
    )
    document = _only("report.pdf", data)
    assert document.title == "분기 보고서"
    assert document.text == "첫 페이지입니다.\n둘째 줄 with English\n\n셋째 페이지의 본문."
    assert document.metadata == {"page_count": 3}
    # Page 2 has no text, so it starts where page 3 does.
    third = document.text.index("셋째")
    assert document.page_starts == (0, third, third)


def test_pdf_without_text_layer_asks_for_ocr() -> None:
    with pytest.raises(InvalidInput, match="OCR"):
        load_documents("scan.pdf", make_pdf(["", ""]))


def test_password_protected_pdf_is_refused_and_an_owner_password_alone_is_not() -> None:
    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["보안 문서"]))))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    with pytest.raises(InvalidInput, match="password"):
        load_documents("locked.pdf", encrypted("secret"))
    assert _only("open.pdf", encrypted("")).text == "보안 문서"


def test_truncated_pdf_is_invalid_input() -> None:
    data = make_pdf(["잘린 문서"])
    with pytest.raises(InvalidInput, match="could not be read as PDF"):
        load_documents("broken.pdf", data[: len(data) // 3])


# -------------------------------------------------------------------------------- docx


def test_docx_paragraphs_and_tables_in_order() -> None:
    data = make_docx(
        ["첫 문단입니다.", [["구분", "일수"], ["연차", "15일"]], "마지막 문단입니다."],
        heading="휴가 규정",
    )
    document = _only("규정.docx", data)
    assert (
        document.text
        == "휴가 규정\n\n첫 문단입니다.\n\n구분 | 일수\n연차 | 15일\n\n마지막 문단입니다."
    )
    assert document.title == "휴가 규정"
    assert _only("b.docx", make_docx(["본문"], title="속성 제목")).title == "속성 제목"
    assert _only("c.docx", make_docx(["본문"])).title == "c"


# --------------------------------------------------------------------------- hwp, hwpx


def test_hwpx_sections_paragraphs_tabs_and_tables(tmp_path: Path) -> None:
    data = make_hwpx(
        [
            ["첫 문단입니다.", "이름\t홍길동", [["구분", "일수"], ["연차", "15일"]]],
            ["둘째 구역입니다."],
        ],
        title="공문",
    )
    document = _only("공문.hwpx", data)
    assert document.title == "공문"
    assert (
        document.text
        == "첫 문단입니다.\n\n이름\t홍길동\n\n구분 | 일수\n연차 | 15일\n\n둘째 구역입니다."
    )
    # An independent reader sees the same words in the generated file.
    (tmp_path / "a.hwpx").write_bytes(data)
    assert (
        extract_text_from_hwpx(str(tmp_path / "a.hwpx")).split()
        == document.text.replace("|", "").split()
    )


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_hwp5_sections_paragraphs_and_controls(tmp_path: Path, compressed: bool) -> None:
    sections = [["첫 문단입니다.", "이름\t홍길동", "줄\n바꿈과 이모지 😀"], ["둘째 구역입니다."]]
    data = make_hwp(sections, flags=1 if compressed else 0)
    document = _only("공문.hwp", data)
    assert (
        document.text
        == "첫 문단입니다.\n\n이름\t홍길동\n\n줄\n바꿈과 이모지 😀\n\n둘째 구역입니다."
    )
    assert document.title == "공문"
    (tmp_path / "a.hwp").write_bytes(data)
    assert extract_text_from_hwp5(str(tmp_path / "a.hwp")).split() == document.text.split()


def test_hwp5_title_comes_from_its_summary_information() -> None:
    document = _only("붙임1_2024-0312.hwp", make_hwp([["본문입니다."]], title="한빛 휴가 규정"))
    assert document.title == "한빛 휴가 규정"
    # A damaged summary costs only the title: the file name stands in, the text is read.
    damaged = make_hwp([["본문입니다."]], summary=b"\xfe\xff" + b"\x07" * 60)
    document = _only("붙임2.hwp", damaged)
    assert (document.title, document.text) == ("붙임2", "본문입니다.")


def test_hwp5_large_section_outside_the_mini_stream() -> None:
    reviews = nsmc_reviews(400)
    document = _only("리뷰.hwp", make_hwp([reviews], flags=0))
    assert document.text == "\n\n".join(r.strip() for r in reviews)


def test_protected_hwp_is_refused() -> None:
    with pytest.raises(InvalidInput, match="protected"):
        load_documents("secret.hwp", make_hwp([["비밀"]], flags=1 | HWP_PASSWORD))


def test_hwp3_file_is_unsupported_with_a_way_out() -> None:
    with pytest.raises(Unsupported, match="HWP 3"):
        load_documents("old.hwp", b"HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05" + b"\0" * 100)


def test_ole_file_that_is_not_hwp_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="not an HWP document"):
        load_documents("report.hwp", compound_file({"WordDocument": b"\0" * 600}))


def test_damaged_hwp_sections_are_invalid_input() -> None:
    text_record = hwp_record(67, 1, "잘린 문단".encode("utf-16-le"))
    cut_record = compound_file(
        {"FileHeader": hwp_file_header(0), "BodyText/Section0": text_record[:-4]}
    )
    with pytest.raises(InvalidInput, match="record is cut short"):
        load_documents("cut-record.hwp", cut_record)
    deflated = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = deflated.compress(text_record * 50) + deflated.flush()
    cut_stream = compound_file(
        {"FileHeader": hwp_file_header(1), "BodyText/Section0": stream[: len(stream) // 2]}
    )
    with pytest.raises(InvalidInput, match="compressed section is cut short"):
        load_documents("cut-stream.hwp", cut_stream)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "filename", ["program.exe", "archive.zip", "noextension", "image.gif", ".hidden"]
)
def test_unknown_extension_is_unsupported(filename: str) -> None:
    assert not is_supported(filename)
    with pytest.raises(Unsupported, match="supported types are"):
        load_documents(filename, b"anything")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("report.pdf", "그냥 텍스트입니다".encode()),
        ("data.csv", b"a,b\n\0\0\0\x01\x02"),
        ("notes.md", bytes(range(128, 256)) * 4),
    ],
)
def test_content_that_no_loader_reads_is_unsupported(filename: str, data: bytes) -> None:
    # Content of another known type is read as that type (test_sniffing.py).
    with pytest.raises(Unsupported):
        load_documents(filename, data)


@pytest.mark.parametrize("filename", ["empty.txt", "empty.pdf", "empty.hwp", "empty.jsonl"])
def test_empty_file_is_invalid_input(filename: str) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        load_documents(filename, b"")
    with pytest.raises(InvalidInput, match="is empty"):
        load_documents(filename, b" \n\t\n")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        (
            "blank.html",
            b"<html><head><title>t</title><script>x()</script></head><body> </body></html>",
        ),
        ("blank.docx", make_docx(["", "   "])),
        ("blank.hwpx", make_hwpx([[" "]])),
        ("blank.csv", b"id,text\n1,\n2,  \n"),
    ],
)
def test_file_without_text_is_invalid_input(filename: str, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="no text to index"):
        load_documents(filename, data)


def test_damaged_zip_is_invalid_input() -> None:
    data = make_docx(["문단"])
    with pytest.raises(InvalidInput):
        load_documents("broken.docx", data[: len(data) // 2])


def test_zip_bomb_is_refused_before_it_is_inflated() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("Contents/section0.xml", b"<a/>")
        archive.writestr("Contents/filler.bin", b"0")
    data = bytearray(out.getvalue())
    # Claim in the central directory that the one-byte member inflates past the limit.
    entry = data.rindex(b"Contents/filler.bin") - 46
    assert data[entry : entry + 4] == b"PK\x01\x02"
    data[entry + 24 : entry + 28] = (MAX_EXPANDED_BYTES + 1).to_bytes(4, "little")
    with pytest.raises(TooLarge, match="expands to"):
        load_documents("bomb.hwpx", bytes(data))
