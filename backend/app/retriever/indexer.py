"""Documents in: load → normalise → chunk → search tokens → embed → store.

Every string stored (text, title, metadata keys and values, id, source, collection) passes the
text boundary of ``app.text`` first, so PostgreSQL is never handed NUL or a lone surrogate and
decomposed Hangul is stored composed, as queries are.

Ingesting is idempotent. A document's id is the one its file gives (a ``.jsonl`` line's ``id``)
or one derived from its collection and source, so the same file lands on the same document
again. Its content hash covers everything that shapes the stored chunks (text, title, metadata,
pages, chunking settings, embedder, this module's ``INDEX_VERSION``): an unchanged document is
skipped, a changed one is re-indexed in place, and a document the file no longer holds (a line
taken out of a ``.jsonl``) is removed. Each document is handled under the store's per-document
lock, so concurrent uploads of one file index it once.

A file of several documents (``.jsonl``, row-wise ``.csv``) is stored whole or not at all:
every document is read and embedded first, then all of them are written, and the file's
stale documents removed, in one transaction under a lock on the file. A document that cannot
be stored fails the file and leaves what was stored from it before as it was.

Each file gets its own results. Only ``DatabaseUnavailable`` escapes a folder's ingest: any
other failure, a bug in a loader included, is the failed result of that file alone.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.core.config import RetrievalSettings
from app.core.errors import (
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
from app.retriever.loaders.common import stem
from app.retriever.types import IngestResult
from app.retriever.vector_store import ChunkRow, PGVectorStore
from app.text import normalize_json, normalize_line, normalize_text

log = get_logger(__name__)

# Bump when chunking, tokenising or chunk metadata change: every document is then re-indexed
# on its next ingest instead of being reported unchanged.
INDEX_VERSION = 3
MAX_COLLECTION_CHARS = 100

Progress = Callable[[int, int, str], None]


def derive_document_id(collection: str, source: str, part: int | None = None) -> str:
    """The stable id of the document read from ``source`` (``part``: its position in a multi-document file)."""
    key = "\x1f".join([collection, source] if part is None else [collection, source, str(part)])
    return "doc_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Version:
    """One document of a file as it is to be stored: normalised, with its id and content hash."""

    document_id: str
    document: LoadedDocument
    metadata: dict[str, Any]
    size_bytes: int
    content_hash: str


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
        document that fails while being indexed is reported as ``failed`` instead. A file of
        several documents is stored whole or not at all: a failure gives one ``failed`` result
        that names the document, and nothing of the file changes. Errors that are not the
        application's own (a bug in a loader) propagate; callers that ingest many files turn
        them into that file's ``failed`` result.
        """
        filename = normalize_line(filename)
        if self._max_file_bytes is not None and len(data) > self._max_file_bytes:
            raise TooLarge(
                f"{filename} is {len(data) / 1e6:.1f} MB; the limit is "
                f"{self._max_file_bytes / 1e6:.1f} MB.",
                code="file_too_large",
            )
        collection = self._collection(collection)
        source = normalize_line(source or filename)
        if not source:
            raise InvalidInput("A file to index needs a name.")
        extra = normalize_json(_plain_json(metadata or {}))
        documents = load_documents(filename, data)
        versions = self._versions(documents, collection, source, extra, len(data))
        if len(versions) > 1:
            return self._ingest_whole(versions, collection, source)
        results = [self._ingest_document(versions[0], collection, source)]
        return results + self._remove_stale(collection, source, {versions[0].document_id})

    def ingest_path(
        self,
        path: Path,
        *,
        collection: str | None = None,
        progress: Progress | None = None,
    ) -> list[IngestResult]:
        """Index a file, or every supported file under a folder (recursively, hidden ones skipped).

        A file that cannot be read or stored, for whatever reason, is reported as ``failed`` and
        the rest go on; only ``DatabaseUnavailable`` stops the walk. Sources are paths relative
        to the folder, so re-ingesting the folder updates the same documents.
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
        name = normalize_line(collection or self._settings.default_collection)
        if not name or len(name) > MAX_COLLECTION_CHARS:
            raise InvalidInput(f"A collection name has 1 to {MAX_COLLECTION_CHARS} characters.")
        return name

    def _ingest_file(self, file: Path, source: str, collection: str | None) -> list[IngestResult]:
        # Undecodable bytes of a file name arrive as lone surrogates; results name it storably.
        source = normalize_line(source)
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
        # A bug in a loader or anywhere below is this file's failure, not the whole ingest's.
        except Exception as exc:
            reason = failure_reason(exc)
            # One line per bad file; the traceback, for a bug report, only when debugging.
            log.warning("ingesting %s failed: %s", source, reason)
            log.debug("where ingesting %s failed", source, exc_info=True)
            return [IngestResult(None, source, "failed", error=reason)]

    def _versions(
        self,
        documents: list[LoadedDocument],
        collection: str,
        source: str,
        extra: dict[str, Any],
        file_bytes: int,
    ) -> list[_Version]:
        several = len(documents) > 1
        versions = []
        for part, loaded in enumerate(documents):
            document = _normalised(loaded, source)
            document_id = document.id or derive_document_id(
                collection, source, part if several else None
            )
            metadata = _plain_json({**extra, **normalize_json(document.metadata)})
            size = len(document.text.encode("utf-8")) if several else file_bytes
            content_hash = self._content_hash(document, collection, source, metadata)
            versions.append(_Version(document_id, document, metadata, size, content_hash))
        return versions

    def _ingest_document(self, version: _Version, collection: str, source: str) -> IngestResult:
        document_id = version.document_id
        with self._store.document_lock(document_id):
            if self._is_stored(version):
                return IngestResult(document_id, source, "unchanged")
            try:
                self._begin(version, collection, source)
            except DatabaseUnavailable:
                raise
            # The id belongs to a document of another collection (Conflict), or the database
            # refused a value: nothing was written, and a stored version is left as it was.
            except Exception as exc:
                reason = self._logged_failure(exc, source, document_id)
                return IngestResult(document_id, source, "failed", error=reason)
            try:
                rows = self._chunk_rows(version.document)
                self._store.replace_chunks(document_id, version.content_hash, rows)
            except DatabaseUnavailable:
                raise
            # Whatever breaks (the embedding provider, a bug), the document is marked failed with
            # the reason and its previous chunks stay.
            except Exception as exc:
                reason = self._logged_failure(exc, source, document_id)
                self._store.mark_failed(document_id, reason)
                return IngestResult(document_id, source, "failed", error=reason)
        log.info("indexed %s as %s: %d chunks", source, document_id, len(rows))
        return IngestResult(document_id, source, "indexed", chunks=len(rows))

    def _ingest_whole(
        self, versions: list[_Version], collection: str, source: str
    ) -> list[IngestResult]:
        """Store every document of a multi-document file in one transaction, or none of them."""
        current: _Version | None = None
        try:
            # Embedding is the slow part and needs no database: it is done before the
            # transaction, for the documents that look changed now.
            rows: dict[str, list[ChunkRow]] = {}
            for current in versions:
                if not self._is_stored(current):
                    rows[current.document_id] = self._chunk_rows(current.document)
            current = None
            lock = self._store.document_lock(_file_lock_name(collection, source))
            with lock, self._store.atomic():
                results = []
                for current in versions:
                    results.append(self._store_in_file(current, collection, source, rows))
                current = None
                kept = {v.document_id for v in versions}
                results += self._delete_stale_in_file(collection, source, kept)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            document_id = current.document_id if current is not None else None
            reason = self._logged_failure(exc, source, document_id)
            if current is not None:
                number = versions.index(current) + 1
                reason = f"document {document_id!r} ({number} of {len(versions)}): {reason}"
            error = f"{reason}; nothing from {source} was stored or removed."
            return [IngestResult(document_id, source, "failed", error=error)]
        for result in results:
            if result.outcome == "indexed":
                log.info("indexed %s as %s: %d chunks", source, result.document_id, result.chunks)
        return results

    def _is_stored(self, version: _Version) -> bool:
        return self._store.document_state(version.document_id) == (version.content_hash, "ready")

    def _store_in_file(
        self, version: _Version, collection: str, source: str, rows: dict[str, list[ChunkRow]]
    ) -> IngestResult:
        # Checked again under the file's lock: a concurrent upload of the same file may have
        # stored this version meanwhile.
        if self._is_stored(version):
            return IngestResult(version.document_id, source, "unchanged")
        chunks = rows.get(version.document_id)
        if chunks is None:
            chunks = self._chunk_rows(version.document)
        self._begin(version, collection, source)
        self._store.replace_chunks(version.document_id, version.content_hash, chunks)
        return IngestResult(version.document_id, source, "indexed", chunks=len(chunks))

    def _delete_stale_in_file(
        self, collection: str, source: str, kept: set[str]
    ) -> list[IngestResult]:
        removed = []
        for document_id in self._store.document_ids_from(collection, source):
            if document_id not in kept and self._store.delete_document(document_id):
                removed.append(IngestResult(document_id, source, "removed"))
        return removed

    def _begin(self, version: _Version, collection: str, source: str) -> None:
        self._store.begin_document(
            document_id=version.document_id,
            collection=collection,
            source=source,
            title=version.document.title,
            content_hash=version.content_hash,
            size_bytes=version.size_bytes,
            metadata=version.metadata,
        )

    @staticmethod
    def _logged_failure(exc: Exception, source: str, document_id: str | None) -> str:
        reason = failure_reason(exc)
        log.warning(
            "indexing %s (%s) failed: %s",
            source,
            document_id or "whole file",
            reason,
            exc_info=not isinstance(exc, RagError),
        )
        return reason

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


def failure_reason(exc: Exception) -> str:
    """What a failed result says about ``exc``: the message of the application's own errors,
    the type and text of anything else, normalised so that it can be stored and shown."""
    reason = exc.message if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
    return normalize_text(reason).strip() or type(exc).__name__


def _normalised(document: LoadedDocument, source: str) -> LoadedDocument:
    """``document`` through the text boundary; page starts follow the text they point into."""
    text = document.text
    cuts = [0, *document.page_starts, len(text)]
    pieces = [normalize_text(text[start:end]) for start, end in itertools.pairwise(cuts)]
    # pieces[0] is whatever precedes the first page; page i + 1 begins where pieces[: i + 1] end.
    ends = list(itertools.accumulate(len(piece) for piece in pieces))
    document_id = normalize_line(document.id) if document.id is not None else ""
    return replace(
        document,
        text="".join(pieces),
        title=normalize_line(document.title) or stem(source),
        id=document_id or None,
        page_starts=tuple(ends[: len(document.page_starts)]),
    )


def _file_lock_name(collection: str, source: str) -> str:
    # The lock of a whole file; \x1f cannot occur in a normalised document id, so no id clashes.
    return f"file\x1f{collection}\x1f{source}"


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
