"""Plain-text formats: ``.txt``, ``.md``, ``.csv`` and ``.jsonl``.

``.jsonl`` is all or nothing: one line per document (``{"id", "text", "title"?, "metadata"?}``),
and a broken line rejects the whole file with its line number, so a half-read file is never
mistaken for the complete one. Every line is checked before the file's documents are returned
(the indexer then stores them in one transaction): ids are compared as they will be stored,
after the text boundary of ``app.text``, and ``NaN``/``Infinity``, which JSON does not have and
PostgreSQL's jsonb refuses, reject the line. A line longer than any line holding a document of
``ReadLimits.max_document_chars`` characters can be is refused before it is decoded, a longer
text after.

``.csv`` takes the first row as the header. With a text column (``text``, ``content``,
``body``, ``본문``, ``내용``) each row is a document: the text column is its text, ``title``/``제목``
its title, ``id`` its id and the other columns its metadata. Without one, the whole table is a
single document, one ``column: value`` line per row, so every chunk says what its values mean.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from app.core.errors import InvalidInput
from app.retriever.loaders.common import (
    LoadedDocument,
    clean_text,
    current_limits,
    decode_text,
    document_too_long,
    stem,
)
from app.text import normalize_line

MAX_ID_CHARS = 200
# Characters of a JSON line per character of its text, at most: "\uXXXX" escapes (json.dumps'
# default for Hangul) take six.
_JSON_CHARS_PER_CHAR = 6

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_SETEXT_HEADING = re.compile(r"^ {0,3}(\S.*?)[ \t]*\n {0,3}(?:=+|-+)[ \t]*$", re.MULTILINE)

_TEXT_COLUMNS = ("text", "content", "body", "본문", "내용")
_TITLE_COLUMNS = ("title", "제목")
_ID_COLUMNS = ("id",)
_DELIMITERS = (",", "\t", ";")


def load_txt(filename: str, data: bytes) -> list[LoadedDocument]:
    """A plain text file: one document titled by the file name."""
    return [LoadedDocument(clean_text(decode_text(filename, data)), stem(filename), {})]


def load_markdown(filename: str, data: bytes) -> list[LoadedDocument]:
    """A Markdown file, kept as written; the first heading is the title."""
    text = clean_text(decode_text(filename, data))
    headings = [m for m in (_ATX_HEADING.search(text), _SETEXT_HEADING.search(text)) if m]
    title = min(headings, key=lambda m: m.start()).group(1).strip() if headings else ""
    return [LoadedDocument(text, title or stem(filename), {})]


def load_jsonl(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document per non-blank line; see the module docstring for the fields."""
    text = decode_text(filename, data)
    documents: list[LoadedDocument] = []
    first_line_of: dict[str, int] = {}
    # Not splitlines(): JSON strings may legally hold U+2028 and other separators it splits on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        document = _jsonl_document(filename, number, line)
        if document.id is not None:
            if document.id in first_line_of:
                raise InvalidInput(
                    f"{filename} line {number}: id {document.id!r} was already used on line "
                    f"{first_line_of[document.id]}."
                )
            first_line_of[document.id] = number
        documents.append(document)
    return documents


def _jsonl_document(filename: str, number: int, line: str) -> LoadedDocument:
    where = f"{filename} line {number}"
    limit = current_limits().max_document_chars
    if len(line) > _JSON_CHARS_PER_CHAR * limit:
        raise document_too_long(filename, where, len(line))
    try:
        record = json.loads(line, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
    # Python's decoder recurses once per level: a thousand nested brackets exhaust it.
    except RecursionError:
        raise InvalidInput(f"{where}: the JSON nests too deep to be read.") from None
    except ValueError as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc}).") from None
    if not isinstance(record, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(record).__name__}.")
    text = clean_text(record["text"]) if isinstance(record.get("text"), str) else ""
    if not text:
        raise InvalidInput(f'{where}: "text" must be a non-empty string.')
    if len(text) > limit:
        raise document_too_long(filename, where, len(text))
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f'{where}: "metadata" must be a JSON object.')
    document_id = _document_id(where, record.get("id"))
    title = record.get("title") or metadata.get("title")
    title = normalize_line(title) if isinstance(title, str) else ""
    return LoadedDocument(
        text,
        title or document_id or f"{stem(filename)}:{number}",
        metadata,
        id=document_id,
    )


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _document_id(where: str, value: Any) -> str | None:
    if value is None:
        return None
    # bool is an int in Python, but `"id": true` is a mistake, not the id "True".
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f'{where}: "id" must be a string or an integer.')
    document_id = normalize_line(str(value))
    if not document_id or len(document_id) > MAX_ID_CHARS:
        raise InvalidInput(f'{where}: "id" must have 1 to {MAX_ID_CHARS} characters.')
    return document_id


def load_csv(filename: str, data: bytes) -> list[LoadedDocument]:
    """A table with a header row; see the module docstring for rows versus whole file."""
    text = decode_text(filename, data)
    header_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InvalidInput(f"{filename} line {reader.line_num}: {exc}.") from None
    if not rows:
        return []
    header = _column_names(rows[0][1])
    records: list[tuple[int, dict[str, str]]] = []
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise InvalidInput(
                f"{filename} line {line}: {len(row)} fields but the header has {len(header)}; "
                "quote values that contain the delimiter."
            )
        # A short row leaves its last columns out: spreadsheets drop trailing empty cells.
        values = zip(header, row, strict=False)
        records.append((line, {name: value.strip() for name, value in values}))
    text_column = _find_column(header, _TEXT_COLUMNS)
    if text_column is None:
        return [LoadedDocument(_table_text(records), stem(filename), {"rows": len(records)})]
    return _row_documents(filename, header, records, text_column)


def _column_names(cells: list[str]) -> list[str]:
    names: list[str] = []
    for i, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column{i}"
        while name in names:
            name = f"{name}_{i}"
        names.append(name)
    return names


def _find_column(header: list[str], candidates: tuple[str, ...]) -> str | None:
    by_lower = {name.lower(): name for name in header}
    return next((by_lower[c] for c in candidates if c in by_lower), None)


def _table_text(records: list[tuple[int, dict[str, str]]]) -> str:
    lines = (
        " | ".join(f"{name}: {value}" for name, value in record.items() if value)
        for _, record in records
    )
    return "\n".join(line for line in lines if line)


def _row_documents(
    filename: str, header: list[str], records: list[tuple[int, dict[str, str]]], text_column: str
) -> list[LoadedDocument]:
    title_column = _find_column(header, _TITLE_COLUMNS)
    id_column = _find_column(header, _ID_COLUMNS)
    documents = []
    seen_ids: set[str] = set()
    for row_number, (line, record) in enumerate(records, start=1):
        text = clean_text(record.get(text_column, ""))
        if not text:
            continue
        document_id = None
        if id_column is not None and record.get(id_column):
            document_id = _document_id(f"{filename} line {line}", record[id_column])
            if document_id in seen_ids:
                raise InvalidInput(f"{filename} line {line}: id {document_id!r} is repeated.")
            seen_ids.add(document_id)
        title = (
            record.get(title_column or "", "") or document_id or f"{stem(filename)}:{row_number}"
        )
        skip = {text_column, title_column, id_column}
        metadata: dict[str, Any] = {k: v for k, v in record.items() if k not in skip and v}
        metadata["row"] = row_number
        documents.append(LoadedDocument(text, title, metadata, id=document_id))
    return documents
