"""Real Korean text and real document files for tests.

``nsmc_reviews`` and ``korquad_paragraphs`` read the shared data set (skipping the test when it is
absent); the builders write PDF, DOCX, HWPX and HWP 5 (with its OLE container).

Nothing here shortcuts a format: each file is what an office program would write, minus the
parts text extraction never reads (fonts' glyphs, styles, layout). The HWP and HWPX builders are
checked against the independent reader in ``extract_hwp`` by the loader tests.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import struct
import zipfile
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import docx

from tests.conftest import SHARED_DATA, require_shared

Table = list[list[str]]
Block = str | Table

# ------------------------------------------------------------------------------ shared data


def shared_file(relative: str) -> Path:
    """A file of the shared data set, as ``require_shared`` finds it."""
    return require_shared(SHARED_DATA / relative)


@cache
def _nsmc_dev() -> tuple[str, ...]:
    with gzip.open(shared_file("nsmc/dev.tsv.gz"), "rt", encoding="utf-8") as f:
        # Reviews contain bare double quotes: no CSV quoting.
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return tuple(row["review"] for row in rows)


def nsmc_reviews(count: int) -> list[str]:
    """The first ``count`` non-empty reviews of the NSMC dev split."""
    return [r for r in _nsmc_dev() if r.strip()][:count]


@cache
def _korquad() -> tuple[tuple[str, tuple[str, ...]], ...]:
    data = json.loads(shared_file("korquad/dev_part_a.json").read_text(encoding="utf-8"))
    return tuple(
        (p["context"], tuple(q["question"] for q in p["qas"]))
        for article in data["data"]
        for p in article["paragraphs"]
    )


def korquad_paragraphs(count: int) -> list[tuple[str, tuple[str, ...]]]:
    """The first ``count`` KorQuAD paragraphs, each with its questions."""
    return list(_korquad()[:count])


# --------------------------------------------------------------------------------------- PDF


def make_pdf(pages: Sequence[str], *, title: str | None = None) -> bytes:
    """A PDF with one page per string (lines split on newlines; "" is a page without text).

    Text is shown with a Type0 font in Identity-H encoding, each character's code being its
    Unicode code point, and a ToUnicode CMap saying so: what Korean PDFs from office programs do.
    """
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes, extra: str = "") -> bytes:
        return f"<< /Length {len(data)}{extra} >>\nstream\n".encode() + data + b"\nendstream"

    characters = sorted({ord(c) for page in pages for c in page if c != "\n"})
    if any(c > 0xFFFF for c in characters):
        raise ValueError("make_pdf encodes characters of the Basic Multilingual Plane only")
    catalog = add(b"")  # filled in once the page tree's number is known
    pages_id = add(b"")
    to_unicode = add(stream(_to_unicode_cmap(characters)))
    descriptor = add(
        b"<< /Type /FontDescriptor /FontName /TestGothic /Flags 4 /FontBBox [0 -200 1000 900]"
        b" /ItalicAngle 0 /Ascent 900 /Descent -200 /CapHeight 700 /StemV 80 >>"
    )
    cid_font = add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /TestGothic"
        b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
        b" /FontDescriptor %d 0 R /DW 1000 /CIDToGIDMap /Identity >>" % descriptor
    )
    font = add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /TestGothic /Encoding /Identity-H"
        b" /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode)
    )
    page_ids = []
    for text in pages:
        content = add(stream(_page_content(text)))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842]"
                b" /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_id, font, content)
            )
        )
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    info = add(b"<< /Title <%s> >>" % _utf16_hex(title)) if title else None

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"/Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info is not None:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n<< %s >>\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref)
    return bytes(out)


def _page_content(text: str) -> bytes:
    if not text:
        return b""
    lines = [b"BT", b"/F1 12 Tf", b"14 TL", b"50 800 Td"]
    for line in text.split("\n"):
        lines.append(b"<%s> Tj T*" % line.encode("utf-16-be").hex().upper().encode())
    lines.append(b"ET")
    return b"\n".join(lines)


def _to_unicode_cmap(characters: Sequence[int]) -> bytes:
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
    for start in range(0, len(characters), 100):  # at most 100 mappings per block
        block = characters[start : start + 100]
        lines.append(f"{len(block)} beginbfchar")
        lines += [f"<{c:04X}> <{c:04X}>" for c in block]
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines).encode()


def _utf16_hex(text: str) -> bytes:
    return (b"\xfe\xff" + text.encode("utf-16-be")).hex().upper().encode()


# -------------------------------------------------------------------------------------- DOCX


def make_docx(
    blocks: Sequence[Block], *, title: str | None = None, heading: str | None = None
) -> bytes:
    """A Word document: an optional ``Heading 1``, then paragraphs and tables in order."""
    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    if heading is not None:
        document.add_heading(heading, level=1)
    for block in blocks:
        if isinstance(block, str):
            document.add_paragraph(block)
        else:
            table = document.add_table(rows=len(block), cols=len(block[0]))
            for row, values in zip(table.rows, block, strict=True):
                for cell, value in zip(row.cells, values, strict=True):
                    cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# -------------------------------------------------------------------------------------- HWPX

_HWPX_NAMESPACES = (
    'xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section" '
    'xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph"'
)


def make_hwpx(sections: Sequence[Sequence[Block]], *, title: str | None = None) -> bytes:
    """An HWPX package: one ``Contents/section<n>.xml`` per section; a tab in text becomes ``<hp:tab/>``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        # The mimetype comes first and uncompressed, as in ODF and EPUB.
        archive.writestr("mimetype", "application/hwp+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr(
            "version.xml",
            '<?xml version="1.0" encoding="UTF-8"?><hv:HCFVersion '
            'xmlns:hv="http://www.hancom.co.kr/hwpml/2011/version" tagetApplication="WORDPROCESSOR" '
            'major="5" minor="1" micro="0" buildNumber="1" xmlVersion="1.4"/>',
        )
        archive.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0" encoding="UTF-8"?><ocf:container '
            'xmlns:ocf="urn:oasis:names:tc:opendocument:xmlns:container"><ocf:rootfiles>'
            '<ocf:rootfile full-path="Contents/content.hpf" media-type="application/hwpml-package+xml"/>'
            "</ocf:rootfiles></ocf:container>",
        )
        items = "".join(
            f'<opf:item id="section{i}" href="Contents/section{i}.xml" media-type="application/xml"/>'
            for i in range(len(sections))
        )
        spine = "".join(f'<opf:itemref idref="section{i}"/>' for i in range(len(sections)))
        archive.writestr(
            "Contents/content.hpf",
            '<?xml version="1.0" encoding="UTF-8"?><opf:package xmlns:opf="http://www.idpf.org/2007/opf/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><opf:metadata>'
            f"<opf:title>{escape(title or '')}</opf:title><opf:language>ko</opf:language>"
            f"</opf:metadata><opf:manifest>{items}</opf:manifest><opf:spine>{spine}</opf:spine>"
            "</opf:package>",
        )
        for i, blocks in enumerate(sections):
            body = "".join(_hwpx_block(block) for block in blocks)
            archive.writestr(
                f"Contents/section{i}.xml",
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><hs:sec {_HWPX_NAMESPACES}>'
                f"{body}</hs:sec>",
            )
    return out.getvalue()


