"""The honest offline default "LLM": it quotes the source sentences that best answer the question.

It reads exactly what a remote model would see: the numbered sources and the question the pipeline
wrote into the last user message, in the format of ``models/rag_format.py``. Each source is cut into
quotable units: its sentences (Kiwi, via ``text/korean.py``), an overlong sentence cut at line
breaks or spaces, and each row of a table (lines of ``|``- or tab-separated cells, as the document
loaders write tables). A unit scores the share of the question's content morphemes it contains, each
weighted by how rare it is among the units; a table row also counts its table's header words, but
only when the row itself matches. The 1-3 best units are quoted, each followed by its ``[n]``; a
text that several sources share is quoted once, under the best-ranked of them.

When even the best unit covers less than ``RELEVANCE_FLOOR`` of the question's weight, the
documents do not answer it: the reply says so plainly, with no citation. The floor was chosen on
KorQuAD by split halves (``benchmarks/extractive.py``). It never writes anything the sources do
not say.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from app.models.base import ChatMessage, GenerationOptions
from app.models.rag_format import NO_ANSWER_KO, PromptSource, parse_question, parse_sources
from app.text.korean import Analysis, analyse, search_tokens

NO_ANSWER_EN = "I could not find the answer in the provided documents."
RELEVANCE_FLOOR = 0.4
"""Least share of the question's weight the best unit must cover for the documents to answer."""

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_PIECE = re.compile(r"\S+\s*")
_LINE = re.compile(r"[^\n]+")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")
_CELL_SEPARATOR = re.compile(r"\t|\|")
# Markdown's |---|:---| line under a header: part of the table, never an answer.
_TABLE_RULE = re.compile(r"^[\s|:+=-]*-[\s|:+=-]*$")
_NOT_WORD = re.compile(r"[\W_]+")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:['.-][a-z0-9]+)*")
# Light verbs and English function words match almost any sentence, so they prove no relevance.
# Nor do the words a question uses to name the kind of answer it wants (이름, 곳, 날짜, 방법,
# 얼마, 알려 주다, ...): on KorQuAD they are the question words most often missing from the passage
# that answers, and off-topic questions match unrelated passages through them.
_WEAK_TOKENS = frozenset(
    {"하", "되", "있", "없", "않", "같", "보", "주", "알리", "어떻", "어떠", "무엇", "누구", "언제"}
    | {"어디", "몇", "얼마", "이름", "명칭", "제목", "사람", "인물", "곳", "장소", "위치", "지역"}
    | {"나라", "기관", "단체", "직업", "날", "날짜", "해", "연도", "년도", "시기", "기간", "때"}
    | {"당시", "나이", "금액", "개수", "갯수", "수", "가지", "종류", "이유", "방법"}
    | {"a", "an", "the", "is", "are", "was", "were", "be", "of", "in", "on", "at", "to", "for"}
    | {"and", "or", "what", "which", "who", "when", "where", "why", "how", "do", "does", "did"}
)
# A unit must cover at least this share of the best unit's score to be quoted next to it.
_RELATIVE_FLOOR = 0.5
# A sentence longer than this is quoted by its lines (or, failing those, by word-bounded pieces).
_MAX_QUOTE_CHARS = 300
# Two quotes whose letters agree this much say the same thing.
_NEAR_DUPLICATE = 0.9


@dataclass(frozen=True, slots=True)
class Quote:
    """A unit of one source chosen to answer, and the share of the question's weight it covers."""

    source: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class _Unit:
    source: int
    position: int
    text: str
    """What is quoted."""
    tokens: frozenset[str]
    letters: str
    """The unit's own text without spaces and punctuation, lower-cased."""
    context: frozenset[str] = frozenset()
    """Tokens of a table row's header: they count for the row once the row matches by itself."""
    context_letters: str = ""

    @property
    def key(self) -> str:
        return _letters(self.text)

    def matches(self, wanted: set[str]) -> tuple[set[str], set[str]]:
        """The question tokens found in the unit itself, and those found in its header only."""
        own = _found(wanted, self.tokens, self.letters)
        return own, _found(wanted, self.context, self.context_letters) - own


class ExtractiveLLM:
    """Answers by quoting the most relevant source sentences with their citations."""

    def __init__(self, max_sentences: int = 3, relevance_floor: float = RELEVANCE_FLOOR) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 0 <= relevance_floor <= 1:
            raise ValueError("relevance_floor must be in [0, 1]")
        self._max_sentences = max_sentences
        self._relevance_floor = relevance_floor

    @property
    def name(self) -> str:
        """``extractive``."""
        return "extractive"

    def answer(self, messages: Sequence[ChatMessage]) -> str:
        """The quoted answer to the last user message (blocking: Kiwi does the analysis)."""
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        question = parse_question(prompt)
        quotes = select_quotes(question, parse_sources(prompt), self._max_sentences)
        return render_answer(question, quotes, self._relevance_floor)

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """The quoted answer, cut to ``max_tokens`` words when set."""
        return "".join(await self._pieces(messages, options)).strip()

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """The same answer, one word (with its trailing space) at a time."""
        for piece in await self._pieces(messages, options):
            yield piece

    async def _pieces(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None
    ) -> list[str]:
        # Kiwi's analysis is CPU work; keep it off the event loop.
        pieces = _PIECE.findall(await asyncio.to_thread(self.answer, messages))
        if options is not None and options.max_tokens is not None:
            pieces = pieces[: options.max_tokens]
        return pieces

    async def check(self) -> None:
        """Always ready: it needs only the Korean analyser, which loads on first use."""

    async def aclose(self) -> None:
        """Nothing to release."""


def select_quotes(
    question: str, sources: Sequence[PromptSource], max_quotes: int = 3
) -> list[Quote]:
    """The best 1-``max_quotes`` distinct units for ``question``, best first, before any floor."""
    wanted = {t for t in search_tokens(question) if t not in _WEAK_TOKENS}
    if not sources or not wanted:
        return []
    units = _distinct(u for source in sources for u in _units(source))
    found = [(unit, unit.matches(wanted)) for unit in units]
    document_frequency = Counter(t for _, (own, header) in found for t in own | header)
    # Rare question words decide more than common ones; words no unit has weigh the most.
    weight = {t: math.log(1 + len(units) / (document_frequency[t] or 0.5)) for t in wanted}
    full = sum(weight.values())
    scored = [
        (sum(weight[t] for t in own | header) / full, unit) for unit, (own, header) in found if own
    ]
    # Best first; on ties the earlier source (ranked higher by retrieval), then the earlier unit.
    scored.sort(key=lambda su: (-su[0], su[1].source, su[1].position))
    quotes: list[Quote] = []
    for score, unit in scored:
        # The tolerance keeps a sentence that holds exactly half of the best one's words.
        if len(quotes) == max_quotes or score < scored[0][0] * _RELATIVE_FLOOR - 1e-9:
            break
        if not any(_same_text(unit.key, _letters(q.text)) for q in quotes):
            quotes.append(Quote(unit.source, unit.text, score))
    return quotes


def render_answer(question: str, quotes: Sequence[Quote], relevance_floor: float) -> str:
    """The quotes, each with its ``[n]``, if the best reaches the floor; else the plain "no answer".

    The floor judges the best quote alone: the others only complete it. (Judging what the quotes
    cover together lets an off-topic question through on stray words, one per sentence.)
    """
    if not quotes or quotes[0].score < relevance_floor:
        return _no_answer(question)
    return " ".join(f"{q.text} [{q.source}]" for q in quotes)


def _units(source: PromptSource) -> list[_Unit]:
    text = source.text
    analysis = analyse(text)
    units: list[_Unit] = []
    tables = _tables(text)
    for table in tables:
        units += _row_units(source.number, text, analysis, table)
    covered = [(rows[0][0], rows[-1][1]) for rows in tables]
    for start, end in analysis.sentences:
        for piece_start, piece_end in _outside(start, end, covered):
            for s, e in _short_spans(text, piece_start, piece_end):
                quoted = _HEADING_MARK.sub("", text[s:e])
                if quoted:
                    tokens = _tokens(text, analysis, s, e)
                    units.append(_Unit(source.number, s, quoted, tokens, _letters(quoted)))
    return units


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL_SEPARATOR.split(line.strip().strip("|"))]


