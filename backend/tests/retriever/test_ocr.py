"""OCR of scanned PDFs and images with Tesseract, and the refusal that says how to enable it.

The recognition tests need Tesseract with its Korean data (Debian ``tesseract-ocr
tesseract-ocr-kor``) and a CJK font to draw the scans (``fonts-noto-cjk``); without them they
are skipped, except under CI, where a missing package is a broken set-up and fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from app.core.errors import InvalidInput, TooLarge
from app.retriever.loaders import load_documents, ocr
from tests.utils.pdf_files import image_bytes, scanned_pdf, text_image

LEAVE = [
    "연차 휴가는 입사 첫해에 매달 하루씩 생깁니다.",
    "병가는 진단서가 있으면 연간 열흘까지 쓸 수 있습니다.",
]
REMOTE = ["재택근무는 주 2회까지 팀장의 승인을 받아 할 수 있습니다."]


@pytest.fixture
def tesseract() -> None:
    """Skips (fails under CI) unless Tesseract with Korean and English data is installed."""
    reason = ocr.unavailable_reason()
    if reason is not None:
        message = f"{reason} (Debian packages tesseract-ocr tesseract-ocr-kor)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def no_tesseract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A search path on which no program is found, as on a server without Tesseract."""
    monkeypatch.setenv("PATH", str(tmp_path))


def _words(text: str) -> set[str]:
    return set(text.split())


def test_scanned_pdf_pages_are_recognised_page_by_page(tesseract: None) -> None:
    data = scanned_pdf([text_image(LEAVE), None, text_image(REMOTE)])
    [document] = load_documents("스캔 규정.pdf", data)
    _, second, third = document.page_starts
    # Page 2 is blank, so it starts where page 3 does.
    assert 0 < second == third
    # Tesseract misreads a syllable now and then; these words it reads reliably.
    assert {"연차", "휴가는", "입사", "진단서가", "열흘까지"} <= _words(document.text[:third])
    assert {"재택근무는", "팀장의", "승인을"} <= _words(document.text[third:])
    assert document.metadata == {"page_count": 3, "ocr_pages": [1, 3]}
    assert document.title == "스캔 규정"


def test_text_pages_and_scanned_pages_of_one_pdf(tesseract: None) -> None:
    [document] = load_documents(
        "a.pdf", scanned_pdf(["본문이 있는 페이지입니다.", text_image(REMOTE)])
    )
    second = document.page_starts[1]
    assert document.text[:second] == "본문이 있는 페이지입니다.\n\n"
    assert {"재택근무는", "승인을"} <= _words(document.text[second:])
    assert document.metadata == {"page_count": 2, "ocr_pages": [2]}


@pytest.mark.parametrize(("image_format", "name"), [("PNG", "공지.png"), ("JPEG", "공지.JPG")])
def test_images_are_recognised(tesseract: None, image_format: str, name: str) -> None:
    [document] = load_documents(name, image_bytes(text_image(LEAVE + REMOTE), image_format))
    assert {"연차", "휴가는", "진단서가", "재택근무는", "승인을"} <= _words(document.text)
    assert document.title == "공지"
    assert document.metadata == {"ocr": True}


def test_an_image_without_text_is_invalid_input(tesseract: None) -> None:
    blank = text_image([" "])
    with pytest.raises(InvalidInput, match="OCR found no text"):
        load_documents("blank.png", image_bytes(blank, "PNG"))


def test_without_tesseract_scans_and_images_say_how_to_enable_ocr(no_tesseract: None) -> None:
    assert ocr.unavailable_reason() == "Tesseract OCR is not installed"
    for name, data in (
        ("scan.pdf", scanned_pdf([text_image(LEAVE)])),
        ("photo.png", image_bytes(text_image(LEAVE), "PNG")),
    ):
        with pytest.raises(InvalidInput, match="tesseract-ocr tesseract-ocr-kor") as refused:
            load_documents(name, data)
        assert refused.value.code == "ocr_unavailable"
        assert refused.value.params == {"filename": name}


def test_without_korean_data_the_refusal_names_it(
    tesseract: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Tesseract looks for its language data here first: an empty folder has none.
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    assert ocr.unavailable_reason() == "Tesseract OCR lacks its kor+eng language data"
    with pytest.raises(InvalidInput, match="lacks its kor") as refused:
        load_documents("scan.pdf", scanned_pdf([text_image(REMOTE)]))
    assert refused.value.code == "ocr_unavailable"


def test_without_tesseract_the_text_pages_of_a_mixed_pdf_still_index(
    no_tesseract: None,
) -> None:
    [document] = load_documents(
        "a.pdf", scanned_pdf(["본문이 있는 페이지입니다.", text_image(REMOTE)])
    )
    assert document.text == "본문이 있는 페이지입니다."
    assert document.metadata == {"page_count": 2}


def test_blank_pages_are_not_sent_to_ocr(no_tesseract: None) -> None:
    # No images: nothing to recognise, so the missing Tesseract is not the reason given.
    with pytest.raises(InvalidInput, match="no images for OCR") as refused:
        load_documents("blank.pdf", scanned_pdf([None, None]))
    assert refused.value.code == "invalid_input"


def test_recognition_stops_at_the_time_limit(
    tesseract: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr, "TIME_LIMIT_S", 0.0)
    with pytest.raises(TooLarge, match="did not finish within 0 s") as refused:
        load_documents("slow.pdf", scanned_pdf([text_image(REMOTE)]))
    assert refused.value.code == "ocr_timeout"


def _cut_png() -> bytes:
    data = image_bytes(Image.new("L", (400, 300), 200), "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        ("photo.jpg", b"\xff\xd8\xff" + b"\0" * 40),
        ("cut.png", _cut_png()),
    ],
)
def test_damaged_images_are_invalid_input(tesseract: None, name: str, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="could not be read as image"):
        load_documents(name, data)


def test_images_past_the_pixel_limit_are_refused_before_decoding() -> None:
    wide = Image.new("L", (10_000, 6_000), 255)
    with pytest.raises(TooLarge, match="pixels"):
        load_documents("huge.png", image_bytes(wide, "PNG"))
