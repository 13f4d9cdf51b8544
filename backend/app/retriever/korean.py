"""Korean text analysis with Kiwi: search tokens for BM25 and sentence boundaries for chunking.

One ``Kiwi`` instance serves the whole process: loading its model takes about a second and a few
hundred MB, and its analysis methods do not change the instance, so threads share it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from kiwipiepy import Kiwi, Token

# Tags whose morphemes carry meaning for search: general/proper nouns, numerals, roots,
# verb and adjective stems, foreign words, numbers, Hanja and the special patterns Kiwi
# recognises (URLs, e-mail addresses, hashtags, serial numbers, mentions).
# Particles (J*), endings (E*), affixes (X*, except roots), punctuation (S* but the three
# above) and dependent nouns like 것/수/등 are dropped: they match everything.
_CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NR", "XR", "VV", "VA", "SL", "SN", "SH"}
    | {"W_URL", "W_EMAIL", "W_HASHTAG", "W_SERIAL", "W_MENTION"}
)

# Blank lines always end a sentence, and analysing paragraphs one by one keeps Kiwi's cost
# linear on long documents (one 300k-character call is about twice as slow as its paragraphs).
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# Kiwi keeps runs of English sentences together; split them after ., ! or ? when the next
# sentence visibly starts (a capital letter, a quote or a bracket). Digits are left out on
# both sides so that Korean dates like "2024. 3. 1." stay whole.
_LATIN_SENTENCE_END = re.compile(r"(?<=[a-z)\"'][.!?])\s+(?=[A-Z\"'(\[])")

_kiwi: Kiwi | None = None
_kiwi_lock = threading.Lock()


def get_kiwi() -> Kiwi:
    """The process-wide analyser, loaded on first use."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                kiwi = Kiwi()
                # Kiwi finishes loading lazily; do it here, under the lock, not in the first caller's request.
                kiwi.tokenize("")
                _kiwi = kiwi
    return _kiwi


def _keep(token: Token) -> bool:
    # Irregular conjugations carry a suffix (VV-I, VA-R); the base tag decides.
    return token.tag.split("-", 1)[0] in _CONTENT_TAGS


def search_tokens(text: str) -> list[str]:
    """Content morphemes of ``text``, in order, for BM25: nouns, stems, Latin words (lower-cased), numbers, Hanja."""
    if not text.strip():
        return []
    return [t.form.lower() for t in get_kiwi().tokenize(text) if _keep(t)]


def search_tokens_many(texts: Sequence[str]) -> list[list[str]]:
    """``search_tokens`` for many texts at once; Kiwi spreads the work over its threads."""
    results: list[list[str]] = [[] for _ in texts]
    todo = [i for i, text in enumerate(texts) if text.strip()]
    if not todo:
        return results
    analysed = get_kiwi().tokenize([texts[i] for i in todo])
    for i, tokens in zip(todo, analysed, strict=True):
        results[i] = [t.form.lower() for t in tokens if _keep(t)]
    return results


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _split_latin(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    for match in _LATIN_SENTENCE_END.finditer(text, start, end):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, end))
    return spans


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of the sentences of ``text``, in order, without surrounding whitespace.

    Sentences never cross a blank line. Whitespace-only input has no sentences.
    """
    paragraphs = _paragraph_spans(text)
    if not paragraphs:
        return []
    analysed = get_kiwi().split_into_sents(
        [text[s:e] for s, e in paragraphs], return_sub_sents=False
    )
    spans: list[tuple[int, int]] = []
    for (offset, _), sentences in zip(paragraphs, analysed, strict=True):
        for sentence in sentences:
            for start, end in _split_latin(text, offset + sentence.start, offset + sentence.end):
                start, end = _strip_span(text, start, end)
                if start < end:
                    spans.append((start, end))
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (Kiwi's splitter, also splitting runs of English sentences)."""
    return [text[start:end] for start, end in sentence_spans(text)]
