"""HWP files the way Hangul writes them where plain builders fall short, and HWPML.

``hangul_summary`` writes an ``HwpSummaryInformation`` property set of several properties (title,
subject, author, a date string, counts), each value NUL-terminated and padded to four bytes, so
that a reader which runs past the title's declared length reads the other fields into it.
``make_distribution_hwp`` writes a distribution document (배포용 문서): a notice in ``BodyText``,
the text in ``ViewText`` sections encrypted as Hangul does (AES-128-ECB, the key hidden in a
masked ``DISTRIBUTE_DOC_DATA`` record). ``make_hwpml`` writes Hangul's XML format.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib
from collections.abc import Iterator, Sequence
from xml.sax.saxutils import escape

import olefile
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.utils.documents import (
    HWP_COMPRESSED,
    Block,
    compound_file,
    hwp_file_header,
    hwp_record,
    make_hwp,
)

HWP_DISTRIBUTION = 1 << 2
HWP_DRM = 1 << 4
HWP_CERTIFICATE_ENCRYPTION = 1 << 8
HWP_CERTIFICATE_DRM = 1 << 10
DISTRIBUTION_NOTICE = (
    "이 문서는 상위 버전의 배포용 문서입니다. 문서를 읽으려면 최신 버전의 한글 또는 "
    "한글 전용 뷰어가 필요합니다."
)

VT_I2, VT_I4, VT_LPSTR, VT_LPWSTR, VT_FILETIME = 0x02, 0x03, 0x1E, 0x1F, 0x40
PID_CODEPAGE, PIDSI_TITLE, PIDSI_SUBJECT, PIDSI_AUTHOR, PIDSI_KEYWORDS = 1, 2, 3, 4, 5
PIDSI_LASTAUTHOR, PIDSI_CREATE_DTM, PIDSI_PAGECOUNT, PID_HWP_DATE = 8, 12, 14, 20
FMTID_HWP_SUMMARY = bytes.fromhex("60B6A29F6110D411B4C6006097C09D8C")
_TAG_DISTRIBUTE_DOC_DATA = 0x10 + 12

Property = tuple[int, int, object]  # (property id, type, value)


# ------------------------------------------------------------------------ summary information


def hangul_summary(
    title: str, *, author: str = "홍길동", date: str = "2024년 3월 12일 화요일 오후 2:05:31"
) -> bytes:
    """The summary Hangul writes: the title, then subject, author, date and more, as UTF-16."""
    return property_set(
        [
            (PIDSI_TITLE, VT_LPWSTR, title),
            (PIDSI_SUBJECT, VT_LPWSTR, ""),
            (PIDSI_AUTHOR, VT_LPWSTR, author),
            (PID_HWP_DATE, VT_LPWSTR, date),
            (PIDSI_KEYWORDS, VT_LPWSTR, ""),
            (PIDSI_LASTAUTHOR, VT_LPWSTR, author),
            (PIDSI_CREATE_DTM, VT_FILETIME, 133_548_000_000_000_000),
            (PIDSI_PAGECOUNT, VT_I4, 3),
        ]
    )


def property_set(properties: Sequence[Property], *, fmtid: bytes = FMTID_HWP_SUMMARY) -> bytes:
    """An OLE property set stream (MS-OLEPS) of one set holding ``properties`` in order.

    A ``VT_LPWSTR`` value is a string (its length counted in code units, NUL included) or
    ``(string, declared length)``; a ``VT_LPSTR`` value is ``(bytes, declared size)``.
    """
    values = [_typed_value(kind, value) for _, kind, value in properties]
    start = 8 + 8 * len(properties)  # size, count, then one (id, offset) pair per property
    pairs, offset = b"", start
    for (property_id, _, _), value in zip(properties, values, strict=True):
        pairs += struct.pack("<II", property_id, offset)
        offset += len(value)
    body = pairs + b"".join(values)
    section = struct.pack("<II", 8 + len(body), len(properties)) + body
    header = struct.pack("<HHI", 0xFFFE, 0, 0x00020105) + bytes(16) + struct.pack("<I", 1)
    return header + fmtid + struct.pack("<I", len(header) + 20) + section


def _typed_value(kind: int, value: object) -> bytes:
    if kind == VT_LPWSTR:
        text, length = value if isinstance(value, tuple) else (value, len(str(value)) + 1)
        data = struct.pack("<I", length) + (str(text) + "\0").encode("utf-16-le")
    elif kind == VT_LPSTR and isinstance(value, tuple):
        raw, size = value
        data = struct.pack("<I", size) + bytes(raw) + b"\0"
    elif kind in _INTEGERS and isinstance(value, int):
        data = struct.pack(_INTEGERS[kind], value)
    else:
        raise ValueError(f"property type {kind:#x} with value {value!r} is not written here")
    data = struct.pack("<H2x", kind) + data
    return data.ljust(-(-len(data) // 4) * 4, b"\0")


_INTEGERS = {VT_I2: "<h2x", VT_I4: "<i", VT_FILETIME: "<Q"}


# -------------------------------------------------------------------- distribution documents


def make_distribution_hwp(
    sections: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    compressed: bool = True,
    password: str = "배포용 암호",
    seed: int = 0x2A5F_10C3,
) -> bytes:
    """A distribution document: ``BodyText`` holds only the notice Hangul shows to old readers,
    ``ViewText/Section<n>`` the text of ``sections``, encrypted.

    The key is the first 16 bytes of the UTF-16 hex SHA-1 of ``password``, stored in the
    section's masked ``DISTRIBUTE_DOC_DATA`` record; ``seed`` is that record's first four bytes.
    """
    flags = HWP_DISTRIBUTION | (HWP_COMPRESSED if compressed else 0)
    plain = _streams(make_hwp(sections, flags=0))
    notice = _streams(make_hwp([[DISTRIBUTION_NOTICE]], flags=flags))
    streams = {
        "FileHeader": hwp_file_header(flags),
        "DocInfo": notice["DocInfo"],
        "BodyText/Section0": notice["BodyText/Section0"],
    }
    hash_code = hashlib.sha1(password.encode("utf-16-le")).hexdigest().upper().encode("utf-16-le")
    for number in range(len(sections)):
        records = plain[f"BodyText/Section{number}"]
        streams[f"ViewText/Section{number}"] = distribution_section(
            records, hash_code=hash_code, seed=seed + number, compressed=compressed
        )
    if title is not None:
        streams["\x05HwpSummaryInformation"] = hangul_summary(title)
    return compound_file(streams)


def distribution_section(records: bytes, *, hash_code: bytes, seed: int, compressed: bool) -> bytes:
    """A ``ViewText`` section: the key record, then ``records`` (deflated if ``compressed``)
    padded with noise to whole AES blocks and encrypted with the key."""
    filler = random.Random(seed)
    key_data = bytearray(filler.randbytes(256))
    key_data[:4] = seed.to_bytes(4, "little")
    start = 4 + (seed & 0xF)
    key_data[start : start + len(hash_code)] = hash_code
    masked = bytes(key_data[:4]) + bytes(
        b ^ m for b, m in zip(key_data[4:], _mask(seed)[4:], strict=True)
    )
    if compressed:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        records = deflate.compress(records) + deflate.flush()
    records += filler.randbytes(-len(records) % 16)
    encryptor = Cipher(algorithms.AES(hash_code[:16]), modes.ECB()).encryptor()
    encrypted = encryptor.update(records) + encryptor.finalize()
    return hwp_record(_TAG_DISTRIBUTE_DOC_DATA, 0, masked) + encrypted


def _mask(seed: int) -> bytes:
    """256 bytes of runs of ``rand() & 0xFF``, each ``(rand() & 0xF) + 1`` long (MSVC rand)."""
    numbers = _msvc_rand(seed)
    mask = bytearray()
    while len(mask) < 256:
        value = next(numbers) & 0xFF
        mask += bytes([value]) * ((next(numbers) & 0xF) + 1)
    return bytes(mask[:256])


def _msvc_rand(seed: int) -> Iterator[int]:
    while True:
        seed = (seed * 214013 + 2531011) % 2**32
        yield (seed >> 16) & 0x7FFF


def _streams(data: bytes) -> dict[str, bytes]:
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        return {"/".join(path): ole.openstream(path).read() for path in ole.listdir()}


# -------------------------------------------------------------------------------------- HWPML

HWPML_DOCTYPE = '<!DOCTYPE HWPML [\n\t<!ENTITY nbsp\t"&#160;">\n]>\n'


def make_hwpml(
    sections: Sequence[Sequence[Block]],
    *,
    title: str | None = None,
    doctype: str = HWPML_DOCTYPE,
    encoding: str = "utf-8",
) -> bytes:
    """An HWPML document as Hangul saves it: a ``nbsp`` entity in the doctype, a section
    definition with settings at the start of the first paragraph, and binary data in the tail.

    In text, a tab becomes ``<TAB/>``, a newline ``<LINEBREAK/>`` and a no-break space ``&nbsp;``.
    """
    summary = f"<DOCSUMMARY><TITLE>{escape(title)}</TITLE></DOCSUMMARY>" if title else ""
    body = "".join(
        f'<SECTION Id="{number}">'
        + "".join(
            _hwpml_block(block, first=number == 0 and i == 0) for i, block in enumerate(blocks)
        )
        + "</SECTION>"
        for number, blocks in enumerate(sections)
    )
    document = (
        f'<?xml version="1.0" encoding="{encoding}" standalone="no" ?>\n{doctype}'
        f'<HWPML Style="embed" SubVersion="10.0.0.0" Version="2.91"><HEAD SecCnt="{len(sections)}">'
        f'{summary}<DOCSETTING><BEGINNUMBER Page="1"/></DOCSETTING></HEAD><BODY>{body}</BODY>'
        '<TAIL><BINDATASTORAGE><BINDATA Id="1" Encoding="Base64">iVBORw0KGgo=</BINDATA>'
        "</BINDATASTORAGE></TAIL></HWPML>"
    )
    return document.encode(encoding)


def _hwpml_text(text: str) -> str:
    parts = {"\t": "<TAB/>", "\n": "<LINEBREAK/>", "\u00a0": "&nbsp;"}
    return "".join(parts.get(character, escape(character)) for character in text)


def _hwpml_paragraph(content: str, *, first: bool = False) -> str:
    settings = (
        '<SECDEF TabStop="8000"><PARAMETERSET SetId="1"><ITEM Type="Set">'
        "<CHAR>구역 설정</CHAR></ITEM></PARAMETERSET></SECDEF>"
        if first
        else ""
    )
    return f'<P ParaShape="0" Style="0"><TEXT CharShape="0">{settings}{content}</TEXT></P>'


def _hwpml_block(block: Block, *, first: bool) -> str:
    if isinstance(block, str):
        return _hwpml_paragraph(f"<CHAR>{_hwpml_text(block)}</CHAR>", first=first)
    rows = "".join(
        "<ROW>"
        + "".join(
            f"<CELL><PARALIST>{_hwpml_paragraph(f'<CHAR>{_hwpml_text(cell)}</CHAR>')}</PARALIST></CELL>"
            for cell in row
        )
        + "</ROW>"
        for row in block
    )
    table = (
        f'<TABLE ColCount="{len(block[0])}" RowCount="{len(block)}"><SHAPEOBJECT>'
        f"<SHAPECOMMENT>표입니다.</SHAPECOMMENT></SHAPEOBJECT>{rows}</TABLE>"
    )
    return _hwpml_paragraph(table, first=first)
