"""Hangul word processor files: ``.hwp`` (HWP 5, an OLE compound file) and ``.hwpx`` (zipped XML).

HWP 5 keeps each section's paragraphs in a ``BodyText/Section<n>`` stream of tagged records,
raw-deflated when the header's "compressed" flag is set; a paragraph's text is a ``PARA_TEXT``
record of UTF-16LE code units in which controls (tables, fields, tabs) take eight units.

Distribution documents (배포용 문서) put a notice in ``BodyText`` and the real text in
``ViewText/Section<n>``, AES-128-ECB encrypted with a key kept in the section itself: its first
record (``DISTRIBUTE_DOC_DATA``, 256 bytes) is masked with MSVC ``rand()`` output seeded by its
first four bytes, and the unmasked bytes hold the key. They open without a password, so they
are read; password-protected, DRM and certificate-encrypted files are refused, each by name.

The title is the ``PIDSI_TITLE`` property of the ``HwpSummaryInformation`` property set
(MS-OLEPS), read up to its declared length and first NUL: the values that follow it (author,
dates) belong to other properties.
Reference: Hancom, "HWP 5.0 file format", revision 1.3, and its part on distribution documents.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import olefile
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from app.core.errors import InvalidInput, TooLarge, Unsupported
from app.retriever.loaders.common import (
    Archive,
    LoadedDocument,
    clean_text,
    current_limits,
    open_zip,
    reading,
    stem,
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HWP_SIGNATURE = b"HWP Document File"

_FLAG_COMPRESSED = 1 << 0
_FLAG_DISTRIBUTION = 1 << 2
# Protections whose body text cannot be read without a secret the file does not hold.
_PROTECTIONS = (
    (1 << 1, "is password-protected; open it in Hangul, remove the password and upload it again"),
    (1 << 4, "is DRM-protected; ask its owner for a copy without DRM"),
    (1 << 8, "is encrypted with a certificate; save a copy without certificate encryption"),
    (1 << 10, "is protected by certificate DRM; ask its owner for a copy without DRM"),
)
_TAG_DISTRIBUTE_DOC_DATA = 0x10 + 12
_TAG_PARA_TEXT = 0x10 + 51
_AES_BLOCK = 16
# The document's summary (an OLE property set): the format ids Hangul writes it under (its own,
# and that of OLE's SummaryInformation, whose property ids it shares), the ids of the code page
# and title properties, and the property types a title is written in.
_SUMMARY_STREAM = "\x05HwpSummaryInformation"
_SUMMARY_FORMATS = frozenset(
    {
        bytes.fromhex("60B6A29F6110D411B4C6006097C09D8C"),  # {9FA2B660-1061-11D4-B4C6-006097C09D8C}
        bytes.fromhex("E0859FF2F94F6810AB9108002B27B3D9"),  # {F29F85E0-4FF9-1068-AB91-08002B27B3D9}
    }
)
_PID_CODEPAGE, _PIDSI_TITLE = 1, 2
_VT_I2, _VT_LPSTR, _VT_LPWSTR = 0x02, 0x1E, 0x1F
_CODEPAGES = {1200: "utf-16-le", 65001: "utf-8", 949: "cp949"}
# Control characters that occupy eight code units (the code, six units of data, the code again).
_WIDE_CONTROLS = frozenset(
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}
)
_SHORT_CONTROLS = {9: "\t", 10: "\n", 13: "\n", 24: "-", 30: " ", 31: " "}
_SECTION_STREAM = re.compile(r"Section(\d+)")

_HWPX_SECTION = re.compile(r"Contents/section(\d+)\.xml")


def load_hwp(filename: str, data: bytes) -> list[LoadedDocument]:
    """An HWP 5 document, distribution copies included: the text of every section, one
    paragraph per block; its title from the document's summary information, else the file name."""
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
        for flag, refusal in _PROTECTIONS:
            if flags & flag:
                raise InvalidInput(f"{filename} {refusal}.")
        distributed = bool(flags & _FLAG_DISTRIBUTION)
        storage = "ViewText" if distributed else "BodyText"
        sections = sorted(
            (int(match.group(1)), entry)
            for entry in ole.listdir(streams=True, storages=False)
            if len(entry) == 2
            and entry[0] == storage
            and (match := _SECTION_STREAM.fullmatch(entry[1]))
        )
        if not sections:
            raise InvalidInput(f"{filename} has no body text (no {storage}/Section streams).")
        title = _hwp_title(ole)
        budget = current_limits().max_expanded_bytes
        paragraphs: list[str] = []
        for _, entry in sections:
            body = ole.openstream(entry).read()
            if distributed:
                body = _decrypt_view_text(filename, body)
            if flags & _FLAG_COMPRESSED:
                body = _inflate(filename, body, budget)
            budget -= len(body)
            # Decrypted text that was not compressed ends in up to a block of cipher padding.
            padding = _AES_BLOCK if distributed and not flags & _FLAG_COMPRESSED else 0
            records = _records(filename, body, padding=padding)
            paragraphs += (_para_text(p) for tag, p in records if tag == _TAG_PARA_TEXT)
    text = clean_text("\n\n".join(p.strip() for p in paragraphs if p.strip()))
    return [LoadedDocument(text, title or stem(filename), {})]


