"""Hangul word processor files: ``.hwp`` (HWP 5, an OLE compound file) and ``.hwpx`` (zipped XML).

HWP 5 keeps each section's paragraphs in a ``BodyText/Section<n>`` stream of tagged records,
raw-deflated when the header's "compressed" flag is set; a paragraph's text is a ``PARA_TEXT``
record of UTF-16LE code units in which controls (tables, fields, tabs) take eight units.
Reference: Hancom, "HWP 5.0 file format", revision 1.3.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator

import olefile
from lxml import etree

from app.core.errors import InvalidInput, TooLarge, Unsupported
from app.retriever.loaders.common import (
    MAX_EXPANDED_BYTES,
    LoadedDocument,
    clean_text,
    open_zip,
    reading,
    stem,
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HWP_SIGNATURE = b"HWP Document File"

_FLAG_COMPRESSED = 1 << 0
# Password, distribution copy, DRM, certificate encryption, certificate DRM: the body text of
# such files is encrypted or a placeholder.
_FLAGS_PROTECTED = (1 << 1) | (1 << 2) | (1 << 4) | (1 << 8) | (1 << 10)
_TAG_PARA_TEXT = 0x10 + 51
# The document's summary (an OLE property set), and the id of its title property (PIDSI_TITLE).
_SUMMARY_STREAM = "\x05HwpSummaryInformation"
_PIDSI_TITLE = 2
# Control characters that occupy eight code units (the code, six units of data, the code again).
_WIDE_CONTROLS = frozenset(
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}
)
_SHORT_CONTROLS = {9: "\t", 10: "\n", 13: "\n", 24: "-", 30: " ", 31: " "}
_SECTION_STREAM = re.compile(r"Section(\d+)")

_HWPX_SECTION = re.compile(r"Contents/section(\d+)\.xml")
_HWPX_INLINE = {"tab": "\t", "lineBreak": "\n", "hyphen": "-", "nbSpace": " ", "fwSpace": " "}


def load_hwp(filename: str, data: bytes) -> list[LoadedDocument]:
    """An HWP 5 document: the text of every section, one paragraph per block; its title from the
    document's summary information, else the file name."""
    if data.startswith(HWP_SIGNATURE):
        raise Unsupported(f"{filename} is an HWP 3 file; save it as HWP 5 (.hwp) or HWPX first.")
    if not data.startswith(OLE_MAGIC):
        raise Unsupported(f"{filename} is not an HWP file.")
    with reading(filename, "HWP"), olefile.OleFileIO(io.BytesIO(data)) as ole:
        if not ole.exists("FileHeader"):
            raise Unsupported(f"{filename} is an OLE file but not an HWP document (.doc or .xls?).")
        header = ole.openstream("FileHeader").read(256)
        if not header.startswith(HWP_SIGNATURE) or len(header) < 40:
            raise Unsupported(f"{filename} is an OLE file but not an HWP document.")
        (flags,) = struct.unpack_from("<I", header, 36)
        if flags & _FLAGS_PROTECTED:
            raise InvalidInput(
                f"{filename} is password- or distribution-protected; save an unprotected copy."
            )
        sections = sorted(
            (int(match.group(1)), entry)
            for entry in ole.listdir(streams=True, storages=False)
            if len(entry) == 2
            and entry[0] == "BodyText"
            and (match := _SECTION_STREAM.fullmatch(entry[1]))
        )
        if not sections:
            raise InvalidInput(f"{filename} has no body text (no BodyText/Section streams).")
        title = _hwp_title(ole)
        budget = MAX_EXPANDED_BYTES
        paragraphs: list[str] = []
        for _, entry in sections:
            raw = ole.openstream(entry).read()
            body = _inflate(filename, raw, budget) if flags & _FLAG_COMPRESSED else raw
            budget -= len(body)
            paragraphs += (
                _para_text(p) for tag, p in _records(filename, body) if tag == _TAG_PARA_TEXT
            )
    text = clean_text("\n\n".join(p.strip() for p in paragraphs if p.strip()))
    return [LoadedDocument(text, title or stem(filename), {})]


def _hwp_title(ole: olefile.OleFileIO) -> str:
    """The title Hangul keeps in the ``HwpSummaryInformation`` property set; "" when there is none."""
    if not ole.exists(_SUMMARY_STREAM):
        return ""
    # olefile reads what it can of a damaged property set and logs the rest: such a summary
    # yields no title, and the file name stands in.
    title = ole.getproperties(_SUMMARY_STREAM).get(_PIDSI_TITLE, "")
    # Hangul writes the title as UTF-16 text (VT_LPWSTR); anything else is not a title it wrote.
    return title.strip("\0 \t\r\n") if isinstance(title, str) else ""


