"""Korean text analysis with Kiwi: search tokens for BM25 and sentence boundaries for chunking.

One ``Kiwi`` instance serves the whole process: loading its model takes about a second and a few
hundred MB, and its analysis methods do not change the instance, so threads share it.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Analysis:
    """One Kiwi pass over a text: its sentences and its search tokens, by character offset."""

    sentences: list[tuple[int, int]]
    """``(start, end)`` of each sentence, in order, without surrounding whitespace."""
    token_starts: list[int]
    tokens: list[str]
    """``search_tokens`` of the whole text; ``token_starts[i]`` is where ``tokens[i]`` begins."""

    def tokens_in(self, start: int, end: int) -> list[str]:
        """The search tokens that begin within ``[start, end)``, e.g. those of one chunk."""
        return self.tokens[
            bisect_left(self.token_starts, start) : bisect_left(self.token_starts, end)
        ]


def analyse(text: str) -> Analysis:
    """Sentences and search tokens of ``text`` from a single analysis.

    Kiwi's sentence splitter analyses the morphemes anyway; keeping them spares a second pass
    over every passage cut from the text. A passage's tokens are then read in context: almost
    always those a separate ``search_tokens`` call gives, now and then a better-informed reading
    of a passage that starts mid-sentence. Sentences never cross a blank line, and runs of
    English sentences are split too. Whitespace-only input has no sentences.
    """
    paragraphs = _paragraph_spans(text)
    sentences: list[tuple[int, int]] = []
    token_starts: list[int] = []
    tokens: list[str] = []
    if not paragraphs:
        return Analysis(sentences, token_starts, tokens)
    analysed = get_kiwi().split_into_sents(
        [text[s:e] for s, e in paragraphs], return_tokens=True, return_sub_sents=False
    )
    for (offset, _), paragraph in zip(paragraphs, analysed, strict=True):
        for sentence in paragraph:
            for start, end in _split_latin(text, offset + sentence.start, offset + sentence.end):
                start, end = _strip_span(text, start, end)
                if start < end:
                    sentences.append((start, end))
            for token in sentence.tokens:
                if _keep(token):
                    token_starts.append(offset + token.start)
                    tokens.append(token.form.lower())
    return Analysis(sentences, token_starts, tokens)