def _hwpx_paragraph(runs: str) -> str:
    return f'<hp:p paraPrIDRef="0" styleIDRef="0"><hp:run charPrIDRef="0">{runs}</hp:run></hp:p>'


def _hwpx_block(block: Block) -> str:
    if isinstance(block, str):
        text = '<hp:tab width="4000" leader="0" type="1"/>'.join(
            escape(p) for p in block.split("\t")
        )
        return _hwpx_paragraph(f"<hp:t>{text}</hp:t>")
    rows = "".join(
        "<hp:tr>"
        + "".join(
            f"<hp:tc><hp:subList>{_hwpx_paragraph(f'<hp:t>{escape(cell)}</hp:t>')}</hp:subList></hp:tc>"
            for cell in row
        )
        + "</hp:tr>"
        for row in block
    )
    return _hwpx_paragraph(
        f'<hp:tbl rowCnt="{len(block)}" colCnt="{len(block[0])}">{rows}</hp:tbl>'
    )


# ------------------------------------------------------------------------------------ HWP 5

_HWPTAG_BEGIN = 0x10
_DOCUMENT_PROPERTIES = _HWPTAG_BEGIN
_PARA_HEADER = _HWPTAG_BEGIN + 50
_PARA_TEXT = _HWPTAG_BEGIN + 51
_PARA_CHAR_SHAPE = _HWPTAG_BEGIN + 52
HWP_COMPRESSED = 1 << 0
HWP_PASSWORD = 1 << 1
_HWP_SIGNATURE = b"HWP Document File".ljust(32, b"\0")
_VT_LPWSTR = 0x1F
_PIDSI_TITLE = 2
_FMTID_SUMMARY = bytes.fromhex("E0859FF2F94F6810AB9108002B27B3D9")


