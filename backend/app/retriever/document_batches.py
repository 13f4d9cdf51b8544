"""Document versions as batches ready to store: Kiwi analysis → chunks → search tokens → vectors.

``DocumentBatches`` turns the versions of a file into lists of ``DocumentWrite`` of about
``BATCH_CHUNKS`` chunks each. Kiwi analyses every text of the file in one call on its own worker
threads; chunking, embedding and shaping the rows of the next batch run on a thread of their own
while the caller writes the current one, so the client's work overlaps the database's (which
runs in the PostgreSQL server process, on another core).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np

from app.core.config import RetrievalSettings
from app.models.base import EmbeddingClient
from app.retriever.chunking import TextChunk, chunk_analysed
from app.retriever.document_versions import DocumentVersion
from app.retriever.store_writes import ChunkRow, DocumentWrite
from app.text.korean import Analysis, analyse_many

# Chunks written per COPY batch, each followed by a progress report: per-statement costs (and
# the statistics triggers, which run once per statement) vanish next to the rows, and memory
# stays bounded however large the file.
BATCH_CHUNKS = 2000

_Pending = tuple[DocumentVersion, list[TextChunk], list[list[str]]]


@runtime_checkable
class _ArrayEmbedder(Protocol):
    """An embedder that hands back one float32 matrix, sparing a round trip through lists."""

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` vectors."""
        ...


class DocumentBatches:
    """Builds the rows of document versions, a batch ahead of the one being written."""

    def __init__(
        self, embedder: EmbeddingClient, settings: RetrievalSettings, *, embed_batch: int
    ) -> None:
        self._embedder = embedder
        self._embed_array = embedder.embed_array if isinstance(embedder, _ArrayEmbedder) else None
        self._settings = settings
        self._embed_batch = embed_batch

    def batches(
        self, versions: Sequence[DocumentVersion], collection: str, source: str
    ) -> Iterator[list[DocumentWrite]]:
        """The versions as documents to write, chunked, tokenised and embedded, a batch at a time.

        Errors of building a batch (the embedder's) are raised where that batch is asked for.
        When the caller stops early, the batch being built is finished and thrown away.
        """
        if not versions:
            return
        groups = self._groups(versions)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-batches") as builder:
            ahead: Future[list[DocumentWrite] | None] = builder.submit(
                self._next, groups, collection, source
            )
            # Leaving the block (the caller stopped early, too) waits for the batch under way.
            while (batch := ahead.result()) is not None:
                ahead = builder.submit(self._next, groups, collection, source)
                yield batch

    def _groups(self, versions: Sequence[DocumentVersion]) -> Iterator[list[_Pending]]:
        """The versions chunked and tokenised, grouped into batches of about ``BATCH_CHUNKS``."""
        analyses: Iterator[Analysis] = analyse_many([v.document.text for v in versions])
        pending: list[_Pending] = []
        count = 0
        for version, analysis in zip(versions, analyses, strict=True):
            chunks = chunk_analysed(
                version.document.text,
                analysis,
                size=self._settings.chunk_size,
                overlap=self._settings.chunk_overlap,
            )
            pending.append((version, chunks, [analysis.tokens_in(c.start, c.end) for c in chunks]))
            count += len(chunks)
            if count >= BATCH_CHUNKS:
                yield pending
                pending, count = [], 0
        if pending:
            yield pending

    def _next(
        self, groups: Iterator[list[_Pending]], collection: str, source: str
    ) -> list[DocumentWrite] | None:
        pending = next(groups, None)
        return None if pending is None else self._documents(pending, collection, source)

    def _documents(
        self, pending: Sequence[_Pending], collection: str, source: str
    ) -> list[DocumentWrite]:
        vectors = self._embed([chunk.text for _, chunks, _ in pending for chunk in chunks])
        documents = []
        position = 0
        for version, chunks, tokens in pending:
            rows = [
                ChunkRow(
                    ordinal=i,
                    text=chunk.text,
                    tokens=tokens[i],
                    embedding=vectors[position + i],
                    metadata=_page_metadata(version.document.page_starts, chunk),
                )
                for i, chunk in enumerate(chunks)
            ]
            position += len(chunks)
            documents.append(
                DocumentWrite(
                    document_id=version.document_id,
                    collection=collection,
                    source=source,
                    title=version.document.title,
                    content_hash=version.content_hash,
                    size_bytes=version.size_bytes,
                    metadata=version.metadata,
                    chunks=rows,
                )
            )
        return documents

    def _embed(self, texts: Sequence[str]) -> list[Sequence[float] | np.ndarray]:
        vectors: list[Sequence[float] | np.ndarray] = []
        for start in range(0, len(texts), self._embed_batch):
            batch = texts[start : start + self._embed_batch]
            if self._embed_array is not None:
                embedded: Sequence[Sequence[float] | np.ndarray] = self._embed_array(batch)
            else:
                embedded = self._embedder.embed_documents(batch)
            if len(embedded) != len(batch):
                raise RuntimeError(
                    f"{self._embedder.name} returned {len(embedded)} vectors for {len(batch)} texts"
                )
            vectors.extend(embedded)
        return vectors


def _page_metadata(page_starts: tuple[int, ...], chunk: TextChunk) -> dict[str, Any]:
    """``page`` (1-based) where the chunk begins, and ``page_end`` when it runs onto later pages."""
    if not page_starts:
        return {}
    first = bisect.bisect_right(page_starts, chunk.start)
    last = bisect.bisect_right(page_starts, chunk.end - 1)
    return {"page": first} if first == last else {"page": first, "page_end": last}
