"""Documents in: load → chunk → search tokens → embed → store, one document at a time.

Ingesting is idempotent. A document's id is the one its file gives (a ``.jsonl`` line's ``id``)
or one derived from its collection and source, so the same file lands on the same document
again. Its content hash covers everything that shapes the stored chunks (text, title, metadata,
pages, chunking settings, embedder, this module's ``INDEX_VERSION``): an unchanged document is
skipped, a changed one is re-indexed in place, and a document the file no longer holds (a line
taken out of a ``.jsonl``) is removed. Each document is handled under the store's per-document
lock, so concurrent uploads of one file index it once.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.core.config import RetrievalSettings
from app.core.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    RagError,
    TooLarge,
)
from app.core.logger import get_logger
from app.models.base import EmbeddingClient
from app.retriever.chunking import TextChunk, chunk_analysed
from app.retriever.korean import analyse
from app.retriever.loaders import LoadedDocument, is_supported, load_documents
from app.retriever.types import IngestResult
from app.retriever.vector_store import ChunkRow, PGVectorStore

log = get_logger(__name__)

# Bump when chunking, tokenising or chunk metadata change: every document is then re-indexed
# on its next ingest instead of being reported unchanged.
INDEX_VERSION = 2
MAX_COLLECTION_CHARS = 100

Progress = Callable[[int, int, str], None]


def derive_document_id(collection: str, source: str, part: int | None = None) -> str:
    """The stable id of the document read from ``source`` (``part``: its position in a multi-document file)."""
    key = "\x1f".join([collection, source] if part is None else [collection, source, str(part)])
    return "doc_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class Indexer:
    """Turns files into stored, searchable chunks; safe to share between threads."""

    def __init__(
        self,
        store: PGVectorStore,
        embedder: EmbeddingClient,
        settings: RetrievalSettings,
        *,
        max_file_bytes: int | None = None,
        batch_size: int = 64,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._max_file_bytes = max_file_bytes
        self._batch_size = batch_size

    def ingest_bytes(
        self,
        filename: str,
        data: bytes,
        *,
        collection: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[IngestResult]:
        """Index every document in one file; ``source`` (default ``filename``) names it in the index.

        Documents stored earlier from the same source and collection that the file no longer
        holds are deleted and reported as ``removed``. Raises ``TooLarge``, ``Unsupported`` or
        ``InvalidInput`` when the file cannot be read at all (and then nothing is removed); a
        document that fails while being indexed is reported as ``failed`` instead.
        """
        if self._max_file_bytes is not None and len(data) > self._max_file_bytes:
            raise TooLarge(
                f"{filename} is {len(data) / 1e6:.1f} MB; the limit is "
                f"{self._max_file_bytes / 1e6:.1f} MB.",
                code="file_too_large",
            )
        collection = self._collection(collection)
        source = source or filename
        extra = _plain_json(metadata or {})
        documents = load_documents(filename, data)
        several = len(documents) > 1
        results = []
        for part, document in enumerate(documents):
            document_id = document.id or derive_document_id(
                collection, source, part if several else None
            )
            size = len(document.text.encode("utf-8")) if several else len(data)
            results.append(
                self._ingest_document(
                    document_id, document, collection, source, {**extra, **document.metadata}, size
                )
            )
        return results + self._remove_stale(collection, source, {r.document_id for r in results})

    def ingest_path(
        self,
        path: Path,
        *,
        collection: str | None = None,
        progress: Progress | None = None,
    ) -> list[IngestResult]:
        """Index a file, or every supported file under a folder (recursively, hidden ones skipped).

        A file that cannot be read is reported as ``failed`` and the rest go on. Sources are
        paths relative to the folder, so re-ingesting the folder updates the same documents.
        ``progress(done, total, source)`` is called after each file.
        """
        path = Path(path)
        if path.is_file():
            files = [(path, path.name)]
        elif path.is_dir():
            files = sorted(
                (file, file.relative_to(path).as_posix())
                for file in path.rglob("*")
                if file.is_file() and _wanted(file.relative_to(path))
            )
        else:
            raise NotFound(f"No such file or folder: {path}", code="path_not_found")
        results: list[IngestResult] = []
        for done, (file, source) in enumerate(files, start=1):
            results += self._ingest_file(file, source, collection)
            if progress is not None:
                progress(done, len(files), source)
        return results

    def delete(self, document_id: str) -> None:
        """Delete a document and its chunks; ``NotFound`` if there is no such document."""
        with self._store.document_lock(document_id):
            if not self._store.delete_document(document_id):
                raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def _remove_stale(
        self, collection: str, source: str, kept: set[str | None]
    ) -> list[IngestResult]:
        removed = []
        for document_id in self._store.document_ids_from(collection, source):
            if document_id in kept:
                continue
            with self._store.document_lock(document_id):
                if self._store.delete_document(document_id):
                    log.info("removed %s (%s): no longer in the file", document_id, source)
                    removed.append(IngestResult(document_id, source, "removed"))
        return removed

    def _collection(self, collection: str | None) -> str:
        name = (collection or self._settings.default_collection).strip()
        if not name or len(name) > MAX_COLLECTION_CHARS:
            raise InvalidInput(f"A collection name has 1 to {MAX_COLLECTION_CHARS} characters.")
        return name

    def _ingest_file(self, file: Path, source: str, collection: str | None) -> list[IngestResult]:
        try:
            if self._max_file_bytes is not None and file.stat().st_size > self._max_file_bytes:
                raise TooLarge(
                    f"{source} is {file.stat().st_size / 1e6:.1f} MB; the limit is "
                    f"{self._max_file_bytes / 1e6:.1f} MB.",
                    code="file_too_large",
                )
            data = file.read_bytes()
            return self.ingest_bytes(file.name, data, collection=collection, source=source)
        except DatabaseUnavailable:
            raise
        except RagError as exc:
            return [IngestResult(None, source, "failed", error=exc.message)]
        except OSError as exc:
            return [
                IngestResult(None, source, "failed", error=f"cannot read {source}: {exc.strerror}")
            ]

    def _ingest_document(
        self,
        document_id: str,
        document: LoadedDocument,
        collection: str,
        source: str,
        metadata: dict[str, Any],
        size_bytes: int,
    ) -> IngestResult:
        content_hash = self._content_hash(document, collection, source, metadata)
        with self._store.document_lock(document_id):
            if self._store.document_state(document_id) == (content_hash, "ready"):
                return IngestResult(document_id, source, "unchanged")
            try:
                self._store.begin_document(
                    document_id=document_id,
                    collection=collection,
                    source=source,
                    title=document.title,
                    content_hash=content_hash,
                    size_bytes=size_bytes,
                    metadata=metadata,
                )
            except Conflict as exc:
                # The id belongs to a document of another collection: that one is left as it is.
                return IngestResult(document_id, source, "failed", error=exc.message)
            try:
                rows = self._chunk_rows(document)
                self._store.replace_chunks(document_id, content_hash, rows)
            except DatabaseUnavailable:
                raise
            # Whatever breaks (the embedding provider, a bug), the document is marked failed with
            # the reason, its previous chunks stay, and the other documents of the file go on.
            except Exception as exc:
                reason = (
                    exc.message if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
                )
                log.warning(
                    "indexing %s (%s) failed: %s",
                    source,
                    document_id,
                    reason,
                    exc_info=not isinstance(exc, RagError),
                )
                self._store.mark_failed(document_id, reason)
                return IngestResult(document_id, source, "failed", error=reason)
        log.info("indexed %s as %s: %d chunks", source, document_id, len(rows))
        return IngestResult(document_id, source, "indexed", chunks=len(rows))

    def _content_hash(
        self, document: LoadedDocument, collection: str, source: str, metadata: dict[str, Any]
    ) -> str:
        shaping = {
            "index_version": INDEX_VERSION,
            "collection": collection,
            "source": source,
            "title": document.title,
            "text": document.text,
            "metadata": metadata,
            "page_starts": document.page_starts,
            "chunk_size": self._settings.chunk_size,
            "chunk_overlap": self._settings.chunk_overlap,
            "embedder": self._embedder.name,
        }
        encoded = json.dumps(shaping, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()

    def _chunk_rows(self, document: LoadedDocument) -> list[ChunkRow]:
        analysis = analyse(document.text)
        chunks = chunk_analysed(
            document.text,
            analysis,
            size=self._settings.chunk_size,
            overlap=self._settings.chunk_overlap,
        )
        texts = [c.text for c in chunks]
        tokens = [analysis.tokens_in(c.start, c.end) for c in chunks]
        embeddings = self._embed(texts)
        return [
            ChunkRow(
                ordinal=i,
                text=chunk.text,
                tokens=tokens[i],
                embedding=embeddings[i],
                metadata=_page_metadata(document.page_starts, chunk),
            )
            for i, chunk in enumerate(chunks)
        ]

    def _embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        vectors: list[Sequence[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
            embedded = self._embedder.embed_documents(batch)
            if len(embedded) != len(batch):
                raise RuntimeError(
                    f"{self._embedder.name} returned {len(embedded)} vectors for {len(batch)} texts"
                )
            vectors += embedded
        return vectors


def _page_metadata(page_starts: tuple[int, ...], chunk: TextChunk) -> dict[str, Any]:
    """``page`` (1-based) where the chunk begins, and ``page_end`` when it runs onto later pages."""
    if not page_starts:
        return {}
    first = bisect.bisect_right(page_starts, chunk.start)
    last = bisect.bisect_right(page_starts, chunk.end - 1)
    return {"page": first} if first == last else {"page": first, "page_end": last}


def _wanted(relative: Path) -> bool:
    # Hidden files and folders (.git, .DS_Store) and office lock files (~$report.docx) are not documents.
    return is_supported(relative.name) and not any(
        part.startswith((".", "~$")) for part in relative.parts
    )


def _plain_json(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be plain JSON: {exc}") from None
    return metadata