def _is_row(line: str) -> bool:
    return _TABLE_RULE.match(line) is not None or sum(1 for c in _cells(line) if c) >= 2


def _tables(text: str) -> list[list[tuple[int, int]]]:
    """Line spans of each run of adjacent table lines (rows and rule lines)."""
    tables: list[list[tuple[int, int]]] = []
    for match in _LINE.finditer(text):
        if not _is_row(match.group()):
            continue
        start, end = match.span()
        if tables and text[tables[-1][-1][1] : start] == "\n":
            tables[-1].append((start, end))
        else:
            tables.append([(start, end)])
    return [rows for rows in tables if any(not _TABLE_RULE.match(text[s:e]) for s, e in rows)]


def _row_units(
    number: int, text: str, analysis: Analysis, rows: list[tuple[int, int]]
) -> list[_Unit]:
    lines = [(s, e) for s, e in rows if not _TABLE_RULE.match(text[s:e])]
    header = lines[0] if _has_header(text, rows, lines) else None
    names = _cells(text[header[0] : header[1]]) if header else []
    context = _tokens(text, analysis, *header) if header else frozenset()
    context_letters = _letters(text[header[0] : header[1]]) if header else ""
    units = []
    for start, end in lines:
        if (start, end) == header:
            continue
        cells = _cells(text[start:end])
        if len(names) == len(cells):
            quoted = " | ".join(
                f"{n}: {c}" if n else c for n, c in zip(names, cells, strict=True) if c
            )
        else:
            quoted = " | ".join(c for c in cells if c)
        tokens = _tokens(text, analysis, start, end)
        letters = _letters(text[start:end])
        units.append(_Unit(number, start, quoted, tokens, letters, context, context_letters))
    return units