def make_hwp(
    sections: Sequence[Sequence[str]],
    *,
    flags: int = HWP_COMPRESSED,
    title: str | None = None,
    summary: bytes | None = None,
) -> bytes:
    """An HWP 5.0 document, one ``BodyText/Section<n>`` per section.

    Each section opens with a section-definition control, as Hangul writes it; a tab becomes
    the tab control and a newline a line break, so readers must skip controls correctly.
    ``title`` goes into the ``HwpSummaryInformation`` stream; ``summary`` replaces that stream.
    """

    def pack(data: bytes) -> bytes:
        if not flags & HWP_COMPRESSED:
            return data
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush()

    streams = {
        "FileHeader": hwp_file_header(flags),
        # DOCUMENT_PROPERTIES: section count, six start numbers, caret list / paragraph / position.
        "DocInfo": pack(
            hwp_record(
                _DOCUMENT_PROPERTIES, 0, struct.pack("<7H3I", len(sections), *[1] * 6, 0, 0, 0)
            )
        ),
    }
    for number, paragraphs in enumerate(sections):
        records = b""
        for index, text in enumerate(paragraphs):
            units = _hwp_units(text, section_start=index == 0)
            control_mask = sum(1 << u for u in set(units) if u < 32)
            records += hwp_record(
                _PARA_HEADER,
                0,
                struct.pack("<IIHBBHHHI", len(units), control_mask, 0, 0, 0, 1, 0, 1, 0),
            )
            records += hwp_record(_PARA_TEXT, 1, struct.pack(f"<{len(units)}H", *units))
            records += hwp_record(_PARA_CHAR_SHAPE, 1, struct.pack("<II", 0, 0))
        streams[f"BodyText/Section{number}"] = pack(records)
    if title is not None:
        streams["\x05HwpSummaryInformation"] = hwp_summary(title)
    if summary is not None:
        streams["\x05HwpSummaryInformation"] = summary
    return compound_file(streams)


