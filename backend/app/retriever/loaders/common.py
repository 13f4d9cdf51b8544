"""What every loader shares: the loaded-document type, text decoding and clean-up, safe archives."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from app.core.errors import InvalidInput, RagError, TooLarge, Unsupported
from app.core.logger import get_logger
from app.text import normalize_text

log = get_logger(__name__)

# Archives and compressed streams are inflated in memory; a few kilobytes can claim gigabytes.
MAX_EXPANDED_BYTES = 256 * 1024 * 1024

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
    except RagError:
        raise
    # Parsers of binary formats raise anything from KeyError to struct.error on malformed input.
    except Exception as exc:
        log.debug("could not read %s as %s", filename, kind, exc_info=True)
        reason = str(exc) or type(exc).__name__
        raise InvalidInput(
            f"{filename} could not be read as {kind} (damaged file?): {reason}",
        ) from None


def open_zip(filename: str, data: bytes, kind: str, required: re.Pattern[str]) -> zipfile.ZipFile:
    """Open ``data`` as a zip with a member named like ``required``; ``Unsupported`` if it is something else."""
    if not data.startswith(b"PK\x03\x04"):
        raise Unsupported(f"{filename} is not a {kind} file.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{filename} is a damaged {kind} file: {exc}") from None
    if not any(required.fullmatch(name) for name in archive.namelist()):
        archive.close()
        raise Unsupported(f"{filename} is a zip archive but not a {kind} file.")
    # Reads stop at each member's declared size, so the declared total bounds the memory used.
    expanded = sum(info.file_size for info in archive.infolist())
    if expanded > MAX_EXPANDED_BYTES:
        archive.close()
        raise TooLarge(
            f"{filename} expands to {expanded / 1e6:.0f} MB; the limit is "
            f"{MAX_EXPANDED_BYTES / 1e6:.0f} MB.",
            code="file_too_large",
        )
    return archive