def _has_header(text: str, rows: list[tuple[int, int]], lines: list[tuple[int, int]]) -> bool:
    # Markdown marks its header with the rule line under it. Otherwise the first row is taken for
    # a header when it looks like one: no figures and no "name: value" cells (spreadsheet records
    # carry their column names in every row already). A chunk that starts mid-table fails that
    # test often enough, since data rows mostly hold numbers.
    if len(rows) > 1 and _TABLE_RULE.match(text[rows[1][0] : rows[1][1]]):
        return True
    first = text[lines[0][0] : lines[0][1]]
    return len(lines) > 1 and not any(ch.isdigit() for ch in first) and ": " not in first


def _outside(start: int, end: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that no table covers."""
    pieces = []
    for table_start, table_end in covered:
        if table_end <= start or table_start >= end:
            continue
        if table_start > start:
            pieces.append((start, table_start))
        start = max(start, table_end)
    if start < end:
        pieces.append((start, end))
    return pieces


def _short_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` as spans of at most ``_MAX_QUOTE_CHARS``: lines packed, long lines cut."""
    if end - start <= _MAX_QUOTE_CHARS:
        return _stripped(text, [(start, end)])
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text, start, end):
        line_start, line_end = line.span()
        while line_end - line_start > _MAX_QUOTE_CHARS:
            cut = text.rfind(" ", line_start + _MAX_QUOTE_CHARS // 2, line_start + _MAX_QUOTE_CHARS)
            stop = cut if cut > line_start else line_start + _MAX_QUOTE_CHARS
            spans.append((line_start, stop))
            line_start = stop
        # Short lines (a list, a text wrapped by its PDF) are quoted together while they fit.
        if spans and line_end - spans[-1][0] <= _MAX_QUOTE_CHARS:
            spans[-1] = (spans[-1][0], line_end)
        else:
            spans.append((line_start, line_end))
    return _stripped(text, spans)


def _stripped(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    result = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            result.append((start, end))
    return result


def _distinct(units: Iterable[_Unit]) -> list[_Unit]:
    """The units in order, each text once: a passage that two sources share counts once."""
    first: dict[str, _Unit] = {}
    for unit in units:
        if unit.key:
            first.setdefault(unit.key, unit)
    return list(first.values())


def _tokens(text: str, analysis: Analysis, start: int, end: int) -> frozenset[str]:
    # Kiwi reads an English sentence's last word with its full stop ("weekdays."), so the
    # plain words of the span are added: the question's "weekdays" must find it.
    latin = _LATIN_WORD.findall(text[start:end].lower())
    return frozenset(analysis.tokens_in(start, end)) | frozenset(latin)


def _letters(text: str) -> str:
    return _NOT_WORD.sub("", text).lower()


def _found(wanted: set[str], tokens: frozenset[str], letters: str) -> set[str]:
    # Kiwi may cut an unknown name differently in the question and in the passage (반기문 as one
    # noun here, 반기+문 there), so a Hangul word of two or more letters also counts when it is
    # spelled out in the text.
    spelled = {
        t for t in wanted if len(t) > 1 and _HANGUL.search(t) and t.replace(" ", "") in letters
    }
    return (tokens & wanted) | spelled


def _same_text(a: str, b: str) -> bool:
    return a in b or b in a or SequenceMatcher(None, a, b).ratio() >= _NEAR_DUPLICATE


def _no_answer(question: str) -> str:
    english = _LATIN.search(question) and not _HANGUL.search(question)
    return NO_ANSWER_EN if english else NO_ANSWER_KO
