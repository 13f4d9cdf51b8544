"""Documents in: load → normalise → chunk → search tokens → embed → store.

Every string stored (text, title, metadata keys and values, id, source, collection) passes the
text boundary of ``app.text`` first, so PostgreSQL is never handed NUL or a lone surrogate and
decomposed Hangul is stored composed, as queries are.

Ingesting is idempotent. A document's id is the one its file gives (a ``.jsonl`` line's ``id``)
or one derived from its collection and source, so the same file lands on the same document
again. Its content hash covers everything that shapes the stored chunks (text, title, metadata,
pages, chunking settings, embedder, this module's ``INDEX_VERSION``): an unchanged document is
skipped, a changed one is re-indexed in place, and a document the file no longer holds (a line
taken out of a ``.jsonl``) is removed. A file of one document is handled under the store's lock
on that document, a file of several under a lock on the file, so concurrent uploads of one file
index it once.

A document's new version becomes visible whole, its row and chunks in one transaction: until
then, and for good if it fails, the previous version stays searchable under its own metadata.
A file of several documents (``.jsonl``, row-wise ``.csv``) is stored whole or not at all: its
documents are analysed (Kiwi, on all cores), embedded and written in batches by COPY inside one
transaction, with the file's stale documents removed in it too. A document that cannot be
stored fails the file and leaves what was stored from it before as it was. A write large next
to what the store holds runs as a bulk load: the HNSW index is built once after the rows
instead of being updated row by row (``RETRIEVAL_BULK_LOAD_CHUNKS``).

Each file gets its own results. Only ``DatabaseUnavailable`` escapes a folder's ingest: any
other failure, a bug in a loader included, is the failed result of that file alone. The
exception of a progress callback is the other exception: it propagates, the file's unfinished
transaction is rolled back, and the store keeps the previous versions whole.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from app.core.config import ParseSettings, RetrievalSettings
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
from app.retriever.korean import analyse_many
from app.retriever.loaders import LoadedDocument, is_supported
from app.retriever.loaders.common import stem
from app.retriever.parsing import ParseLimits, parse_bounded
from app.retriever.store_writes import StoredVersion, in_other_collection
from app.retriever.types import IngestResult
from app.retriever.vector_store import ChunkRow, DocumentWrite, PGVectorStore
from app.text import normalize_json, normalize_line, normalize_text

log = get_logger(__name__)

# Bump when chunking, tokenising or chunk metadata change: every document is then re-indexed
# on its next ingest instead of being reported unchanged.
INDEX_VERSION = 3
MAX_COLLECTION_CHARS = 100
# Chunks written per COPY batch, each followed by a progress report: per-statement costs (and
# the statistics triggers, which run once per statement) vanish next to the rows, and memory
# stays bounded however large the file.
_BATCH_CHUNKS = 2000
# Building the HNSW index costs about this share, per stored chunk, of inserting one new vector
# into it; so a bulk load pays once the new chunks pass the empty-store crossover
# (RETRIEVAL_BULK_LOAD_CHUNKS) plus this share of the chunks already stored.
_REBUILD_SHARE = 0.1

Progress = Callable[[int, int, str], None]
DocumentProgress = Callable[[int, int], None]


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


@runtime_checkable
class _ArrayEmbedder(Protocol):
    """An embedder that hands back one float32 matrix, sparing a round trip through lists."""

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` vectors."""
        ...


