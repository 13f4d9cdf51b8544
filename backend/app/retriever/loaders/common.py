"""What every loader shares: the loaded-document type, text decoding and clean-up, safe archives,
and the limits a file is read under.

Zip archives are read without trusting their headers: each member is inflated as a stream, never
past the size its header declares, so a member whose header lies fails as soon as it outgrows its
claim, and the claims of all members together are capped. Libraries that open a whole
zip themselves (python-docx, python-pptx, openpyxl) get one rebuilt from members read that way.

The limits (``ReadLimits``) are those of the context the loaders run in (``using_limits``); the
defaults apply elsewhere.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import PurePath
from types import TracebackType
from typing import Any

from app.core.errors import InvalidInput, RagError, TooLarge, Unsupported
from app.core.logger import get_logger
from app.text import normalize_text

log = get_logger(__name__)

# Archives and compressed streams are inflated in memory; a few kilobytes can claim gigabytes.
MAX_EXPANDED_BYTES = 256 * 1024 * 1024
# bs4's tree work grows with the square of the depth: 100,000 nested elements take hours.
MAX_HTML_DEPTH = 512
# Kiwi's analysis of one document grows faster than its length (a 400,000-character paragraph
# takes most of a minute); about 500 pages of text.
MAX_DOCUMENT_CHARS = 1_000_000

# MB as the settings count them.
_MB = 1024 * 1024
# Compressed bytes taken per step, and most bytes inflated per step: a member's output grows in
# small steps, so one larger than its header says is caught within a step of its claim.
_ZIP_INPUT_STEP = 64 * 1024
_ZIP_OUTPUT_STEP = 1024 * 1024

_BINARY_MAGIC = (
    b"%PDF-",
    b"PK\x03\x04",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE compound file: .hwp, .doc, .xls
    # Not "MZ": Korean text starts with it ("MZ세대"); executables hold NUL bytes early anyway.
    b"\x7fELF",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"\x1f\x8b",
)
_TRAILING_SPACE = re.compile(r"[ \t\u3000]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What reading one file may cost, checked by the loaders as they read."""

    max_expanded_bytes: int = MAX_EXPANDED_BYTES
    """Most bytes the archive members and compressed streams of one file inflate to, together."""
    max_html_depth: int = MAX_HTML_DEPTH
    """Deepest nesting of HTML elements."""
    max_document_chars: int = MAX_DOCUMENT_CHARS
    """Longest document, in characters of text."""


_DEFAULT_LIMITS = ReadLimits()
_limits: ContextVar[ReadLimits] = ContextVar("read_limits", default=_DEFAULT_LIMITS)


def current_limits() -> ReadLimits:
    """The limits of the files read in this context."""
    return _limits.get()


@contextmanager
def using_limits(limits: ReadLimits) -> Iterator[None]:
    """Read files under ``limits`` inside the block."""
    token = _limits.set(limits)
    try:
        yield
    finally:
        _limits.reset(token)


def document_too_long(filename: str, where: str, length: int) -> TooLarge:
    """The refusal of a document (named by ``where``) of ``length`` characters, over the limit."""
    limit = current_limits().max_document_chars
    return TooLarge(
        f"{where} is {length:,} characters long; the limit is {limit:,} characters per "
        "document. Split it into smaller documents.",
        code="document_too_long",
        params={"filename": filename, "limit": limit},
    )


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """Text extracted from a file, ready to be chunked.

    ``id`` is set when the file names its documents (a ``.jsonl`` line's ``id``); otherwise the
    indexer derives one. ``page_starts[i]`` is the offset in ``text`` where page ``i + 1`` begins,
    for formats that have pages (PDF); empty otherwise.
    """

    text: str
    title: str
    metadata: dict[str, Any]
    id: str | None = None
    page_starts: tuple[int, ...] = ()


def stem(filename: str) -> str:
    """The file name without folder and extension: the title of last resort."""
    return PurePath(filename).stem or filename


def clean_text(text: str) -> str:
    """Text normalised at the text boundary (``app.text``), without byte-order marks, trailing
    spaces or more than one blank line in a row."""
    text = normalize_text(text).replace("\ufeff", "")
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def decode_text(filename: str, data: bytes) -> str:
    """Decode a text file: UTF-8 (with or without BOM), UTF-16 with BOM, else CP949 (a superset of EUC-KR)."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{filename} is not valid UTF-16 text: {exc.reason}.") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if data.startswith(_BINARY_MAGIC) or b"\x00" in data[:8192]:
        raise Unsupported(f"{filename} is a binary file, not text.")
    for encoding in ("utf-8", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Unsupported(
        f"{filename} is not UTF-8 or CP949/EUC-KR text; save it as UTF-8 and try again."
    )


@contextmanager
def reading(filename: str, kind: str) -> Iterator[None]:
    """Turn a parser's own exceptions into ``InvalidInput``: the file is corrupt, not the server."""
    try:
        yield
    # Running out of memory is the parsing process's limit, not a damaged file.
    except (RagError, MemoryError):
        raise
    # Parsers of binary formats raise anything from KeyError to struct.error on malformed input.
    except Exception as exc:
        log.debug("could not read %s as %s", filename, kind, exc_info=True)
        reason = str(exc) or type(exc).__name__
        raise InvalidInput(
            f"{filename} could not be read as {kind} (damaged file?): {reason}",
        ) from None


