"""Cut a document's text into overlapping passages of whole sentences.

The rules, in order of precedence:

1. A chunk is a contiguous slice of the input (``text[start:end]``), never empty, never
   starting or ending in whitespace, and at most ``size`` characters long.
2. Sentences (Kiwi's splitter) are kept whole. A sentence longer than ``size`` is cut at the
   last line break, else space, else clause punctuation in the second half of the window,
   else at exactly ``size`` characters.
3. Sentences never cross a paragraph (blank line). When the next paragraph would not fit in a
   chunk that is already half full, the chunk ends at the paragraph break instead of mid-paragraph.
4. The next chunk repeats the previous chunk's last whole sentences whose length is closest to
   ``overlap`` (possibly none, when every sentence is much longer than ``overlap``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.errors import InvalidInput
from app.text.korean import Analysis, analyse

_CLAUSE_END = re.compile(r"[,;:、，；：)\]」』]")
_BLANK_LINE = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One passage and where it lies in the input: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence, or a piece of an overlong one; ``paragraph_end`` is where its paragraph ends."""

    start: int
    end: int
    opens_paragraph: bool
    paragraph_end: int = 0


def _cut_point(text: str, start: int, size: int) -> int:
    """Where to end the next piece of an overlong sentence that begins at ``start``."""
    limit = start + size
    floor = start + size // 2
    window = text[floor:limit]
    for boundary in ("\n", " "):
        at = window.rfind(boundary)
        if at > 0:
            return floor + at
    clause_ends = [m.end() for m in _CLAUSE_END.finditer(window)]
    if clause_ends:
        return floor + clause_ends[-1]
    return limit


def _pieces(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    pieces = []
    while end - start > size:
        cut = _cut_point(text, start, size)
        piece_end = cut
        while text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((start, piece_end))
        start = cut
        while text[start].isspace():
            start += 1
    pieces.append((start, end))
    return pieces


def _units(text: str, sentences: list[tuple[int, int]], size: int) -> list[_Unit]:
    units: list[_Unit] = []
    previous_end = 0
    for start, end in sentences:
        opens = not units or _BLANK_LINE.search(text, previous_end, start) is not None
        for i, (piece_start, piece_end) in enumerate(_pieces(text, start, end, size)):
            units.append(_Unit(piece_start, piece_end, opens and i == 0))
        previous_end = end
    paragraph_end = len(text)
    for i in range(len(units) - 1, -1, -1):
        if i + 1 < len(units) and units[i + 1].opens_paragraph:
            paragraph_end = units[i].end
        units[i] = _Unit(units[i].start, units[i].end, units[i].opens_paragraph, paragraph_end)
    return units


def _next_first(units: list[_Unit], first: int, last: int, overlap: int, size: int) -> int:
    """Index where the chunk after ``units[first..last]`` begins: the repeated tail, or ``last + 1``."""
    best, best_distance = last + 1, overlap
    for k in range(last, first, -1):
        carried = units[last].end - units[k].start
        if units[last + 1].end - units[k].start > size or carried - overlap >= best_distance:
            break
        if abs(carried - overlap) < best_distance:
            best, best_distance = k, abs(carried - overlap)
    return best


def _ends_before_paragraph(units: list[_Unit], start: int, last: int, size: int) -> bool:
    """Whether to end a chunk before ``units[last + 1]`` although it fits: it opens a paragraph
    that would straddle the chunk boundary, and the chunk is already half full."""
    following = units[last + 1]
    return (
        following.opens_paragraph
        and units[last].end - start >= size // 2
        and following.paragraph_end - start > size
    )


def chunk_text(text: str, *, size: int, overlap: int) -> list[TextChunk]:
    """Split ``text`` into chunks of whole sentences of at most ``size`` characters, ``overlap`` repeated."""
    return chunk_analysed(text, analyse(text), size=size, overlap=overlap)


def chunk_analysed(text: str, analysis: Analysis, *, size: int, overlap: int) -> list[TextChunk]:
    """``chunk_text`` for a text already analysed (whose search tokens the caller also wants)."""
    if size < 1:
        raise InvalidInput(f"chunk size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise InvalidInput(f"chunk overlap must be in [0, {size}), got {overlap}")
    units = _units(text, analysis.sentences, size)
    chunks: list[TextChunk] = []
    first, done = 0, -1
    while first < len(units):
        start = units[first].start
        last = first
        # Repeated sentences alone never make a chunk: the paragraph rule waits for a new one.
        while (
            last + 1 < len(units)
            and units[last + 1].end - start <= size
            and (last <= done or not _ends_before_paragraph(units, start, last, size))
        ):
            last += 1
        chunks.append(TextChunk(text[start : units[last].end], start, units[last].end))
        if last + 1 == len(units):
            break
        done = last
        first = _next_first(units, first, last, overlap, size)
    return chunks
