"""The content decides how a file is read, not its name."""

from __future__ import annotations

import io
import zipfile

import pytest

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders import LOADERS, LoadedDocument, is_supported, load_documents
from app.retriever.loaders.sniff import ENCRYPTED_OFFICE, PLAIN_TEXT, detect
from tests.utils.documents import compound_file, make_docx, make_hwp, make_hwpx, make_pdf
from tests.utils.hwp_files import make_hwpml

BODY = "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다."


def _only(filename: str, data: bytes) -> LoadedDocument:
    [document] = load_documents(filename, data)
    return document


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


# ------------------------------------------------------------------- read as what they are


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("보고서.hwpx", make_hwp([[BODY]])),
        ("보고서.docx", make_hwp([[BODY]])),
        ("보고서.txt", make_pdf([BODY])),
        ("보고서.hwp", make_pdf([BODY])),
        ("보고서.hwp", make_hwpx([[BODY]])),
        ("보고서.docx", make_hwpx([[BODY]])),
        ("보고서.hwpx", make_docx([BODY])),
        ("보고서.pdf", make_docx([BODY])),
        ("보고서.csv", make_docx([BODY])),
        ("보고서.hwp", make_hwpml([[BODY]])),
        ("보고서.pdf", f"<!DOCTYPE html><html><body><p>{BODY}</p></body></html>".encode()),
    ],
    ids=[
        "hwp5-named-hwpx",
        "hwp5-named-docx",
        "pdf-named-txt",
        "pdf-named-hwp",
        "hwpx-named-hwp",
        "hwpx-named-docx",
        "docx-named-hwpx",
        "docx-named-pdf",
        "docx-named-csv",
        "hwpml-named-hwp",
        "html-named-pdf",
    ],
)
def test_a_file_is_read_as_what_its_content_is(filename: str, data: bytes) -> None:
    document = _only(filename, data)
    assert document.text == BODY
    assert document.title == "보고서"


def test_text_formats_keep_their_extension_for_text_content() -> None:
    page = f"<html><body><p>{BODY}</p></body></html>"
    assert _only("메모.txt", page.encode()).text == page
    hwpml = make_hwpml([[BODY]]).decode()
    assert _only("메모.md", hwpml.encode()).text == hwpml.strip()
    assert _only("메모.html", page.encode()).text == BODY


def test_text_starting_like_an_executable_is_text() -> None:
    text = "MZ세대의 출근 문화에 관한 설문 결과입니다."
    assert _only("설문.txt", text.encode()).text == text


@pytest.mark.parametrize(
    ("members", "found"),
    [
        ({"mimetype": b"application/hwp+zip", "Contents/header.xml": b"<a/>"}, ".hwpx"),
        ({"Contents/section0.xml": b"<a/>"}, ".hwpx"),
        ({"word/document.xml": b"<a/>", "[Content_Types].xml": b"<a/>"}, ".docx"),
        ({"ppt/presentation.xml": b"<a/>", "ppt/slides/slide1.xml": b"<a/>"}, ".pptx"),
        ({"xl/workbook.xml": b"<a/>", "xl/worksheets/sheet1.xml": b"<a/>"}, ".xlsx"),
        ({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<a/>"}, ".odt"),
        ({"notes.txt": "메모".encode()}, ".zip"),
    ],
    ids=["hwpx-mimetype", "hwpx-sections", "docx", "pptx", "xlsx", "odt", "plain-zip"],
)
def test_zip_packages_are_told_apart_by_their_members(
    members: dict[str, bytes], found: str
) -> None:
    assert detect(_zip(members), ".txt") == found


def test_ole_files_are_told_apart_by_their_streams() -> None:
    assert detect(make_hwp([[BODY]]), ".pdf") == ".hwp"
    assert detect(compound_file({"WordDocument": b"\0" * 600}), ".hwp") == ".doc"
    assert detect(compound_file({"Workbook": b"\0" * 600}), ".hwp") == ".xls"
    assert detect(compound_file({"PowerPoint Document": b"\0" * 600}), ".hwp") == ".ppt"
    encrypted = compound_file({"EncryptionInfo": b"\4\0\4\0" + bytes(60), "EncryptedPackage": b"x"})
    assert detect(encrypted, ".docx") == ENCRYPTED_OFFICE


def test_a_loader_takes_part_by_its_entry_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    odt = _zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<a/>"})
    with pytest.raises(Unsupported, match="is an OpenDocument text"):
        load_documents("회의록.docx", odt)

    def load_odt(filename: str, data: bytes) -> list[LoadedDocument]:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [LoadedDocument(archive.read("content.xml").decode(), "회의록", {})]

    monkeypatch.setitem(LOADERS, ".odt", load_odt)
    assert _only("회의록.docx", odt).text == "<a/>"


# ---------------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        (
            "report.hwp",
            compound_file({"WordDocument": b"\0" * 600}),
            r"is a Word 97-2003 document \(\.doc\), not an HWP document, and cannot be indexed",
        ),
        (
            "budget.hwpx",
            compound_file({"Workbook": b"\0" * 600}),
            r"is an Excel 97-2003 workbook \(\.xls\), not an HWPX document",
        ),
        ("photo.pdf", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "is a GIF image, not a PDF"),
        ("backup.hwp", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(40), "is a 7-Zip archive"),
        ("data.txt", _zip({"a.txt": b"a"}), "is a zip archive, not plain text"),
        (
            "report.pdf",
            "그냥 텍스트입니다".encode(),
            "is plain text, not a PDF document; name it .txt",
        ),
        ("a.hwpml", b'<?xml version="1.0"?><root/>', "is an XML document, not an HWPML document"),
        (
            "report.pdf",
            b"\x00\x01\x02\x03 binary \xff\xfe\x00" * 20,
            "is not a PDF document: its content is binary data of no known format",
        ),
        ("report.docx", _zip({"a.txt": b"a"}), r"is a zip archive but not a Word \(\.docx\) file"),
        ("old.hwpx", b"HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05" + bytes(100), "HWP 3"),
        ("report.bin", make_pdf([BODY]), "supported types are"),
    ],
    ids=[
        "doc-named-hwp",
        "xls-named-hwpx",
        "gif-named-pdf",
        "7z-named-hwp",
        "zip-named-txt",
        "text-named-pdf",
        "xml-named-hwpml",
        "binary-named-pdf",
        "zip-named-docx",
        "hwp3-named-hwpx",
        "unknown-extension",
    ],
)
def test_content_no_loader_reads_is_unsupported_and_says_what_it_is(
    filename: str, data: bytes, message: str
) -> None:
    with pytest.raises(Unsupported, match=message):
        load_documents(filename, data)


def test_password_protected_office_document_is_invalid_input() -> None:
    encrypted = compound_file({"EncryptionInfo": b"\4\0\4\0" + bytes(60), "EncryptedPackage": b"x"})
    with pytest.raises(InvalidInput, match="is a password-protected Office document"):
        load_documents("급여.xlsx", encrypted)


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("a.hwp", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "could not be read as HWP"),
        ("b.hwpx", make_hwpx([[BODY]])[:200], "damaged HWPX file"),
        ("c.docx", make_docx([BODY])[:-300], "damaged Word"),
    ],
    ids=["ole", "hwpx", "docx"],
)
def test_damaged_containers_go_to_the_loader_their_name_claims(
    filename: str, data: bytes, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_documents(filename, data)


def test_the_name_still_decides_which_files_are_taken() -> None:
    assert is_supported("공고.hwpml") and is_supported("공고.HML")
    assert not is_supported("공고.doc")
    assert detect("본문".encode(), ".pdf") == PLAIN_TEXT
