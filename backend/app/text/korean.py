"""Korean text analysis with Kiwi: search tokens for BM25 and sentence boundaries for chunking.

Search tokens are the content morphemes of a text and, for each eojeol (a word between spaces)
that Kiwi reads as several morphemes, that eojeol without its particles and endings. Kiwi reads
a name it does not know by its context: 박시우 whole in ``박시우는 등산을 한다`` but 박/시/우 in
``박시우의 취미는?``. The morphemes of the two never meet; the question's eojeol stem 박시우 is the
document's morpheme. A noun compound Kiwi splits (``가상자산이다`` → 가상, 자산) gains its whole
form the same way. Stems are tokens like the others, in the same BM25 field: on KorQuAD that
found more than a second, down-weighted field of stems or of character bigrams did (sparse
recall@1 0.920, against 0.916 and 0.918 at their best weights and 0.908 without stems).

One ``Kiwi`` instance serves the whole process: loading its model takes about a second and a few
hundred MB, and its analysis methods do not change the instance, so threads share it.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kiwipiepy import Kiwi, Sentence, Token

# Tags whose morphemes carry meaning for search: general/proper nouns, numerals, roots,
# verb and adjective stems, foreign words, numbers, Hanja and the special patterns Kiwi
# recognises (URLs, e-mail addresses, hashtags, serial numbers, mentions).
# Particles (J*), endings (E*), affixes (X*, except roots), punctuation (S* but the three
# above) and dependent nouns like 것/수/등 are dropped: they match everything.
_CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NR", "XR", "VV", "VA", "SL", "SN", "SH"}
    | {"W_URL", "W_EMAIL", "W_HASHTAG", "W_SERIAL", "W_MENTION"}
)
# Punctuation that ends an eojeol stem: sentence ends, commas, quotes and brackets, ellipses,
# other symbols, list bullets. A hyphen or tilde (SO) may sit inside one, as in XR-7700.
_STEM_BREAKS = frozenset({"SF", "SP", "SSO", "SSC", "SE", "SW", "SB"})
# What an eojeol ends in and its stem leaves out: particles (J*), endings (E*), Kiwi's coda
# marks (Z*), the copula (이다, 아니다), the suffixes that make verbs and adjectives of nouns
# (연락했다 → 연락) and a hyphen or tilde.
_STEM_TAIL_TAGS = frozenset({"VCP", "VCN", "XSV", "XSA", "XSM", "SO"})
# A stem is a noun-like word: its last morpheme is a noun, number, foreign word, Hanja, root,
# noun suffix or special pattern. Stems of verbs are the content morphemes already; dependent
# nouns are left out (9시, 2020년 would be tokens where 9 and 2020 are enough).
_STEM_LAST_TAGS = frozenset(
    {"NNG", "NNP", "NR", "XR", "XSN", "SL", "SN", "SH"}
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


def _base_tag(token: Token) -> str:
    # Irregular conjugations carry a suffix (VV-I, VA-R); the base tag decides.
    return token.tag.split("-", 1)[0]


def _keep(token: Token) -> bool:
    return _base_tag(token) in _CONTENT_TAGS


def _in_stem_tail(token: Token) -> bool:
    tag = _base_tag(token)
    return tag[0] in "JEZ" or tag in _STEM_TAIL_TAGS


def _eojeols(text: str, tokens: Sequence[Token]) -> Iterator[list[Token]]:
    """The tokens of each eojeol of ``text`` in turn, split at spaces and at punctuation."""
    current: list[Token] = []
    end = 0
    for token in tokens:
        if _base_tag(token) in _STEM_BREAKS:
            if current:
                yield current
            current = []
        else:
            # Kiwi gives contracted morphemes overlapping spans (했 = 하 + 었): no gap, same word.
            if current and any(c.isspace() for c in text[end : token.start]):
                yield current
                current = []
            current.append(token)
        end = max(end, token.start + token.len)
    if current:
        yield current


def _stem(text: str, eojeol: list[Token]) -> tuple[int, str] | None:
    """``(start, stem)`` of an eojeol read as several morphemes before its tail, else ``None``."""
    end = len(eojeol)
    while end and _in_stem_tail(eojeol[end - 1]):
        end -= 1
    begin = 0
    while begin < end and _base_tag(eojeol[begin]) == "SO":
        begin += 1
    if end - begin < 2 or _base_tag(eojeol[end - 1]) not in _STEM_LAST_TAGS:
        return None
    start = eojeol[begin].start
    stop = eojeol[end - 1].start + eojeol[end - 1].len
    # A noun contracted with its particle (overlapping spans) has no surface of its own.
    if end < len(eojeol) and stop > eojeol[end].start:
        return None
    return start, text[start:stop].lower()


def _search_terms(text: str, tokens: Sequence[Token]) -> Iterator[tuple[int, str]]:
    """``(start, token)`` of the search tokens in Kiwi's ``tokens`` of ``text``, in order."""
    for eojeol in _eojeols(text, tokens):
        # The stem begins where the eojeol's first token it holds does: yielding it first keeps
        # the starts in order.
        stem = _stem(text, eojeol)
        if stem is not None:
            yield stem
        for token in eojeol:
            if _keep(token):
                yield token.start, token.form.lower()


def search_tokens(text: str) -> list[str]:
    """Search tokens of ``text``, in order, for BM25.

    Content morphemes (nouns, stems, Latin words lower-cased, numbers, Hanja) and, before the
    morphemes of an eojeol Kiwi splits, that eojeol without its particles and endings
    (``박시우의`` → 박시우, 박, 시, 우).
    """
    if not text.strip():
        return []
    return [term for _, term in _search_terms(text, get_kiwi().tokenize(text))]


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
    return next(analyse_many([text]))


def analyse_many(texts: Sequence[str]) -> Iterator[Analysis]:
    """``analyse`` of each text in turn, the paragraphs of all of them in one call to Kiwi.

    Kiwi's worker threads (one per core) analyse paragraphs ahead of the one being read here,
    so a caller that works on each analysis as it comes (chunking, embedding, writing) keeps
    every core busy, where one call per text would leave them idle between calls.
    """
    spans = [_paragraph_spans(text) for text in texts]
    paragraphs = [text[s:e] for text, found in zip(texts, spans, strict=True) for s, e in found]
    analysed = iter(
        get_kiwi().split_into_sents(paragraphs, return_tokens=True, return_sub_sents=False)
        if paragraphs
        else ()
    )
    for text, found in zip(texts, spans, strict=True):
        yield _analysis(text, found, [next(analysed) for _ in found])


def _analysis(
    text: str, paragraphs: list[tuple[int, int]], analysed: list[list[Sentence]]
) -> Analysis:
    sentences: list[tuple[int, int]] = []
    token_starts: list[int] = []
    tokens: list[str] = []
    for (offset, stop), paragraph in zip(paragraphs, analysed, strict=True):
        # Kiwi's offsets are into the paragraph it was given.
        paragraph_text = text[offset:stop]
        for sentence in paragraph:
            for start, end in _split_latin(text, offset + sentence.start, offset + sentence.end):
                start, end = _strip_span(text, start, end)
                if start < end:
                    sentences.append((start, end))
            for start, term in _search_terms(paragraph_text, sentence.tokens):
                token_starts.append(offset + start)
                tokens.append(term)
    return Analysis(sentences, token_starts, tokens)
