"""The single text boundary: every string that is stored or searched with is normalised here.

Loaders, the indexer and the API request models call these functions, so that a chunk, a
title, an id, a file name, a collection or a metadata key is written in one form and a query
is compared in the same form:

- lone surrogates (from ``"\\ud800"`` JSON escapes or undecodable file names) become U+FFFD,
  surrogate pairs become the character they encode;
- ``\\r\\n`` and ``\\r`` become ``\\n``;
- control characters (C0, DEL, C1) are removed; running text keeps ``\\n`` and ``\\t``, a
  one-line value turns them into spaces;
- the result is Unicode NFC, so decomposed Hangul (as macOS writes file contents and names)
  equals the precomposed syllables a keyboard types, for BM25 as for equality.

PostgreSQL refuses NUL in text and jsonb, and a lone surrogate cannot be encoded as UTF-8:
what passes through here can always be stored. Request fields are not cleaned silently of
those two; ``request_text_problem`` says why such a value is refused.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n?")
# C0 controls but \t and \n, DEL, and the C1 controls (mostly text decoded with the wrong codec).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_WHITESPACE = re.compile(r"[\t\n\x0b\x0c]")


def normalize_text(text: str) -> str:
    """Running text (a document, a chunk, a query): NFC, ``\\n`` newlines, no control
    characters but ``\\n`` and ``\\t``, lone surrogates as U+FFFD. Nothing is trimmed."""
    if _SURROGATE.search(text):
        # Through UTF-16, a valid pair becomes its character and a lone half becomes U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _CONTROL.sub("", _LINE_BREAK.sub("\n", text))
    if unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def normalize_line(text: str) -> str:
    """A one-line value (title, id, file name, collection, metadata key): as ``normalize_text``,
    with tabs and line breaks as spaces, trimmed."""
    return normalize_text(_LINE_WHITESPACE.sub(" ", _LINE_BREAK.sub(" ", text))).strip()


def normalize_json(value: Any) -> Any:
    """A JSON value with every object key normalised as a line and every string as text."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, dict):
        return {
            normalize_line(key) if isinstance(key, str) else key: normalize_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [normalize_json(item) for item in value]
    return value


def request_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be taken from a request as it is, or ``None`` when it can.

    NUL and lone surrogates are refused rather than dropped: they never occur in text a person
    typed, and a cleaned id or collection name could silently name something else.
    """
    if "\x00" in text:
        return "must not contain NUL (\\u0000) characters"
    if _SURROGATE.search(text):
        return "must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"
    return None
