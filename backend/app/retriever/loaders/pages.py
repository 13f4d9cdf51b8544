"""Formats whose text comes in pages (PDF pages, slides, sheets): one text with where each begins."""

from __future__ import annotations

from collections.abc import Sequence


def join_pages(pages: Sequence[str]) -> tuple[str, tuple[int, ...]]:
    """The pages' texts joined by blank lines, and the offset where each page begins.

    A page without text begins where the next page's text does, so no offset maps to it and
    page numbers stay the positions in ``pages``.
    """
    parts: list[str] = []
    starts: list[int] = []
    offset = 0
    for text in pages:
        starts.append(offset)
        if text:
            parts.append(text)
            offset += len(text) + 2
    return "\n\n".join(parts), tuple(starts)
