"""What a review file must pass before ``load_reviews`` reads it: bounded, text, and whole.

``load_reviews`` reads a file line by line into memory and skips what it cannot parse, which is
right for a few broken lines but not for a file that is not reviews at all: a 50 MB line would be
held whole, a gzip bomb expanded without end, a picture read as replacement characters. Each file
is first streamed once, a block at a time, and refused with a reason of its own when it is empty,
holds NUL bytes (no review format does; pictures and archives do), is a broken gzip, expands past
the size limit or has a line longer than ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.core.errors import InvalidInput, TooLarge

# Far above any review line (reviews over ``max_chars``, 300 by default, are dropped anyway) and
# far below what would hurt when held as one string.
MAX_LINE_BYTES = 1024 * 1024
_BLOCK = 1024 * 1024
_MB = 1024 * 1024


def too_large(name: str, limit_bytes: int) -> TooLarge:
    """A data set over ``FINETUNE_MAX_DATASET_MB`` (counted uncompressed)."""
    limit_mb = limit_bytes // _MB
    return TooLarge(
        f"{name} is over the limit of {limit_mb} MB for a data set (FINETUNE_MAX_DATASET_MB; "
        "compressed files count as they expand).",
        code="dataset_too_large",
        params={"limit_mb": limit_mb},
    )


def unreadable(name: str, reason: str) -> InvalidInput:
    """A data set that holds no reviews ``rag finetune train`` could read, with the reason."""
    return InvalidInput(
        f"No reviews can be read from {name}: {reason}",
        code="dataset_unreadable",
        params={"name": name},
    )


def review_files(path: Path) -> list[Path]:
    """The files ``load_reviews`` reads for ``path``: the file itself, or a folder's ``.json``
    files (the NSMC crawl's layout), in name order."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and ".json" in p.name.lower())


def check_review_data(path: Path, *, name: str, max_bytes: int) -> int:
    """Refuse ``path`` (a file or an NSMC folder) unless it is non-empty text within the limits;
    answers its size on disk. ``name`` is how errors call it."""
    files = review_files(path)
    if not files:
        raise unreadable(name, "the folder holds no .json files")
    on_disk = sum(file.stat().st_size for file in files)
    if on_disk > max_bytes:
        raise too_large(name, max_bytes)
    expanded = 0
    has_text = False
    for file in files:
        # A JSON file of the crawl may be one long line; its size is bounded all the same.
        lines_bounded = not file.name.lower().removesuffix(".gz").endswith(".json")
        size, text = _scan(file, name, max_bytes - expanded, max_bytes, lines_bounded)
        expanded += size
        has_text = has_text or text
    if not has_text:
        raise InvalidInput(f"{name} is empty.", code="dataset_empty", params={"name": name})
    return on_disk


def _scan(file: Path, name: str, budget: int, limit: int, lines_bounded: bool) -> tuple[int, bool]:
    """Bytes ``file`` holds (uncompressed, at most ``budget``) and whether any is not
    whitespace."""
    size = 0
    line = 0
    line_bytes = 0
    has_text = False
    for block in _blocks(file, name):
        size += len(block)
        if size > budget:
            raise too_large(name, limit)
        nul = block.find(b"\0")
        if nul >= 0:
            raise InvalidInput(
                f"{name} holds binary data (a NUL byte at byte {size - len(block) + nul}); a data "
                "set is a text file (tsv, txt, jsonl, csv, json) or a .gz of one.",
                code="dataset_binary",
                params={"name": name},
            )
        has_text = has_text or bool(block.strip())
        if lines_bounded:
            line, line_bytes = _check_lines(block, name, line, line_bytes)
    return size, has_text


def _check_lines(block: bytes, name: str, line: int, line_bytes: int) -> tuple[int, int]:
    """The line count and the open line's length after ``block``; refuses a line too long."""
    start = 0
    while (end := block.find(b"\n", start)) >= 0:
        _refuse_long(line_bytes + end - start, name, line)
        line, line_bytes, start = line + 1, 0, end + 1
    line_bytes += len(block) - start
    _refuse_long(line_bytes, name, line)
    return line, line_bytes


def _refuse_long(length: int, name: str, line: int) -> None:
    if length > MAX_LINE_BYTES:
        raise InvalidInput(
            f"Line {line + 1} of {name} is over {MAX_LINE_BYTES // 1024} KB; review files hold "
            "one review a line.",
            code="dataset_line_too_long",
            params={"name": name, "line": line + 1, "limit_kb": MAX_LINE_BYTES // 1024},
        )


def _blocks(file: Path, name: str) -> Iterator[bytes]:
    """The file's bytes a block at a time, gunzipped for a ``.gz`` name as ``load_reviews`` does."""
    compressed = file.name.lower().endswith(".gz")
    try:
        with _open(file, compressed) as stream:
            while block := stream.read(_BLOCK):
                yield block
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InvalidInput(
            f"{name} is not a readable gzip file ({exc or type(exc).__name__}).",
            code="dataset_bad_gzip",
            params={"name": name},
        ) from exc
    except OSError as exc:
        raise unreadable(name, f"the server cannot read it ({exc.strerror or exc})") from exc


def _open(file: Path, compressed: bool) -> BinaryIO:
    return gzip.open(file, "rb") if compressed else file.open("rb")  # type: ignore[return-value]
