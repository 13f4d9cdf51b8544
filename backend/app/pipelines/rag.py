"""The RAG chain: retrieve → build the prompt → LLM → answer with ``[n]`` citations.

The pipeline only assembles injected parts. It opens no connection and reads no setting: the
retriever, the LLM and the defaults come from ``api/deps.py`` (or the CLI), so any model or store
that honours the protocols can be plugged in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from app.core.config import SearchMode
from app.core.errors import InvalidInput
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from app.models.rag_format import PromptSource
from app.pipelines.prompts import build_messages
from app.retriever.types import Retriever, SearchHit

_CITATION = re.compile(r"\[(\d{1,3})\]")

PageUnit = Literal["page", "slide", "sheet"]

# Formats whose pages are not pages; every other paged format (PDF) counts pages.
_PAGE_UNITS: dict[str, PageUnit] = {".pptx": "slide", ".xlsx": "sheet"}


@dataclass(frozen=True, slots=True)
class Source:
    """A retrieved passage as numbered in the prompt and cited in the answer.

    ``filename`` and the page fields repeat what the chunk's metadata holds, so that a citation
    can name the file and the page (slide, sheet) without knowing where the indexer keeps them.
    """

    number: int
    document_id: str
    chunk_id: str
    title: str
    source: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    filename: str = ""
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    page_unit: PageUnit | None = None


@dataclass(frozen=True, slots=True)
class RAGAnswer:
    """The finished answer and the passages it was built from."""

    answer: str
    sources: list[Source]

    @property
    def cited(self) -> list[int]:
        """Source numbers the answer actually cites, in order of first use."""
        return cited_numbers(self.answer, len(self.sources))


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    sources: list[Source]


@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    answer: str


RAGEvent = SourcesEvent | TokenEvent | DoneEvent


@dataclass(frozen=True, slots=True)
class RetrievalOptions:
    """What to retrieve for one question."""

    top_k: int
    mode: SearchMode
    collection: str | None = None
    filters: dict[str, Any] | None = None


def cited_numbers(answer: str, source_count: int) -> list[int]:
    """Citation numbers in ``answer`` that point at a real source, first use first."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= source_count and number not in seen:
            seen.append(number)
    return seen


def to_sources(hits: Sequence[SearchHit]) -> list[Source]:
    """Number retrieved hits 1..n in rank order."""
    return [_source(i, hit) for i, hit in enumerate(hits, start=1)]


def _source(number: int, hit: SearchHit) -> Source:
    metadata = hit.metadata
    source = str(metadata.get("source", ""))
    filename = PurePosixPath(source).name
    page = _page_number(metadata.get("page"))
    end = _page_number(metadata.get("page_end")) if page else None
    label = str(metadata.get("page_label") or "") or None
    return Source(
        number=number,
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        title=str(metadata.get("title") or source or hit.document_id),
        source=source,
        text=hit.text,
        score=hit.score,
        metadata=dict(metadata),
        filename=filename,
        page=page,
        page_end=end if page and end and end > page else None,
        page_label=label,
        page_unit=_PAGE_UNITS.get(PurePosixPath(filename).suffix.lower(), "page")
        if page or label
        else None,
    )


def _page_number(value: Any) -> int | None:
    # Metadata is JSON that uploads may also set: only a positive whole number is a page.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


class RAGPipeline:
    """Answers questions from retrieved passages with an injected LLM."""

    def __init__(
        self,
        llm: LLMClient,
        retriever: Retriever,
        *,
        max_history: int = 6,
        generation: GenerationOptions | None = None,
    ) -> None:
        self._llm = llm
        self._retriever = retriever
        self._max_history = max_history
        self._generation = generation

    async def retrieve(self, question: str, options: RetrievalOptions) -> list[Source]:
        """Search in a worker thread: the retriever does blocking database I/O."""
        hits = await asyncio.to_thread(
            self._retriever.search,
            question,
            top_k=options.top_k,
            mode=options.mode,
            collection=options.collection,
            filters=options.filters,
        )
        return to_sources(hits)

    def _messages(
        self, question: str, sources: Sequence[Source], history: Sequence[ChatMessage]
    ) -> list[ChatMessage]:
        prompt_sources = [PromptSource(s.number, s.title, s.text) for s in sources]
        return build_messages(question, prompt_sources, history, max_history=self._max_history)

    async def answer(
        self,
        question: str,
        options: RetrievalOptions,
        history: Sequence[ChatMessage] = (),
    ) -> RAGAnswer:
        """Retrieve, prompt and complete in one go."""
        question = _clean_question(question)
        sources = await self.retrieve(question, options)
        reply = await self._llm.complete(
            self._messages(question, sources, history), self._generation
        )
        return RAGAnswer(reply.strip(), sources)

    async def stream(
        self,
        question: str,
        options: RetrievalOptions,
        history: Sequence[ChatMessage] = (),
    ) -> AsyncIterator[RAGEvent]:
        """Yield the sources first, then the answer token by token, then the whole answer."""
        question = _clean_question(question)
        sources = await self.retrieve(question, options)
        yield SourcesEvent(sources)
        pieces: list[str] = []
        async for piece in self._llm.stream(
            self._messages(question, sources, history), self._generation
        ):
            if piece:
                pieces.append(piece)
                yield TokenEvent(piece)
        yield DoneEvent("".join(pieces).strip())


def _clean_question(question: str) -> str:
    cleaned = question.strip()
    if not cleaned:
        raise InvalidInput("The question is empty.", code="empty_question")
    return cleaned