def _decrypt_view_text(filename: str, stream: bytes) -> bytes:
    """A distribution document's section without its key record, decrypted (still compressed
    if the document is)."""
    records = _records(filename, stream[:260])
    tag, key_data = next(records, (None, b""))
    if tag != _TAG_DISTRIBUTE_DOC_DATA or len(key_data) != 256:
        raise InvalidInput(f"{filename} is damaged: a distribution section lacks its key record.")
    encrypted = stream[260:]
    if len(encrypted) % _AES_BLOCK:
        raise InvalidInput(f"{filename} is damaged: an encrypted section is cut short.")
    decryptor = Cipher(algorithms.AES(_distribution_key(key_data)), modes.ECB()).decryptor()
    return decryptor.update(encrypted) + decryptor.finalize()


def _distribution_key(key_data: bytes) -> bytes:
    """The AES-128 key in a ``DISTRIBUTE_DOC_DATA`` record.

    After its first four bytes (the seed) the record is XORed with a mask of runs: each run is
    one ``rand() & 0xFF`` repeated ``(rand() & 0xF) + 1`` times. Unmasked, the record holds a
    password hash whose first 16 bytes are the key, at ``4 + (seed & 0xF)``.
    """
    seed = int.from_bytes(key_data[:4], "little")
    numbers = _msvc_rand(seed)
    mask = bytearray()
    while len(mask) < len(key_data):
        value = next(numbers) & 0xFF
        mask += bytes([value]) * ((next(numbers) & 0xF) + 1)
    start = 4 + (seed & 0xF)
    return bytes(b ^ m for b, m in zip(key_data[start : start + 16], mask[start:], strict=False))


def _msvc_rand(seed: int) -> Iterator[int]:
    """What Microsoft Visual C's ``srand(seed)`` then ``rand()``, ``rand()``, ... return."""
    state = seed
    while True:
        state = (state * 214013 + 2531011) & 0xFFFFFFFF
        yield (state >> 16) & 0x7FFF


def _hwp_title(ole: olefile.OleFileIO) -> str:
    """The title Hangul keeps in the ``HwpSummaryInformation`` property set; "" when there is none."""
    if not ole.exists(_SUMMARY_STREAM):
        return ""
    return summary_title(ole.openstream(_SUMMARY_STREAM).read())


