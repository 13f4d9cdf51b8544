"""Small files that cost a parser far more than their size: deep HTML, zips that inflate a lot or
whose headers lie, long JSONL lines.

Zips are written by hand, so that a member of hundreds of megabytes deflates in milliseconds
(one compressed block, repeated) and its headers can claim whatever a test needs.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Every member's date: 1980-01-01, the first a zip can hold.
_DOS_DATE = 0x21


def deep_html(depth: int) -> bytes:
    """A page of ``depth`` nested ``<div>``s, each holding a word."""
    return ("<html><body>" + "<div>글" * depth + "</div>" * depth + "</body></html>").encode()


def jsonl(*records: dict[str, Any]) -> bytes:
    """One JSON object a line, as ``json.dumps`` writes them by default (``\\uXXXX`` escapes)."""
    return "\n".join(json.dumps(record) for record in records).encode()


@dataclass(frozen=True)
class Member:
    """A zip member: ``chunk`` repeated ``times``. Its headers claim ``claimed_size`` bytes (the
    truth when None) and, when they lie, the checksum of that many first bytes, so that a reader
    which stops at the claim finds nothing wrong."""

    name: str
    chunk: bytes
    times: int = 1
    claimed_size: int | None = None

    @property
    def size(self) -> int:
        """How many bytes the member really holds."""
        return len(self.chunk) * self.times

    def claimed_crc(self) -> int:
        """The checksum its headers give."""
        claimed = self.size if self.claimed_size is None else self.claimed_size
        crc, left = 0, claimed
        while left > 0:
            piece = self.chunk[:left]
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
        return crc

    def deflated(self) -> bytes:
        """The member as one raw deflate stream: ``chunk``'s blocks once per repetition (each
        flushed whole, so they stand alone), then an empty final block."""
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        blocks = compressor.compress(self.chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        return blocks * self.times + b"\x03\x00"


def build_zip(members: Sequence[Member]) -> bytes:
    """A zip of ``members``, each deflated, with the sizes and checksums they claim."""
    out = io.BytesIO()
    central = io.BytesIO()
    for member in members:
        name = member.name.encode("utf-8")
        body = member.deflated()
        claimed = member.size if member.claimed_size is None else member.claimed_size
        crc = member.claimed_crc()
        offset = out.tell()
        out.write(
            struct.pack(
                zipfile.structFileHeader,
                zipfile.stringFileHeader,
                20,
                0,
                0x800,  # the name is UTF-8
                zipfile.ZIP_DEFLATED,
                0,
                _DOS_DATE,
                crc,
                len(body),
                claimed,
                len(name),
                0,
            )
        )
        out.write(name)
        out.write(body)
        central.write(
            struct.pack(
                zipfile.structCentralDir,
                zipfile.stringCentralDir,
                20,
                3,
                20,
                0,
                0x800,
                zipfile.ZIP_DEFLATED,
                0,
                _DOS_DATE,
                crc,
                len(body),
                claimed,
                len(name),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
        )
        central.write(name)
    directory = central.getvalue()
    start = out.tell()
    out.write(directory)
    out.write(
        struct.pack(
            zipfile.structEndArchive,
            zipfile.stringEndArchive,
            0,
            0,
            len(members),
            len(members),
            len(directory),
            start,
            0,
        )
    )
    return out.getvalue()


def with_member(package: bytes, member: Member) -> bytes:
    """``package`` (a zip) with ``member`` added, or in place of the member of its name."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        kept = [
            Member(info.filename, archive.read(info))
            for info in archive.infolist()
            if info.filename != member.name
        ]
    return build_zip([*kept, member])


def hwpx_paragraphs(count: int) -> bytes:
    """Section XML of ``count`` paragraphs, as one chunk for ``Member`` (no closing tag needed:
    what the tests check is refused before the XML is parsed)."""
    return (
        "<hp:p><hp:run><hp:t>한글 문서의 문단입니다. 같은 말이 되풀이됩니다.</hp:t></hp:run></hp:p>"
        * count
    ).encode()