def _inflate(filename: str, raw: bytes, budget: int) -> bytes:
    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
    body = decoder.decompress(raw, budget + 1)
    if len(body) > budget:
        raise TooLarge(
            f"{filename} expands to more than {MAX_EXPANDED_BYTES / 1e6:.0f} MB of text records.",
            code="file_too_large",
        )
    if not decoder.eof:
        raise InvalidInput(f"{filename} is damaged: a compressed section is cut short.")
    return body


def _records(filename: str, body: bytes) -> Iterator[tuple[int, bytes]]:
    """``(tag, payload)`` of each record: a 32-bit header of tag (10 bits), level (10), size (12)."""
    offset = 0
    while offset + 4 <= len(body):
        (header,) = struct.unpack_from("<I", body, offset)
        offset += 4
        tag, size = header & 0x3FF, header >> 20
        if size == 0xFFF:  # larger records give their size in the next 32 bits
            if offset + 4 > len(body):
                raise InvalidInput(f"{filename} is damaged: a record header is cut short.")
            (size,) = struct.unpack_from("<I", body, offset)
            offset += 4
        if offset + size > len(body):
            raise InvalidInput(f"{filename} is damaged: a record is cut short.")
        yield tag, body[offset : offset + size]
        offset += size


def _para_text(payload: bytes) -> str:
    units = [unit for (unit,) in struct.iter_unpack("<H", payload[: len(payload) & ~1])]
    kept = bytearray()
    i = 0
    while i < len(units):
        unit = units[i]
        if unit >= 32:
            kept += unit.to_bytes(2, "little")
        elif unit in _SHORT_CONTROLS:
            kept += _SHORT_CONTROLS[unit].encode("utf-16-le")
        i += 8 if unit in _WIDE_CONTROLS else 1
    # Surrogate pairs become one character here; a lone surrogate is dropped.
    return kept.decode("utf-16-le", errors="ignore")


def load_hwpx(filename: str, data: bytes) -> list[LoadedDocument]:
    """An HWPX document: the text of every ``Contents/section<n>.xml``, one paragraph per block."""
    with open_zip(filename, data, "HWPX", _HWPX_SECTION) as archive, reading(filename, "HWPX"):
        names = archive.namelist()
        if "META-INF/manifest.xml" in names and b"encryption-data" in archive.read(
            "META-INF/manifest.xml"
        ):
            raise InvalidInput(f"{filename} is password-protected; save an unprotected copy.")
        sections = sorted(
            (int(match.group(1)), name)
            for name in names
            if (match := _HWPX_SECTION.fullmatch(name))
        )
        paragraphs: list[str] = []
        for _, name in sections:
            paragraphs += _hwpx_paragraphs(_parse_xml(archive.read(name)))
        title = _hwpx_title(archive) if "Contents/content.hpf" in names else ""
    text = clean_text("\n\n".join(paragraphs))
    return [LoadedDocument(text, title or stem(filename), {})]


def _parse_xml(data: bytes) -> etree._Element:
    # A parser object must not be shared between threads; entities are never expanded.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(data, parser)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _hwpx_paragraphs(root: etree._Element) -> list[str]:
    """Paragraph texts in reading order; a table is one block of its rows."""
    paragraphs: list[str] = []
    fragments: list[str] = []

    def flush() -> None:
        text = "".join(fragments).strip()
        fragments.clear()
        if text:
            paragraphs.append(text)

    def visit(element: etree._Element) -> None:
        name = _local(element)
        if name == "t":
            fragments.append(_hwpx_run_text(element))
            return
        if name == "tbl":
            flush()
            paragraphs.append(_hwpx_table(element))
            return
        if name == "p":
            flush()
        for child in element:
            visit(child)
        if name == "p":
            flush()

    visit(root)
    return paragraphs


def _hwpx_table(table: etree._Element) -> str:
    """One ``cell | cell`` line per row; a cell's own paragraphs are joined by `` / ``."""
    rows = (
        " | ".join(" / ".join(_hwpx_paragraphs(cell)) for cell in row if _local(cell) == "tc")
        for row in table
        if _local(row) == "tr"
    )
    return "\n".join(row for row in rows if row.strip(" |"))


def _hwpx_run_text(element: etree._Element) -> str:
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            name = _local(child)
            parts.append(_HWPX_INLINE[name] if name in _HWPX_INLINE else _hwpx_run_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _hwpx_title(archive: zipfile.ZipFile) -> str:
    package = _parse_xml(archive.read("Contents/content.hpf"))
    for element in package.iter():
        if _local(element) == "title" and (element.text or "").strip():
            return " ".join(element.text.split())
    return ""
