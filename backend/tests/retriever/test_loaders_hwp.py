"""HWP 5 as Hangul writes it: summary titles among other fields, distribution documents,
protected files; and HWPML, Hangul's XML format."""

from __future__ import annotations

import io
from pathlib import Path

import olefile
import pytest

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders import load_documents
from app.retriever.loaders.hwp import summary_title
from tests.utils.documents import HWP_COMPRESSED, HWP_PASSWORD, compound_file, make_hwp
from tests.utils.hwp_files import (
    DISTRIBUTION_NOTICE,
    HWP_CERTIFICATE_DRM,
    HWP_CERTIFICATE_ENCRYPTION,
    HWP_DISTRIBUTION,
    HWP_DRM,
    PID_CODEPAGE,
    PIDSI_AUTHOR,
    PIDSI_TITLE,
    VT_I2,
    VT_LPSTR,
    VT_LPWSTR,
    distribution_section,
    hangul_summary,
    make_distribution_hwp,
    make_hwpml,
    property_set,
)

SECTIONS = [["연차 휴가는 입사 첫해에 매달 하루씩 생깁니다.", "이름\t홍길동"], ["둘째 구역입니다."]]
TEXT = "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다.\n\n이름\t홍길동\n\n둘째 구역입니다."


def _only(filename: str, data: bytes):
    [document] = load_documents(filename, data)
    return document


# ------------------------------------------------------------------------------ summary title


def test_summary_title_stops_where_the_author_and_date_fields_begin() -> None:
    summary = hangul_summary("2024년 업무 계획", author="김민지")
    # The fields follow the title in one stream, NUL-separated: a reader that runs past the
    # title's declared length reads them into the title.
    assert "김민지".encode("utf-16-le") in summary
    document = _only("계획.hwp", make_hwp(SECTIONS, summary=summary))
    assert document.title == "2024년 업무 계획"
    assert document.text == TEXT


def test_summary_title_is_cut_at_its_declared_length_or_first_nul() -> None:
    declared_short = property_set([(PIDSI_TITLE, VT_LPWSTR, ("휴가 규정 개정안", 6))])
    assert summary_title(declared_short) == "휴가 규정"
    nul_inside = property_set(
        [(PIDSI_TITLE, VT_LPWSTR, "휴가 규정\0작성자 홍길동"), (PIDSI_AUTHOR, VT_LPWSTR, "홍길동")]
    )
    assert summary_title(nul_inside) == "휴가 규정"
    # A declared length past the end of the stream reads what there is.
    assert summary_title(property_set([(PIDSI_TITLE, VT_LPWSTR, ("공지", 4000))])) == "공지"


def test_summary_title_in_a_code_page_string() -> None:
    title = "인사 규정".encode("cp949")
    summary = property_set(
        [(PID_CODEPAGE, VT_I2, 949), (PIDSI_TITLE, VT_LPSTR, (title, len(title) + 1))]
    )
    assert summary_title(summary) == "인사 규정"
    utf16 = "인사 규정\0".encode("utf-16-le")
    summary = property_set(
        [(PID_CODEPAGE, VT_I2, 1200), (PIDSI_TITLE, VT_LPSTR, (utf16[:-2], len(utf16)))]
    )
    assert summary_title(summary) == "인사 규정"


@pytest.mark.parametrize(
    "summary",
    [
        property_set([(PIDSI_AUTHOR, VT_LPWSTR, "홍길동")]),
        property_set([(PIDSI_TITLE, VT_LPWSTR, "다른 형식")], fmtid=bytes(16)),
        property_set([(PIDSI_TITLE, VT_I2, 7)]),
        property_set([(PIDSI_TITLE, VT_LPWSTR, "잘린 목록")])[:60],
        b"",
    ],
    ids=["no-title", "foreign-format-id", "not-a-string", "cut-short", "empty"],
)
def test_summary_without_a_readable_title_leaves_the_file_name(summary: bytes) -> None:
    assert summary_title(summary) == ""
    document = _only("붙임3.hwp", make_hwp(SECTIONS, summary=summary))
    assert (document.title, document.text) == ("붙임3", TEXT)


# ---------------------------------------------------------------------- distribution documents


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_distribution_document_is_read_from_its_encrypted_view_text(compressed: bool) -> None:
    data = make_distribution_hwp(SECTIONS, title="입찰 공고", compressed=compressed)
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        # The plain text is nowhere in the file: BodyText holds the notice only.
        streams = b"".join(ole.openstream(path).read() for path in ole.listdir())
    assert "입사 첫해".encode("utf-16-le") not in streams
    document = _only("공고.hwp", data)
    assert document.text == TEXT
    assert DISTRIBUTION_NOTICE not in document.text
    assert document.title == "입찰 공고"