def hwp_summary(title: str) -> bytes:
    """An OLE property set stream (MS-OLEPS) holding one property: the title, as UTF-16 text."""
    text = struct.pack("<HHI", _VT_LPWSTR, 0, len(title) + 1) + (title + "\0").encode("utf-16-le")
    text = text.ljust(-(-len(text) // 4) * 4, b"\0")
    start = 16  # size, property count, one (id, offset) pair
    properties = struct.pack("<IIII", start + len(text), 1, _PIDSI_TITLE, start) + text
    header = struct.pack("<HHI", 0xFFFE, 0, 0) + bytes(16) + struct.pack("<I", 1)
    return header + _FMTID_SUMMARY + struct.pack("<I", len(header) + 20) + properties


def hwp_file_header(flags: int) -> bytes:
    """The 256-byte ``FileHeader`` stream: signature, version 5.0.3.0, property flags."""
    return (_HWP_SIGNATURE + struct.pack("<II", 0x05000300, flags)).ljust(256, b"\0")


def hwp_record(tag: int, level: int, payload: bytes) -> bytes:
    if len(payload) < 0xFFF:
        return struct.pack("<I", tag | level << 10 | len(payload) << 20) + payload
    return struct.pack("<II", tag | level << 10 | 0xFFF << 20, len(payload)) + payload


def _wide_control(code: int, control_id: bytes) -> list[int]:
    data = control_id[::-1].ljust(12, b"\0")  # the id is a little-endian 32-bit "secd", "tbl "...
    return [code, *struct.unpack("<6H", data), code]


def _hwp_units(text: str, *, section_start: bool) -> list[int]:
    units = _wide_control(2, b"secd") + _wide_control(2, b"cold") if section_start else []
    for character in text:
        if character == "\t":
            units += _wide_control(9, b"\0\0\0\0")
        elif character == "\n":
            units.append(10)
        else:
            units += struct.unpack(
                f"<{len(character.encode('utf-16-le')) // 2}H", character.encode("utf-16-le")
            )
    units.append(13)  # paragraph end
    return units


# ------------------------------------------------------- OLE compound file (CFB version 3)

_SECTOR = 512
_MINI_SECTOR = 64
_MINI_CUTOFF = 4096
_FREE, _END_OF_CHAIN, _FAT_SECTOR, _NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
_STORAGE, _STREAM, _ROOT = 1, 2, 5


class _Entry:
    def __init__(self, name: str, kind: int, data: bytes = b"") -> None:
        self.name, self.kind, self.data = name, kind, data
        self.children: dict[str, _Entry] = {}
        self.left = self.right = self.child = _NO_STREAM
        self.start, self.size = _END_OF_CHAIN, 0


def compound_file(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file (MS-CFB, 512-byte sectors) holding ``streams`` by ``/``-separated path.

    olefile can read these files but not create them, so the container is written here:
    header, FAT, directory, mini FAT, mini stream, then the large streams.
    """
    root = _Entry("Root Entry", _ROOT)
    for path, data in streams.items():
        *folders, name = path.split("/")
        parent = root
        for folder in folders:
            parent = parent.children.setdefault(folder, _Entry(folder, _STORAGE))
        parent.children[name] = _Entry(name, _STREAM, data)
    entries = [root]
    _number(root, entries)

    mini_stream, mini_fat = bytearray(), []
    large = []
    for entry in entries:
        if entry.kind != _STREAM or not entry.data:
            continue
        entry.size = len(entry.data)
        if entry.size < _MINI_CUTOFF:
            count = math.ceil(entry.size / _MINI_SECTOR)
            entry.start = len(mini_fat)
            mini_fat += [*range(entry.start + 1, entry.start + count), _END_OF_CHAIN]
            mini_stream += entry.data.ljust(count * _MINI_SECTOR, b"\0")
        else:
            large.append(entry)

    root.start, root.size = _END_OF_CHAIN, len(mini_stream)
    # Regions after the FAT, in order; their first sectors are known before their content.
    counts = [
        math.ceil(len(entries) * 128 / _SECTOR),
        math.ceil(len(mini_fat) * 4 / _SECTOR),
        math.ceil(len(mini_stream) / _SECTOR),
        *(math.ceil(e.size / _SECTOR) for e in large),
    ]
    fat_count = 1
    while fat_count * (_SECTOR // 4) < fat_count + sum(counts):
        fat_count += 1
    fat = [_FAT_SECTOR] * fat_count
    starts = []
    for count in counts:
        starts.append(len(fat) if count else _END_OF_CHAIN)
        if count:
            fat += [*range(len(fat) + 1, len(fat) + count), _END_OF_CHAIN]
    fat += [_FREE] * (fat_count * (_SECTOR // 4) - len(fat))
    dir_start, mini_fat_start, mini_stream_start, *large_starts = starts
    if mini_stream:
        root.start = mini_stream_start
    for entry, start in zip(large, large_starts, strict=True):
        entry.start = start
    directory = b"".join(_directory_entry(e) for e in entries)
    regions = [
        directory + _EMPTY_ENTRY * (counts[0] * _SECTOR // 128 - len(entries)),
        struct.pack(f"<{len(mini_fat)}I", *mini_fat),
        bytes(mini_stream),
        *(e.data for e in large),
    ]

    difat = list(range(fat_count)) + [_FREE] * (109 - fat_count)
    header = struct.pack(
        "<8s16s5H6s9I109I",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\0" * 16,
        0x003E,  # minor version
        3,  # major version: 512-byte sectors
        0xFFFE,  # little-endian
        9,  # sector size 2**9
        6,  # mini sector size 2**6
        b"\0" * 6,
        0,  # directory sectors: always 0 in version 3
        fat_count,
        dir_start,
        0,  # transaction signature
        _MINI_CUTOFF,
        mini_fat_start,
        counts[1],
        _END_OF_CHAIN,  # no DIFAT sectors: up to 109 FAT sectors fit in the header
        0,
        *difat,
    )
    body = struct.pack(f"<{len(fat)}I", *fat) + b"".join(
        r.ljust(c * _SECTOR, b"\0") for r, c in zip(regions, counts, strict=True)
    )
    return header + body


def _number(storage: _Entry, entries: list[_Entry]) -> None:
    """Give each child a directory index and link siblings as a balanced binary search tree."""
    # CFB orders siblings by name length first, then by upper-cased name.
    children = sorted(storage.children.values(), key=lambda e: (len(e.name), e.name.upper()))
    for child in children:
        entries.append(child)
    storage.child = _tree(children, entries)
    for child in children:
        if child.kind == _STORAGE:
            _number(child, entries)


def _tree(siblings: list[_Entry], entries: list[_Entry]) -> int:
    if not siblings:
        return _NO_STREAM
    middle = len(siblings) // 2
    node = siblings[middle]
    node.left = _tree(siblings[:middle], entries)
    node.right = _tree(siblings[middle + 1 :], entries)
    return entries.index(node)


def _directory_entry(entry: _Entry) -> bytes:
    name = (entry.name + "\0").encode("utf-16-le")
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        name,
        len(name),
        entry.kind,
        1,  # black: readers do not check the red-black colouring
        entry.left,
        entry.right,
        entry.child,
        b"\0" * 16,
        0,
        0,
        0,
        entry.start,
        entry.size,
    )


_EMPTY_ENTRY = struct.pack(
    "<64sHBBIII16sIQQIQ",
    b"",
    0,
    0,
    0,
    _NO_STREAM,
    _NO_STREAM,
    _NO_STREAM,
    b"\0" * 16,
    0,
    0,
    0,
    0,
    0,
)