class _ProgressFailed(Exception):
    """A progress callback's own exception, carried past the per-file error handling."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Indexer:
    """Turns files into stored, searchable chunks; safe to share between threads."""

    def __init__(
        self,
        store: PGVectorStore,
        embedder: EmbeddingClient,
        settings: RetrievalSettings,
        *,
        max_file_bytes: int | None = None,
        parse_limits: ParseLimits | None = None,
        batch_size: int = 64,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._embed_array = embedder.embed_array if isinstance(embedder, _ArrayEmbedder) else None
        self._settings = settings
        self._max_file_bytes = max_file_bytes
        self._parse_limits = parse_limits or ParseLimits.from_settings(ParseSettings())
        self._batch_size = batch_size

    def ingest_bytes(
        self,
        filename: str,
        data: bytes,
        *,
        collection: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        progress: DocumentProgress | None = None,
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

        ``progress(documents_done, documents_total)`` is called while the file's documents are
        stored (after each batch) and once at the end. Whatever it raises propagates; the
        file's writes not yet committed are rolled back.
        """
        try:
            return self._ingest_bytes(filename, data, collection, source, metadata, progress)
        except _ProgressFailed as failed:
            raise failed.error from None

    def ingest_path(
        self,
        path: Path,
        *,
        collection: str | None = None,
        progress: Progress | None = None,
        document_progress: DocumentProgress | None = None,
    ) -> list[IngestResult]:
        """Index a file, or every supported file under a folder (recursively, hidden ones skipped).

        A file that cannot be read or stored, for whatever reason, is reported as ``failed`` and
        the rest go on; only ``DatabaseUnavailable`` stops the walk. Sources are paths relative
        to the folder, so re-ingesting the folder updates the same documents.
        ``progress(done, total, source)`` is called after each file, ``document_progress``
        as ``ingest_bytes``'s ``progress`` within each file; what either raises propagates.
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
            try:
                results += self._ingest_file(file, source, collection, document_progress)
            except _ProgressFailed as failed:
                raise failed.error from None
            if progress is not None:
                progress(done, len(files), source)
        return results

    def delete(self, document_id: str) -> None:
        """Delete a document and its chunks; ``NotFound`` if there is no such document."""
        with self._store.document_lock(document_id):
            if not self._store.delete_document(document_id):
                raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def _ingest_bytes(
        self,
        filename: str,
        data: bytes,
        collection: str | None,
        source: str | None,
        metadata: dict[str, Any] | None,
        progress: DocumentProgress | None,
    ) -> list[IngestResult]:
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
        documents = parse_bounded(filename, data, self._parse_limits)
        versions = self._versions(documents, collection, source, extra, len(data))
        if len(versions) > 1:
            return self._ingest_whole(versions, collection, source, progress)
        results = [self._ingest_document(versions[0], collection, source, progress)]
        return results + self._remove_stale(collection, source, {versions[0].document_id})

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

    def _ingest_file(
        self,
        file: Path,
        source: str,
        collection: str | None,
        progress: DocumentProgress | None,
    ) -> list[IngestResult]:
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
            return self._ingest_bytes(file.name, data, collection, source, None, progress)
        except (DatabaseUnavailable, _ProgressFailed):
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

    def _ingest_document(
        self,
        version: _Version,
        collection: str,
        source: str,
        progress: DocumentProgress | None,
    ) -> IngestResult:
        document_id = version.document_id
        with self._store.document_lock(document_id):
            stored = self._store.document_versions([document_id]).get(document_id)
            if _is_current(stored, version):
                result = IngestResult(document_id, source, "unchanged")
            elif stored is not None and stored.collection != collection:
                conflict = in_other_collection(document_id, stored.collection, collection)
                reason = self._logged_failure(conflict, source, document_id)
                result = IngestResult(document_id, source, "failed", error=reason)
            else:
                result = self._write_document(version, collection, source)
        _report(progress, 1, 1)
        return result

    def _write_document(self, version: _Version, collection: str, source: str) -> IngestResult:
        """Store one document's new version; on failure its previous version stays, marked failed."""
        document_id = version.document_id
        try:
            [batch] = list(self._batches([version], collection, source))
            chunks = len(batch[0].chunks)
            with self._store.bulk_load() if self._bulk(chunks) else nullcontext():
                self._store.write_documents(batch)
        except DatabaseUnavailable:
            raise
        # Whatever breaks (the embedding provider, a value the database refuses, a bug), nothing
        # of the new version was stored; the document is marked failed with the reason, and its
        # previous version stays as it was. An id another collection took meanwhile is that
        # collection's document: nothing is marked.
        except Exception as exc:
            reason = self._logged_failure(exc, source, document_id)
            if not isinstance(exc, Conflict):
                self._record_failure(version, collection, source, reason)
            return IngestResult(document_id, source, "failed", error=reason)
        log.info("indexed %s as %s: %d chunks", source, document_id, chunks)
        return IngestResult(document_id, source, "indexed", chunks=chunks)

    def _record_failure(self, version: _Version, collection: str, source: str, reason: str) -> None:
        # A new document is listed as failed; a stored one keeps showing its stored version.
        with self._store.atomic():
            self._store.begin_document(
                document_id=version.document_id,
                collection=collection,
                source=source,
                title=version.document.title,
                content_hash=version.content_hash,
                size_bytes=version.size_bytes,
                metadata=version.metadata,
            )
            self._store.mark_failed(version.document_id, reason)

    def _ingest_whole(
        self,
        versions: list[_Version],
        collection: str,
        source: str,
        progress: DocumentProgress | None,
    ) -> list[IngestResult]:
        """Store every document of a multi-document file in one transaction, or none of them."""
        total = len(versions)
        ids = [v.document_id for v in versions]
        current: _Version | None = None
        written: dict[str, int] = {}
        try:
            # A first look sizes the write; under the file's lock the states are read again, as
            # a concurrent upload of the same file may have stored some documents meanwhile.
            todo = _to_write(versions, self._store.document_versions(ids))
            bulk = self._bulk(sum(self._expected_chunks(v) for v in todo))
            if todo:
                self._store.ensure_collection(collection)
            with (
                self._store.document_lock(_file_lock_name(collection, source)),
                self._store.bulk_load() if bulk else nullcontext(),
                self._store.atomic(),
            ):
                stored = self._store.document_versions(ids)
                for current in versions:
                    other = stored.get(current.document_id)
                    if other is not None and other.collection != collection:
                        raise in_other_collection(current.document_id, other.collection, collection)
                current = None
                todo = _to_write(versions, stored)
                done = total - len(todo)
                for batch in self._batches(todo, collection, source):
                    self._store.write_documents(batch)
                    written.update((d.document_id, len(d.chunks)) for d in batch)
                    done += len(batch)
                    if done < total:
                        _report(progress, done, total)
                removed = self._store.delete_documents_from(collection, source, keep=ids)
        except (DatabaseUnavailable, _ProgressFailed):
            raise
        except Exception as exc:
            document_id = current.document_id if current is not None else _named_document(exc)
            reason = self._logged_failure(exc, source, document_id)
            if document_id in ids:
                number = ids.index(document_id) + 1
                reason = f"document {document_id!r} ({number} of {total}): {reason}"
            error = f"{reason}; nothing from {source} was stored or removed."
            return [IngestResult(document_id, source, "failed", error=error)]
        _report(progress, total, total)
        if written:
            log.info(
                "indexed %d documents of %s: %d chunks",
                len(written),
                source,
                sum(written.values()),
            )
        results = [
            IngestResult(i, source, "indexed", chunks=written[i])
            if i in written
            else IngestResult(i, source, "unchanged")
            for i in ids
        ]
        return results + [IngestResult(i, source, "removed") for i in removed]

    def _bulk(self, chunks: int) -> bool:
        """Whether writing ``chunks`` new chunks is cheaper with the HNSW index built afterwards."""
        threshold = self._settings.bulk_load_chunks
        if threshold == 0 or chunks < threshold:
            return False
        return chunks >= threshold + _REBUILD_SHARE * self._store.count_chunks()

    def _expected_chunks(self, version: _Version) -> int:
        step = self._settings.chunk_size - self._settings.chunk_overlap
        return max(1, math.ceil(len(version.document.text) / step))

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

    def _batches(
        self, versions: Sequence[_Version], collection: str, source: str
    ) -> Iterator[list[DocumentWrite]]:
        """The versions as documents to write, chunked, tokenised and embedded, a batch at a time.

        Kiwi analyses the texts on its worker threads ahead of the batch being embedded and
        written.
        """
        analyses = analyse_many([v.document.text for v in versions])
        pending: list[tuple[_Version, list[TextChunk], list[list[str]]]] = []
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
            if count >= _BATCH_CHUNKS:
                yield self._documents(pending, collection, source)
                pending, count = [], 0
        if pending:
            yield self._documents(pending, collection, source)

    def _documents(
        self,
        pending: Sequence[tuple[_Version, list[TextChunk], list[list[str]]]],
        collection: str,
        source: str,
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
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
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


def _report(progress: DocumentProgress | None, done: int, total: int) -> None:
    if progress is None:
        return
    try:
        progress(done, total)
    except Exception as exc:
        raise _ProgressFailed(exc) from exc


def _is_current(stored: StoredVersion | None, version: _Version) -> bool:
    return (
        stored is not None
        and stored.status == "ready"
        and stored.content_hash == version.content_hash
    )


def _to_write(versions: Sequence[_Version], stored: dict[str, StoredVersion]) -> list[_Version]:
    return [v for v in versions if not _is_current(stored.get(v.document_id), v)]


def _named_document(exc: Exception) -> str | None:
    """The document a store error names, if it names one."""
    named = exc.params.get("document_id") if isinstance(exc, RagError) else None
    return named if isinstance(named, str) else None


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