def open_zip(filename: str, data: bytes, kind: str, required: re.Pattern[str]) -> Archive:
    """Open ``data`` as a zip with a member named like ``required``; ``Unsupported`` if it is
    something else, ``TooLarge`` if its members claim more than the file may inflate to.

    A member is never inflated past its claim (``Archive.read``), so the claims' total, checked
    here, caps what all members of the file inflate to together.
    """
    if not data.startswith(b"PK\x03\x04"):
        raise Unsupported(f"{filename} is not a {kind} file.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{filename} is a damaged {kind} file: {exc}") from None
    if not any(required.fullmatch(name) for name in archive.namelist()):
        archive.close()
        raise Unsupported(f"{filename} is a zip archive but not a {kind} file.")
    limit = current_limits().max_expanded_bytes
    declared = sum(info.file_size for info in archive.infolist())
    if declared > limit:
        archive.close()
        raise TooLarge(
            f"{filename} expands to {declared / _MB:.0f} MB; the limit is {limit / _MB:.0f} MB.",
            code="file_too_large",
        )
    return Archive(filename, kind, data, archive)


def rebuilt_zip(filename: str, data: bytes, kind: str, required: re.Pattern[str]) -> bytes:
    """``data`` as a zip of its members read through ``Archive``, stored uncompressed with
    their true sizes: safe to hand to a library that opens the whole archive itself."""
    out = io.BytesIO()
    with (
        open_zip(filename, data, kind, required) as archive,
        zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as rebuilt,
    ):
        for name in archive.namelist():
            rebuilt.writestr(zipfile.ZipInfo(name), archive.read(name))
    return out.getvalue()


class Archive:
    """A zip archive whose members are inflated as streams, never past the size their header
    declares: a member that holds more is damaged, and is refused as soon as it shows it."""

    def __init__(self, filename: str, kind: str, data: bytes, archive: zipfile.ZipFile) -> None:
        self._filename = filename
        self._kind = kind
        self._data = data
        self._zip = archive

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the archive."""
        self._zip.close()

    def namelist(self) -> list[str]:
        """The members' names, each once, in the order of the archive."""
        return list(dict.fromkeys(self._zip.namelist()))

    def read(self, name: str) -> bytes:
        """The content of member ``name`` (the last of that name); ``KeyError`` if there is none."""
        info = self._zip.getinfo(name)
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{self._filename} is encrypted; save a copy without a password.")
        start = self._content_start(info)
        if info.compress_type == zipfile.ZIP_STORED:
            content = self._data[start : start + info.compress_size]
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            content = self._inflate(info, start)
        else:
            raise InvalidInput(
                f"{self._filename} is not a {self._kind} file as Office and Hangul write them: "
                f"{name} is compressed with method {info.compress_type}."
            )
        if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
            raise self._damaged(
                f"{name} holds {len(content):,} bytes that do not match its header "
                f"({info.file_size:,} bytes)"
            )
        return content

    def _content_start(self, info: zipfile.ZipInfo) -> int:
        """Where the member's data begins: after its local header, whose name and extra field
        lengths may differ from those of the central directory."""
        offset = info.header_offset
        header = self._data[offset : offset + zipfile.sizeFileHeader]
        if len(header) < zipfile.sizeFileHeader or not header.startswith(zipfile.stringFileHeader):
            raise self._damaged(f"the header of {info.filename} is missing")
        name_length, extra_length = struct.unpack_from("<HH", header, 26)
        return offset + zipfile.sizeFileHeader + name_length + extra_length

    def _inflate(self, info: zipfile.ZipInfo, start: int) -> bytes:
        # zipfile inflates a member whole before it stops at the declared size (1-2 GB for a
        # header that lies); here it grows in steps. The compressed size is not trusted either:
        # the deflate stream says where it ends.
        decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        compressed = memoryview(self._data)[start:]
        pieces: list[bytes] = []
        size = position = 0
        while not decoder.eof:
            if decoder.unconsumed_tail:
                step: bytes | memoryview = decoder.unconsumed_tail
            elif position < len(compressed):
                step = compressed[position : position + _ZIP_INPUT_STEP]
                position += len(step)
            else:
                raise self._damaged(f"{info.filename} is cut short")
            piece = decoder.decompress(step, min(_ZIP_OUTPUT_STEP, info.file_size - size + 1))
            size += len(piece)
            if size > info.file_size:
                raise self._damaged(
                    f"{info.filename} holds more than the {info.file_size:,} bytes its header says"
                )
            pieces.append(piece)
        return b"".join(pieces)

    def _damaged(self, reason: str) -> InvalidInput:
        return InvalidInput(f"{self._filename} is a damaged {self._kind} file: {reason}.")