def test_distribution_document_with_many_seeds_and_sizes() -> None:
    # Each seed puts the key at another offset and masks the record differently; each length
    # pads the last cipher block differently.
    for seed in range(0x1000_0000, 0x1000_0000 + 16):
        paragraphs = ["가" * (seed % 7 + 1), f"{seed}번째 문단"]
        data = make_distribution_hwp([paragraphs], compressed=seed % 2 == 0, seed=seed)
        assert _only("a.hwp", data).text == "\n\n".join(paragraphs)


def test_damaged_distribution_sections_are_invalid_input() -> None:
    section = distribution_section(
        b"", hash_code=bytes(range(80)), seed=0x1234_5678, compressed=False
    )
    header = make_distribution_hwp(SECTIONS)
    with olefile.OleFileIO(io.BytesIO(header)) as ole:
        file_header = ole.openstream("FileHeader").read()

    def document(view_text: bytes) -> bytes:
        return compound_file({"FileHeader": file_header, "ViewText/Section0": view_text})

    with pytest.raises(InvalidInput, match="lacks its key record"):
        load_documents("a.hwp", document(b"\x00" * 300))
    with pytest.raises(InvalidInput, match="encrypted section is cut short"):
        load_documents("b.hwp", document(section + b"\x01\x02\x03"))
    no_view_text = compound_file({"FileHeader": file_header, "BodyText/Section0": b""})
    with pytest.raises(InvalidInput, match="no ViewText/Section streams"):
        load_documents("c.hwp", no_view_text)


# ------------------------------------------------------------------------------- protection


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (HWP_PASSWORD, "is password-protected; open it in Hangul, remove the password"),
        (HWP_DRM, "is DRM-protected"),
        (HWP_CERTIFICATE_ENCRYPTION, "is encrypted with a certificate"),
        (HWP_CERTIFICATE_DRM, "is protected by certificate DRM"),
    ],
    ids=["password", "drm", "certificate", "certificate-drm"],
)
def test_protected_hwp_names_its_protection(flag: int, message: str) -> None:
    data = make_hwp([["비밀"]], flags=HWP_COMPRESSED | flag)
    with pytest.raises(InvalidInput, match=f"^보안.hwp {message}") as refused:
        load_documents("보안.hwp", data)
    others = {"password", "DRM-protected", "certificate DRM", "with a certificate"}
    assert sum(word in str(refused.value) for word in others) == 1


def test_a_password_on_a_distribution_document_is_still_a_password() -> None:
    data = make_hwp([["비밀"]], flags=HWP_COMPRESSED | HWP_DISTRIBUTION | HWP_PASSWORD)
    with pytest.raises(InvalidInput, match="password-protected"):
        load_documents("배포.hwp", data)


# ------------------------------------------------------------------------------------ HWPML


def test_hwpml_paragraphs_tables_inline_characters_and_title() -> None:
    data = make_hwpml(
        [
            ["제1조(목적)\u00a0이 규정은 휴가를 정한다.", "이름\t홍길동\n둘째 줄"],
            [[["구분", "일수"], ["연차", "15일"]], "끝."],
        ],
        title="휴가 규정",
    )
    document = _only("규정.hwpml", data)
    assert document.title == "휴가 규정"
    # Section settings (a parameter set's CHAR), shape comments and binary data are not text.
    assert document.text == (
        "제1조(목적) 이 규정은 휴가를 정한다.\n\n이름\t홍길동\n둘째 줄\n\n"
        "구분 | 일수\n연차 | 15일\n\n끝."
    )


def test_hwpml_in_utf16_and_under_the_hml_and_hwp_names() -> None:
    utf16 = make_hwpml([["한글 문서입니다."]], encoding="utf-16")
    assert utf16.startswith(b"\xff\xfe")
    assert _only("a.hml", utf16).text == "한글 문서입니다."
    # Public sites often serve HWPML named .hwp.
    document = _only("공고문.hwp", make_hwpml([["입찰 공고입니다."]]))
    assert (document.title, document.text) == ("공고문", "입찰 공고입니다.")


def test_hwpml_entities_are_never_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("서버의 비밀", encoding="utf-8")
    external = f'<!DOCTYPE HWPML [<!ENTITY secret SYSTEM "{secret.as_uri()}">]>\n'
    data = make_hwpml([["앞 @ 뒤"]], doctype=external).replace(b"@", b"&secret;")
    assert _only("xxe.hwpml", data).text == "앞  뒤"
    laughs = (
        '<!DOCTYPE HWPML [<!ENTITY a "하하하하하하하하하하">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(4))
        + "]>\n"
    )
    bomb = make_hwpml([["웃음 @ 끝"]], doctype=laughs).replace(b"@", b"&e;")
    assert _only("bomb.hwpml", bomb).text == "웃음  끝"


def test_xml_that_is_not_hwpml_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="is an XML document, not an HWPML document"):
        load_documents("a.hwpml", '<?xml version="1.0"?><root>본문</root>'.encode())
    with pytest.raises(InvalidInput, match="could not be read as HWPML"):
        load_documents("b.hwpml", make_hwpml([["잘린 문서"]])[:-40])
