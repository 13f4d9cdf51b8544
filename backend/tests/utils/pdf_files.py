"""PDFs laid out the way Korean office programs export them, and scanned PDFs and images.

``typeset_pdf`` draws every glyph on its own: no space characters, the gaps between words made
by moving the text position, justified lines stretched to the column's width, and lines broken
where the test breaks them, inside a word too, as Hangul's character-wise wrapping does.
``scanned_pdf`` and ``text_image`` hold Korean text as pixels only, for OCR. The image builders
need a CJK font (Debian ``fonts-noto-cjk``): see ``cjk_font``.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image, ImageDraw, ImageFont

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

# Glyph advances in thousandths of the font size: Hangul and Hanja full width, ASCII half.
_WIDE = 1000
_NARROW = 500
_PAGE_WIDTH = 595
_PAGE_HEIGHT = 842


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Lines as the program broke them; every line but the last is justified."""

    lines: Sequence[str]
    indent: float = 0.0


Drawing = Literal["positioned", "kerned"]


def typeset_pdf(
    pages: Sequence[Sequence[Paragraph]],
    *,
    drawing: Drawing = "positioned",
    font_size: float = 10.0,
    left: float = 72.0,
    letter_spacing: float = -0.05,
    word_gap: float = 0.3,
    paragraph_gap: float = 8.0,
) -> bytes:
    """A PDF whose text is drawn glyph by glyph, with no space characters.

    ``drawing`` "positioned" sets the text matrix before each glyph (``Tm`` then ``Tj``);
    "kerned" shows each line with one ``TJ`` whose numbers move the glyphs apart. Distances are
    in units of the font size: ``letter_spacing`` between glyphs of a word (negative: tighter,
    as Korean documents often set it), ``word_gap`` the natural space between words. The
    column is as wide as the longest line so set; every other line that is not the last of its
    paragraph is justified, its gaps stretched until its last glyph touches the column's edge.
    """
    characters = sorted({c for page in pages for p in page for ln in p.lines for c in ln} - {" "})
    # Codes are glyph numbers, as in the subset fonts office programs embed.
    codes = {c: number for number, c in enumerate(characters, start=1)}
    width = max(
        p.indent * (n == 0) / font_size + _natural_width(line.split(), letter_spacing, word_gap)
        for page in pages
        for p in page
        for n, line in enumerate(p.lines)
    )
    writer = _PdfWriter()
    font = writer.cid_font(codes)
    contents = []
    for page in pages:
        ops = [b"BT", b"/F1 %s Tf" % _num(font_size)]
        y = _PAGE_HEIGHT - 72.0
        for paragraph in page:
            for number, line in enumerate(paragraph.lines):
                indent = paragraph.indent / font_size if number == 0 else 0.0
                last = number == len(paragraph.lines) - 1
                glyphs = _place(
                    line.split(),
                    None if last else width - indent,
                    letter_spacing,
                    word_gap,
                )
                x = left + indent * font_size
                ops += _draw(glyphs, codes, x, y, font_size, drawing)
                y -= font_size * 1.6
            y -= paragraph_gap
        ops.append(b"ET")
        contents.append(b"\n".join(ops))
    return writer.finish(contents, font)


