"""PDF files: the text of every page, with where each page begins so chunks can cite it.

Korean office programs (Hangul above all) draw justified text glyph by glyph, moving the text
position between words instead of drawing space characters. The text therefore comes from
pdfminer.six's layout analysis, which places every glyph by its box and infers a space from
each gap wider than a fraction of a glyph, as ``pdftotext`` does; unlike PDFium's text page it
needs no glyph outlines, so fonts that are not embedded lose no text. A Korean word that was
broken across two lines of a wrapped paragraph is joined again (see ``_joined_breaks``).

Pages without text that hold images (scans) are recognised by OCR when Tesseract is installed
(``ocr.py``); PDFium renders them.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pypdfium2
from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LAParams, LTChar, LTContainer, LTImage, LTTextLineHorizontal
from pdfminer.pdfdocument import PDFDocument, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.utils import decode_text
from PIL import Image

from app.core.errors import InvalidInput, TooLarge, Unsupported
from app.core.logger import get_logger
from app.retriever.loaders import ocr
from app.retriever.loaders.common import (
    MAX_EXPANDED_BYTES,
    LoadedDocument,
    clean_text,
    reading,
    stem,
)
from app.retriever.loaders.pages import join_pages
from app.text.korean import get_kiwi

log = get_logger(__name__)

# The header may follow a little junk (the PDF specification lets readers look in the first 1 KB).
_HEADER_WINDOW = 1024
# Korean paragraphs are set at 160% line spacing and more: a gap of 0.6 line heights and up.
# Grouping such lines into one text box keeps a paragraph's lines in order on busy pages.
_LINE_MARGIN = 1.0
# A wrapped line ends at most about one glyph short of the column's right edge.
_FULL_LINE_GLYPHS = 1.5
# The next line of the same paragraph starts at most this many font sizes lower.
_MAX_LINE_STEP = 2.5
_HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")
_STREAM_START = re.compile(rb"(?<!end)stream\r?\n")
_INFLATE_CHUNK = 1 << 16
# PDFium is not thread-safe; one lock serialises every use of it in the process.
_pdfium_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of text as laid out on the page, in PDF units (points, y upwards)."""

    text: str
    right: float
    bottom: float
    size: float


@dataclass(frozen=True, slots=True)
class _Page:
    lines: list[_Line]
    has_images: bool


