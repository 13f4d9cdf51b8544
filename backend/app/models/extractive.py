"""The honest offline default "LLM": it quotes the source sentences that best match the question.

It reads exactly what a remote model would see: the numbered sources and the question that
``pipelines/prompts.py`` wrote into the last user message. Every sentence of every source is scored
by the question's content morphemes it contains (Kiwi, via ``retriever/korean.py``), each weighted
by how rare it is among the sentences; the 1-3 best are quoted, each followed by its ``[n]``.
It never writes anything the sources do not say, and says so plainly when nothing matches.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from app.models.base import ChatMessage, GenerationOptions
from app.pipelines.prompts import NO_ANSWER_KO, PromptSource, parse_question, parse_sources
from app.retriever.korean import analyse, search_tokens

NO_ANSWER_EN = "I could not find the answer in the provided documents."

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_PIECE = re.compile(r"\S+\s*")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")
# Light verbs and English function words match almost any sentence, so they prove no relevance.
_WEAK_TOKENS = frozenset(
    {"하", "되", "있", "없", "않", "같", "보", "주"}
    | {"a", "an", "the", "is", "are", "was", "were", "be", "of", "in", "on", "at", "to", "for"}
    | {"and", "or", "what", "which", "who", "when", "where", "why", "how", "do", "does", "did"}
)
# A sentence must cover at least this share of the question's weight to be quoted next to the best.
_RELATIVE_FLOOR = 0.5


@dataclass(frozen=True, slots=True)
class _Candidate:
    source: int
    position: int
    text: str
    tokens: frozenset[str]


class ExtractiveLLM:
    """Answers by quoting the most relevant source sentences with their citations."""

    def __init__(self, max_sentences: int = 3) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self._max_sentences = max_sentences

    @property
    def name(self) -> str:
        """``extractive``."""
        return "extractive"

    def answer(self, messages: Sequence[ChatMessage]) -> str:
        """The quoted answer to the last user message (blocking: Kiwi does the analysis)."""
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        question = parse_question(prompt)
        quotes = self._quotes(question, parse_sources(prompt))
        if not quotes:
            return _no_answer(question)
        return " ".join(f"{c.text} [{c.source}]" for c in quotes)

    def _quotes(self, question: str, sources: Sequence[PromptSource]) -> list[_Candidate]:
        wanted = {t for t in search_tokens(question) if t not in _WEAK_TOKENS}
        if not sources or not wanted:
            return []
        candidates = _candidates(sources)
        document_frequency = Counter(t for c in candidates for t in c.tokens & wanted)
        total = len(candidates)
        # Rare question words decide more than common ones; words no sentence has weigh the most.
        weight = {t: math.log(1 + total / (document_frequency[t] or 0.5)) for t in wanted}
        full = sum(weight.values())
        scored = [(sum(weight[t] for t in c.tokens & wanted) / full, c) for c in candidates]
        scored = [(s, c) for s, c in scored if s > 0]
        if not scored:
            return []
        # Best first; on ties the earlier source (ranked higher by retrieval), then the earlier sentence.
        scored.sort(key=lambda sc: (-sc[0], sc[1].source, sc[1].position))
        best = scored[0][0]
        return [c for s, c in scored[: self._max_sentences] if s >= best * _RELATIVE_FLOOR]

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


def _candidates(sources: Sequence[PromptSource]) -> list[_Candidate]:
    candidates = []
    for source in sources:
        analysis = analyse(source.text)
        for position, (start, end) in enumerate(analysis.sentences):
            text = _HEADING_MARK.sub("", source.text[start:end])
            found = frozenset(analysis.tokens_in(start, end))
            candidates.append(_Candidate(source.number, position, text, found))
    return candidates


def _no_answer(question: str) -> str:
    english = _LATIN.search(question) and not _HANGUL.search(question)
    return NO_ANSWER_EN if english else NO_ANSWER_KO
