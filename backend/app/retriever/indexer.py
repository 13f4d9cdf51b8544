"""Documents in: load → normalise → chunk → search tokens → embed → store.

Every string stored passes the text boundary of ``app.text`` first, and each document gets a
stable id and a content hash (``document_versions``). Ingesting is idempotent: an unchanged
document is skipped and a changed one is re-indexed in place. A document the file no longer
holds (a line taken out of a ``.jsonl``) is removed only when the ingest asks to replace what
the file held (``replace=True``); otherwise a file adds and updates, and never removes. A file of one document is handled under the
store's lock on that document, a file of several under a lock on the file, so concurrent uploads
of one file index it once.

A document's new version becomes visible whole, its row and chunks in one transaction: until
then, and for good if it fails, the previous version stays searchable under its own metadata.
A file of several documents (``.jsonl``, row-wise ``.csv``) is stored whole or not at all: its
documents are analysed, embedded (``document_batches``, a batch ahead of the database) and
written in batches by COPY inside one transaction, with the file's stale documents (on
``replace``) removed in it too. A document that cannot be stored fails the file and leaves what was stored from it before
as it was. A write large next to what the store holds runs as a bulk load: the HNSW index is
built once after the rows instead of being updated row by row (``RETRIEVAL_BULK_LOAD_CHUNKS``).

Each file gets its own results. Only ``DatabaseUnavailable`` escapes a folder's ingest: any
other failure, a bug in a loader included, is the failed result of that file alone. The
exception of a progress callback is the other exception: it propagates, the file's unfinished
transaction is rolled back, and the store keeps the previous versions whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from app.core.config import ParseSettings, RetrievalSettings
from app.core.errors import (
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    RagError,
    TooLarge,
)
from app.core.logger import get_logger
from app.models.base import EmbeddingClient
from app.retriever.document_batches import DocumentBatches
from app.retriever.document_versions import (
    DocumentVersion,
    file_versions,
    is_current,
    plain_json,
    to_write,
)
from app.retriever.loaders import is_supported
from app.retriever.parsing import ParseLimits, parse_bounded
from app.retriever.types import IngestResult
from app.retriever.vector_store import PGVectorStore
from app.text import normalize_json, normalize_line, normalize_text

log = get_logger(__name__)

MAX_COLLECTION_CHARS = 100
# Building the HNSW index costs about this share, per stored chunk, of inserting one new vector
# into it; so a bulk load pays once the new chunks pass the empty-store crossover
# (RETRIEVAL_BULK_LOAD_CHUNKS) plus this share of the chunks already stored. Measured in server
# CPU (768-d hash vectors): next to 2,000 stored chunks a rebuild costs 0.85 s, an insert 4.4 ms
# (share 0.1); next to 20,000, 4,000 new chunks cost 25.5 s inserted and 27.5 s rebuilt (0.2).
_REBUILD_SHARE = 0.2

Progress = Callable[[int, int, str], None]
DocumentProgress = Callable[[int, int], None]


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
        self._settings = settings
        self._max_file_bytes = max_file_bytes
        self._parse_limits = parse_limits or ParseLimits.from_settings(ParseSettings())
        self._rows = DocumentBatches(embedder, settings, embed_batch=batch_size)

    def ingest_bytes(
        self,
        filename: str,
        data: bytes,
        *,
        collection: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        progress: DocumentProgress | None = None,
        replace: bool = False,
    ) -> list[IngestResult]:
        """Index every document in one file; ``source`` (default ``filename``) names it in the index.

        With ``replace``, documents stored earlier from the same source and collection that the
        file no longer holds are deleted and reported as ``removed``; without it they stay. Raises ``TooLarge``, ``Unsupported`` or
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
            return self._ingest_bytes(
                filename, data, collection, source, metadata, progress, replace
            )
        except _ProgressFailed as failed:
            raise failed.error from None

    def ingest_path(
        self,
        path: Path,
        *,
        collection: str | None = None,
        progress: Progress | None = None,
        document_progress: DocumentProgress | None = None,
        replace: bool = False,
    ) -> list[IngestResult]:
        """Index a file, or every supported file under a folder (recursively, hidden ones skipped).

        A file that cannot be read or stored, for whatever reason, is reported as ``failed`` and
        the rest go on; only ``DatabaseUnavailable`` stops the walk. Sources are paths relative
        to the folder, so re-ingesting the folder updates the same documents.
        ``progress(done, total, source)`` is called after each file, ``document_progress``
        as ``ingest_bytes``'s ``progress`` within each file; what either raises propagates.
        ``replace`` is ``ingest_bytes``'s, for each file.
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
                results += self._ingest_file(file, source, collection, document_progress, replace)
            except _ProgressFailed as failed:
                raise failed.error from None
            if progress is not None:
                progress(done, len(files), source)
        return results

    def delete(self, document_id: str, *, collection: str | None = None) -> None:
        """Delete a document and its chunks; ``NotFound`` if there is no such document.

        ``collection`` may be left out when one collection holds the id (``Conflict`` otherwise).
        """
        with self._store.document_lock(document_id):
            if not self._store.delete_document(document_id, collection=collection):
                raise NotFound(f"No document with id {document_id!r}.", code="document_not_found")

    def _ingest_bytes(
        self,
        filename: str,
        data: bytes,
        collection: str | None,
        source: str | None,
        metadata: dict[str, Any] | None,
        progress: DocumentProgress | None,
        replace: bool,
    ) -> list[IngestResult]:
        filename = normalize_line(filename)
        if self._max_file_bytes is not None and len(data) > self._max_file_bytes:
            raise TooLarge.file(filename, len(data), self._max_file_bytes)
        collection = self._collection(collection)
        source = normalize_line(source or filename)
        if not source:
            raise InvalidInput("A file to index needs a name.")
        extra = normalize_json(plain_json(metadata or {}))
        documents = parse_bounded(filename, data, self._parse_limits)
        versions = file_versions(
            documents,
            collection=collection,
            source=source,
            extra=extra,
            file_bytes=len(data),
            settings=self._settings,
            embedder_name=self._embedder.name,
        )
        if len(versions) > 1:
            return self._ingest_whole(versions, collection, source, progress, replace)
        results = [self._ingest_document(versions[0], collection, source, progress)]
        if not replace:
            return results
        return results + self._remove_stale(collection, source, {versions[0].document_id})

    def _remove_stale(
        self, collection: str, source: str, kept: set[str | None]
    ) -> list[IngestResult]:
        removed = []
        for document_id in self._store.document_ids_from(collection, source):
            if document_id in kept:
                continue
            with self._store.document_lock(document_id):
                if self._store.delete_document(document_id, collection=collection):
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
        replace: bool,
    ) -> list[IngestResult]:
        # Undecodable bytes of a file name arrive as lone surrogates; results name it storably.
        source = normalize_line(source)
        try:
            if self._max_file_bytes is not None and file.stat().st_size > self._max_file_bytes:
                raise TooLarge.file(source, file.stat().st_size, self._max_file_bytes)
            data = file.read_bytes()
            return self._ingest_bytes(file.name, data, collection, source, None, progress, replace)
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

    def _ingest_document(
        self,
        version: DocumentVersion,
        collection: str,
        source: str,
        progress: DocumentProgress | None,
    ) -> IngestResult:
        document_id = version.document_id
        with self._store.document_lock(document_id):
            stored = self._store.document_versions(collection, [document_id]).get(document_id)
            if is_current(stored, version):
                result = IngestResult(document_id, source, "unchanged")
            else:
                result = self._write_document(version, collection, source)
        _report(progress, 1, 1)
        return result

    def _write_document(
        self, version: DocumentVersion, collection: str, source: str
    ) -> IngestResult:
        """Store one document's new version; on failure its previous version stays, marked failed."""
        document_id = version.document_id
        try:
            [batch] = list(self._rows.batches([version], collection, source))
            chunks = len(batch[0].chunks)
            with self._store.bulk_load() if self._bulk(chunks) else nullcontext():
                self._store.write_documents(batch)
        except DatabaseUnavailable:
            raise
        # Whatever breaks (the embedding provider, a value the database refuses, a bug), nothing
        # of the new version was stored; the document is marked failed with the reason, and its
        # previous version stays as it was.
        except Exception as exc:
            reason = self._logged_failure(exc, source, document_id)
            self._record_failure(version, collection, source, reason)
            return IngestResult(document_id, source, "failed", error=reason)
        log.info("indexed %s as %s: %d chunks", source, document_id, chunks)
        return IngestResult(document_id, source, "indexed", chunks=chunks)

    def _record_failure(
        self, version: DocumentVersion, collection: str, source: str, reason: str
    ) -> None:
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
            self._store.mark_failed(version.document_id, reason, collection=collection)

    def _ingest_whole(
        self,
        versions: list[DocumentVersion],
        collection: str,
        source: str,
        progress: DocumentProgress | None,
        replace: bool,
    ) -> list[IngestResult]:
        """Store every document of a multi-document file in one transaction, or none of them."""
        total = len(versions)
        ids = [v.document_id for v in versions]
        written: dict[str, int] = {}
        removed: list[str] = []
        try:
            # A first look sizes the write; under the file's lock the states are read again, as
            # a concurrent upload of the same file may have stored some documents meanwhile.
            todo = to_write(versions, self._store.document_versions(collection, ids))
            bulk = self._bulk(sum(self._expected_chunks(v) for v in todo))
            if todo:
                self._store.ensure_collection(collection)
            with (
                self._store.document_lock(_file_lock_name(collection, source)),
                self._store.bulk_load() if bulk else nullcontext(),
                self._store.atomic(),
            ):
                todo = to_write(versions, self._store.document_versions(collection, ids))
                done = total - len(todo)
                for batch in self._rows.batches(todo, collection, source):
                    self._store.write_documents(batch)
                    written.update((d.document_id, len(d.chunks)) for d in batch)
                    done += len(batch)
                    if done < total:
                        _report(progress, done, total)
                if replace:
                    removed = self._store.delete_documents_from(collection, source, keep=ids)
        except (DatabaseUnavailable, _ProgressFailed):
            raise
        except Exception as exc:
            document_id = _named_document(exc)
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

    def _expected_chunks(self, version: DocumentVersion) -> int:
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


def _report(progress: DocumentProgress | None, done: int, total: int) -> None:
    if progress is None:
        return
    try:
        progress(done, total)
    except Exception as exc:
        raise _ProgressFailed(exc) from exc


def _named_document(exc: Exception) -> str | None:
    """The document a store error names, if it names one."""
    named = exc.params.get("document_id") if isinstance(exc, RagError) else None
    return named if isinstance(named, str) else None


def failure_reason(exc: Exception) -> str:
    """What a failed result says about ``exc``: the message of the application's own errors,
    the type and text of anything else, normalised so that it can be stored and shown."""
    reason = exc.message if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
    return normalize_text(reason).strip() or type(exc).__name__


def _file_lock_name(collection: str, source: str) -> str:
    # The lock of a whole file; \x1f cannot occur in a normalised document id, so no id clashes.
    return f"file\x1f{collection}\x1f{source}"


def _wanted(relative: Path) -> bool:
    # Hidden files and folders (.git, .DS_Store) and office lock files (~$report.docx) are not documents.
    return is_supported(relative.name) and not any(
        part.startswith((".", "~$")) for part in relative.parts
    )