def load_pdf(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document of all pages joined by blank lines; ``page_starts`` marks each page."""
    if data.find(b"%PDF-", 0, _HEADER_WINDOW) < 0:
        raise Unsupported(f"{filename} is not a PDF file.")
    _check_expansion(filename, data)
    with reading(filename, "PDF"):
        try:
            document = PDFDocument(PDFParser(io.BytesIO(data)), password="")
        except PDFPasswordIncorrect:
            raise InvalidInput(
                f"{filename} is password-protected; remove the password first."
            ) from None
        pages = list(_layouts(document))
        title = _title(document)
    texts = [_page_text(page.lines) for page in pages]
    scanned = [n for n, page in enumerate(pages) if page.has_images and not texts[n]]
    recognised = _recognise(filename, data, scanned, needed=not any(texts))
    for number, text in recognised.items():
        texts[number] = text
    if not any(texts):
        raise InvalidInput(_no_text_message(filename, scanned))
    text, starts = join_pages(texts)
    metadata: dict[str, object] = {"page_count": len(pages)}
    ocr_pages = [n + 1 for n in sorted(recognised) if recognised[n]]
    if ocr_pages:
        metadata["ocr_pages"] = ocr_pages
    return [LoadedDocument(text, title or stem(filename), metadata, page_starts=starts)]


def _check_expansion(filename: str, data: bytes) -> None:
    """Refuse a file whose deflated streams inflate past ``MAX_EXPANDED_BYTES``.

    The parser inflates streams whole and keeps them, so a few megabytes of crafted streams
    could claim many gigabytes. Image streams are left out: text extraction never inflates them,
    and rendering for OCR is bounded in pixels. Streams of an encrypted file are inflated only
    once decrypted, so they are not counted here.
    """
    total = 0
    for match in _STREAM_START.finditer(data):
        dictionary = data[max(data.rfind(b"obj", 0, match.start()), 0) : match.start()]
        if b"/Image" in dictionary:
            continue
        total += _inflated_size(data, match.end(), MAX_EXPANDED_BYTES - total)
        if total > MAX_EXPANDED_BYTES:
            raise TooLarge(
                f"{filename} expands to more than {MAX_EXPANDED_BYTES / 1e6:.0f} MB of content; "
                "that is the limit.",
                code="file_too_large",
            )


def _inflated_size(data: bytes, start: int, limit: int) -> int:
    """How many bytes the deflate stream at ``start`` inflates to, counting no further than ``limit``."""
    inflater = zlib.decompressobj()
    size = 0
    position = start
    pending = b""
    try:
        while size <= limit and not inflater.eof:
            if not pending:
                if position >= len(data):
                    break
                pending = data[position : position + _INFLATE_CHUNK]
                position += len(pending)
            size += len(inflater.decompress(pending, min(_INFLATE_CHUNK * 16, limit - size + 1)))
            pending = inflater.unconsumed_tail
    except zlib.error:
        # Not deflated (another filter, or encrypted), or damaged: the parser judges it.
        pass
    return size


def _layouts(document: PDFDocument) -> Iterator[_Page]:
    # One resource manager for the document: fonts are parsed once, not on every page.
    resources = PDFResourceManager()
    device = PDFPageAggregator(
        resources, laparams=LAParams(line_margin=_LINE_MARGIN, all_texts=True)
    )
    interpreter = PDFPageInterpreter(resources, device)
    for page in PDFPage.create_pages(document):
        interpreter.process_page(page)
        lines: list[_Line] = []
        has_images = _collect(device.get_result(), lines)
        yield _Page(lines, has_images)


def _collect(container: LTContainer, lines: list[_Line]) -> bool:
    """Append the text lines under ``container`` in reading order; whether it holds an image."""
    has_images = False
    for item in container:
        if isinstance(item, LTTextLineHorizontal):
            text = item.get_text().strip()
            sizes = [c.size for c in item if isinstance(c, LTChar)]
            if text and sizes:
                lines.append(_Line(text, item.x1, item.y0, max(sizes)))
        elif isinstance(item, LTImage):
            has_images = True
        elif isinstance(item, LTContainer):
            has_images = _collect(item, lines) or has_images
    return has_images


def _page_text(lines: Sequence[_Line]) -> str:
    joined = set(_joined_breaks(lines))
    parts = []
    for index, line in enumerate(lines):
        if index and index - 1 not in joined:
            parts.append("\n")
        parts.append(line.text)
    return clean_text("".join(parts))


def _joined_breaks(lines: Sequence[_Line]) -> Iterator[int]:
    """The line breaks that fall inside a Korean word; index ``i`` is the break after line ``i``.

    Hangul wraps Korean text at any syllable without a hyphen, so ``마감했`` may end one line and
    ``습니다`` begin the next. A break is inside a word when the line is full (it reaches the
    right edge of the text on its page, so the program wrapped it), it ends and the next line
    begins with a Hangul syllable, the next line follows it closely in the same type size, and
    Kiwi's spacing model sets the two halves without a space. A line that stops short is the end
    of a paragraph, however it ends.
    """
    if len(lines) < 2:
        return
    right_edge = max(line.right for line in lines)
    candidates = [
        index
        for index, (line, following) in enumerate(itertools.pairwise(lines))
        if _HANGUL_SYLLABLE.fullmatch(line.text[-1])
        and _HANGUL_SYLLABLE.fullmatch(following.text[0])
        and line.right >= right_edge - _FULL_LINE_GLYPHS * line.size
        and 0 < line.bottom - following.bottom <= _MAX_LINE_STEP * line.size
        and abs(following.size - line.size) <= 0.2 * line.size
    ]
    if not candidates:
        return
    contexts = []
    for index in candidates:
        before = " ".join(lines[index].text.split()[-2:])
        after = " ".join(lines[index + 1].text.split()[:2])
        contexts.append((before + after, len(before.replace(" ", ""))))
    spaced = get_kiwi().space([joined for joined, _ in contexts], reset_whitespace=False)
    for index, (_, cut), result in zip(candidates, contexts, spaced, strict=True):
        if not _space_after(result, cut):
            yield index


def _space_after(text: str, count: int) -> bool:
    """Whether a space follows the ``count``-th character of ``text`` that is not a space."""
    seen = 0
    for position, character in enumerate(text):
        if not character.isspace():
            seen += 1
            if seen == count:
                return text[position + 1 : position + 2].isspace()
    return False


def _title(document: PDFDocument) -> str:
    for info in document.info:
        title = resolve1(info.get("Title"))
        if isinstance(title, bytes):
            title = decode_text(title)
        if isinstance(title, str) and title.strip():
            return " ".join(title.split())
    return ""


def _recognise(
    filename: str, data: bytes, numbers: Sequence[int], *, needed: bool
) -> dict[int, str]:
    """OCR of the pages ``numbers`` (0-based); ``needed``: no other page has text.

    Without OCR the pages are skipped, or, when they are all the file has, the file is refused
    with how to enable OCR.
    """
    if not numbers:
        return {}
    if not needed and ocr.unavailable_reason() is not None:
        log.info("%s: %d scanned pages left out, OCR is not installed", filename, len(numbers))
        return {}
    recogniser = ocr.Recogniser(filename)
    texts = {}
    with reading(filename, "PDF"):
        with _pdfium_lock:
            document = pypdfium2.PdfDocument(data)
        try:
            for number in numbers:
                image, dpi = _render(document, number)
                texts[number] = clean_text(recogniser.text(image, f"page {number + 1}", dpi=dpi))
        finally:
            with _pdfium_lock:
                document.close()
    return texts


def _render(document: pypdfium2.PdfDocument, number: int) -> tuple[Image.Image, int]:
    """Page ``number`` in grey at OCR resolution, at most ``ocr.MAX_PIXELS``; and its dpi."""
    with _pdfium_lock:
        page = document[number]
        width, height = page.get_size()
        scale = min(ocr.RENDER_DPI / 72, math.sqrt(ocr.MAX_PIXELS / max(width * height, 1)))
        # A copy: the bitmap's memory belongs to PDFium and goes with the document.
        image = page.render(scale=scale, grayscale=True).to_pil().copy()
        page.close()
    return image, round(72 * scale)


def _no_text_message(filename: str, scanned: Sequence[int]) -> str:
    if scanned:
        return f"{filename} has no text layer and OCR found no text in its images."
    return f"{filename} has no text layer and no images for OCR to read."
