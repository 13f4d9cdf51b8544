"""Plain data passed between the loaders, the indexer, the vector store and the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from app.core.config import SearchMode

DocumentStatus = Literal["indexing", "ready", "failed"]
IngestOutcome = Literal["indexed", "unchanged", "failed", "removed"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieved chunk, ranked. ``metadata`` merges the document's and the chunk's metadata
    and always holds ``source`` (file name) and ``title``."""

    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A stored document, as listed by the API."""

    id: str
    collection: str
    source: str
    title: str
    content_hash: str
    status: DocumentStatus
    error: str | None
    chunk_count: int
    size_bytes: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one document of an ingest request."""

    document_id: str | None
    source: str
    outcome: IngestOutcome
    chunks: int = 0
    error: str | None = None


class Retriever(Protocol):
    """What the RAG chain needs from retrieval; ``PGVectorStore``-backed ``HybridRetriever`` implements it."""

    def search(
        self,
        query: str,
        *,
        top_k: int,
        mode: SearchMode,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Return at most ``top_k`` ready chunks, best first."""
        ...