def inflating_pdf(size: int) -> bytes:
    """A one-page PDF whose compressed content stream inflates to ``size`` bytes of blanks."""
    deflater = zlib.compressobj(9)
    block = b" " * (1 << 20)
    compressed = b"".join(deflater.compress(block) for _ in range(size // len(block)))
    compressed += deflater.compress(b" " * (size % len(block))) + deflater.flush()
    writer = _PdfWriter()
    return writer.finish([compressed], content_filter=b" /Filter /FlateDecode")


def _advance(character: str) -> float:
    return (_NARROW if ord(character) < 0x2E80 else _WIDE) / 1000


def _word_length(word: str, letter_spacing: float) -> float:
    return sum(_advance(c) for c in word) + letter_spacing * (len(word) - 1)


def _natural_width(words: list[str], letter_spacing: float, word_gap: float) -> float:
    return sum(_word_length(w, letter_spacing) for w in words) + word_gap * (len(words) - 1)


def _place(
    words: list[str], width: float | None, letter_spacing: float, word_gap: float
) -> list[tuple[float, str]]:
    """Each glyph's offset from the line's start, in font-size units."""
    gap, step = word_gap, letter_spacing
    if width is not None and len(words) > 1:
        gap = (width - sum(_word_length(w, letter_spacing) for w in words)) / (len(words) - 1)
    elif width is not None and len(words[0]) > 1:
        # A line that is one word (or part of one) spreads its glyphs instead.
        step = (width - sum(_advance(c) for c in words[0])) / (len(words[0]) - 1)
    glyphs = []
    x = 0.0
    for index, word in enumerate(words):
        if index:
            x += gap - step
        for character in word:
            glyphs.append((x, character))
            x += _advance(character) + step
    return glyphs


def _draw(
    glyphs: list[tuple[float, str]],
    codes: dict[str, int],
    x: float,
    y: float,
    size: float,
    drawing: Drawing,
) -> list[bytes]:
    if drawing == "positioned":
        return [
            b"1 0 0 1 %s %s Tm <%04X> Tj" % (_num(x + gx * size), _num(y), codes[c])
            for gx, c in glyphs
        ]
    parts = []
    end = 0.0
    for gx, character in glyphs:
        if abs(gx - end) > 1e-9:
            # TJ numbers are thousandths of the font size; positive ones move left.
            parts.append(_num((end - gx) * 1000))
        parts.append(b"<%04X>" % codes[character])
        end = gx + _advance(character)
    return [b"1 0 0 1 %s %s Tm [%s] TJ" % (_num(x), _num(y), b" ".join(parts))]


def _num(value: float) -> bytes:
    return (b"%.3f" % value).rstrip(b"0").rstrip(b".")


class _PdfWriter:
    """Numbered objects, a cross-reference table and a trailer: a minimal valid PDF."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def add(self, body: bytes) -> int:
        self.objects.append(body)
        return len(self.objects)

    @staticmethod
    def stream(data: bytes, extra: bytes = b"") -> bytes:
        return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"

    def cid_font(self, codes: dict[str, int]) -> int:
        """A Type0 font of two-byte glyph codes, with their widths and a ToUnicode map."""
        if any(ord(c) > 0xFFFF for c in codes):
            raise ValueError("characters outside the Basic Multilingual Plane")
        to_unicode = self.add(self.stream(_to_unicode_cmap(codes)))
        descriptor = self.add(
            b"<< /Type /FontDescriptor /FontName /TestMyeongjo /Flags 6"
            b" /FontBBox [0 -150 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120"
            b" /CapHeight 700 /StemV 80 >>"
        )
        widths = b" ".join(b"%d [%d]" % (n, round(_advance(c) * 1000)) for c, n in codes.items())
        cid_font = self.add(
            b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /TestMyeongjo"
            b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
            b" /FontDescriptor %d 0 R /DW 1000 /W [%s] /CIDToGIDMap /Identity >>"
            % (descriptor, widths)
        )
        return self.add(
            b"<< /Type /Font /Subtype /Type0 /BaseFont /TestMyeongjo /Encoding /Identity-H"
            b" /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode)
        )

    def finish(
        self,
        contents: Sequence[bytes],
        font: int | None = None,
        images: Sequence[int | None] = (),
        content_filter: bytes = b"",
    ) -> bytes:
        """The file: one page per content stream, each with the font and its own image."""
        catalog = self.add(b"")
        pages_id = self.add(b"")
        kids = []
        for number, content in enumerate(contents):
            resources = b""
            if font is not None:
                resources += b" /Font << /F1 %d 0 R >>" % font
            if images and images[number] is not None:
                resources += b" /XObject << /Im1 %d 0 R >>" % images[number]
            stream_id = self.add(self.stream(content, content_filter))
            kids.append(
                self.add(
                    b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d]"
                    b" /Resources <<%s >> /Contents %d 0 R >>"
                    % (pages_id, _PAGE_WIDTH, _PAGE_HEIGHT, resources, stream_id)
                )
            )
        self.objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
        self.objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
            b" ".join(b"%d 0 R" % k for k in kids),
            len(kids),
        )
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(self.objects) + 1,
            catalog,
            xref,
        )
        return bytes(out)


def _to_unicode_cmap(codes: dict[str, int]) -> bytes:
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    pairs = sorted((n, ord(c)) for c, n in codes.items())
    for start in range(0, len(pairs), 100):  # at most 100 mappings per block
        block = pairs[start : start + 100]
        lines.append(f"{len(block)} beginbfchar")
        lines += [f"<{n:04X}> <{u:04X}>" for n, u in block]
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines).encode()


# ------------------------------------------------------------------------------ pixels only


def cjk_font() -> Path:
    """The Noto CJK font file. Without ``fonts-noto-cjk`` the calling test is skipped, except
    under CI (``CI=true``), which installs it: there its absence fails the test."""
    if not CJK_FONT.is_file():
        message = f"{CJK_FONT} is absent (Debian package fonts-noto-cjk)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CJK_FONT


def text_image(lines: Sequence[str], *, font_size: int = 40, width: int = 1600) -> Image.Image:
    """Black Korean text on white, like a page scanned at about 300 dpi."""
    font = ImageFont.truetype(str(cjk_font()), font_size)
    line_height = int(font_size * 1.7)
    image = Image.new("L", (width, line_height * len(lines) + 2 * font_size), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((font_size, font_size + number * line_height), line, font=font, fill=0)
    return image


def image_bytes(image: Image.Image, image_format: str) -> bytes:
    """``image`` encoded as PNG or JPEG."""
    out = io.BytesIO()
    image.save(out, format=image_format)
    return out.getvalue()


def scanned_pdf(pages: Sequence[Image.Image | str | None]) -> bytes:
    """A PDF of scanned pages: each an image without a text layer, or ``None`` for a blank page,
    or a ``str``: a page with that one line of text, for files that mix the two."""
    writer = _PdfWriter()
    characters = sorted({c for page in pages if isinstance(page, str) for c in page} - {" "})
    codes = {c: number for number, c in enumerate(characters, start=1)}
    font = writer.cid_font(codes) if codes else None
    contents = []
    images: list[int | None] = []
    for page in pages:
        images.append(None)
        if page is None:
            contents.append(b"")
        elif isinstance(page, str):
            glyphs = _place(page.split(), None, 0.0, 0.3)
            contents.append(
                b"\n".join([b"BT /F1 12 Tf", *_draw(glyphs, codes, 72, 760, 12, "kerned"), b"ET"])
            )
        else:
            gray = page.convert("L")
            images[-1] = writer.add(
                writer.stream(
                    image_bytes(gray, "JPEG"),
                    b" /Type /XObject /Subtype /Image /Width %d /Height %d"
                    b" /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode" % gray.size,
                )
            )
            # The image spans the page's width, keeping its aspect ratio, from the top.
            height = _PAGE_WIDTH * gray.height / gray.width
            contents.append(
                b"q %d 0 0 %s 0 %s cm /Im1 Do Q"
                % (_PAGE_WIDTH, _num(height), _num(_PAGE_HEIGHT - height))
            )
    return writer.finish(contents, font, images=images)