def summary_title(stream: bytes) -> str:
    """The title (``PIDSI_TITLE``) of a summary information property set stream (MS-OLEPS).

    The string ends at its declared length or its first NUL, whichever comes first; a damaged
    or foreign property set has no title (""), and the file name stands in.
    """
    # Stream header: byte order mark, version, system id, class id, number of property sets;
    # then the first set's format id and offset.
    if len(stream) < 48 or stream[:2] != b"\xfe\xff" or stream[28:44] not in _SUMMARY_FORMATS:
        return ""
    (start,) = struct.unpack_from("<I", stream, 44)
    if start + 8 > len(stream):
        return ""
    size, count = struct.unpack_from("<II", stream, start)
    section = stream[start : start + size]
    offsets = {}
    for i in range(min(count, (len(section) - 8) // 8)):
        property_id, offset = struct.unpack_from("<II", section, 8 + 8 * i)
        offsets[property_id] = offset
    title_at = offsets.get(_PIDSI_TITLE)
    if title_at is None or title_at + 8 > len(section):
        return ""
    kind, length = struct.unpack_from("<H2xI", section, title_at)
    value = section[title_at + 8 :]
    if kind == _VT_LPWSTR:
        # The length counts UTF-16 code units, the terminating NUL included.
        text = value[: 2 * length].decode("utf-16-le", errors="replace")
    elif kind == _VT_LPSTR:
        # The length counts bytes in the set's code page, the terminating NUL included.
        text = value[:length].decode(_codepage(section, offsets), errors="replace")
    else:
        return ""
    return " ".join(text.split("\0", 1)[0].split())


def _codepage(section: bytes, offsets: dict[int, int]) -> str:
    at = offsets.get(_PID_CODEPAGE)
    if at is None or at + 6 > len(section):
        return "cp949"
    kind, codepage = struct.unpack_from("<H2xH", section, at)
    return _CODEPAGES.get(codepage, "cp949") if kind == _VT_I2 else "cp949"


def _inflate(filename: str, raw: bytes, budget: int) -> bytes:
    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
    body = decoder.decompress(raw, budget + 1)
    if len(body) > budget:
        limit = current_limits().max_expanded_bytes
        raise TooLarge(
            f"{filename} expands to more than {limit / 1e6:.0f} MB of text records.",
            code="file_too_large",
        )
    if not decoder.eof:
        raise InvalidInput(f"{filename} is damaged: a compressed section is cut short.")
    return body


def _records(filename: str, body: bytes, padding: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(tag, payload)`` of each record: a 32-bit header of tag (10 bits), level (10), size (12).

    A record cut short within the last ``padding`` bytes is padding, not a damaged record.
    """
    offset = 0
    while offset + 4 <= len(body):
        start = offset
        (header,) = struct.unpack_from("<I", body, offset)
        offset += 4
        tag, size = header & 0x3FF, header >> 20
        if size == 0xFFF:  # larger records give their size in the next 32 bits
            if offset + 4 > len(body):
                if len(body) - start <= padding:
                    return
                raise InvalidInput(f"{filename} is damaged: a record header is cut short.")
            (size,) = struct.unpack_from("<I", body, offset)
            offset += 4
        if offset + size > len(body):
            if len(body) - start <= padding:
                return
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
            paragraphs += markup_paragraphs(parse_xml(archive.read(name)), HWPX_MARKUP)
        title = _hwpx_title(archive) if "Contents/content.hpf" in names else ""
    text = clean_text("\n\n".join(paragraphs))
    return [LoadedDocument(text, title or stem(filename), {})]


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML: no entity is expanded, nothing is fetched, no huge trees."""
    # A parser object must not be shared between threads.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(data, parser)


@dataclass(frozen=True, slots=True)
class Markup:
    """The element names (local names) of one Hangul XML dialect that text extraction reads."""

    paragraph: str
    text: str
    table: str
    row: str
    cell: str
    # Empty elements inside text that stand for a character.
    inline: Mapping[str, str]
    # Elements whose text is settings, not content.
    skipped: frozenset[str] = frozenset()


HWPX_MARKUP = Markup(
    paragraph="p",
    text="t",
    table="tbl",
    row="tr",
    cell="tc",
    inline={"tab": "\t", "lineBreak": "\n", "hyphen": "-", "nbSpace": " ", "fwSpace": " "},
)
# Entities left unexpanded by the parser that stand for a character (HWPML declares ``nbsp``).
_ENTITIES = {"nbsp": " "}


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def markup_paragraphs(root: etree._Element, markup: Markup) -> list[str]:
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
        if name == markup.text:
            fragments.append(_run_text(element, markup))
            return
        if name in markup.skipped:
            return
        if name == markup.table:
            flush()
            paragraphs.append(_table(element, markup))
            return
        if name == markup.paragraph:
            flush()
        for child in element:
            visit(child)
        if name == markup.paragraph:
            flush()

    visit(root)
    return paragraphs


def _table(table: etree._Element, markup: Markup) -> str:
    """One ``cell | cell`` line per row; a cell's own paragraphs are joined by `` / ``."""
    rows = (
        " | ".join(
            " / ".join(markup_paragraphs(cell, markup))
            for cell in row
            if _local(cell) == markup.cell
        )
        for row in table
        if _local(row) == markup.row
    )
    return "\n".join(row for row in rows if row.strip(" |"))


def _run_text(element: etree._Element, markup: Markup) -> str:
    parts = [element.text or ""]
    for child in element:
        if isinstance(child, etree._Entity):
            parts.append(_ENTITIES.get(child.name, ""))
        elif isinstance(child.tag, str):
            name = _local(child)
            parts.append(markup.inline[name] if name in markup.inline else _run_text(child, markup))
        parts.append(child.tail or "")
    return "".join(parts)


def _hwpx_title(archive: Archive) -> str:
    package = parse_xml(archive.read("Contents/content.hpf"))
    for element in package.iter():
        if _local(element) == "title" and (element.text or "").strip():
            return " ".join(element.text.split())
    return ""
