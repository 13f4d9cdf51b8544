"""What a file's documents are to become in the store: normalised, with stable ids and content hashes.

Every string stored (text, title, metadata keys and values, id, source) passes the text boundary
of ``app.text`` here, so PostgreSQL is never handed NUL or a lone surrogate and decomposed Hangul
is stored composed, as queries are. A document's id is the one its file gives (a ``.jsonl``
line's ``id``) or one derived from its collection and source. Its content hash covers everything
that shapes the stored chunks (text, title, metadata, pages, chunking settings, embedder,
``INDEX_VERSION``), so an unchanged document can be told from a changed one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.core.config import RetrievalSettings
from app.core.errors import InvalidInput
from app.retriever.loaders import LoadedDocument
from app.retriever.loaders.common import stem
from app.retriever.store_writes import StoredVersion
from app.text import normalize_json, normalize_line, normalize_text

# Bump when chunking, tokenising or chunk metadata change: every document is then re-indexed
# on its next ingest instead of being reported unchanged.
INDEX_VERSION = 3


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One document of a file as it is to be stored: normalised, with its id and content hash."""

    document_id: str
    document: LoadedDocument
    metadata: dict[str, Any]
    size_bytes: int
    content_hash: str


def derive_document_id(collection: str, source: str, part: int | None = None) -> str:
    """The stable id of the document read from ``source`` (``part``: its position in a multi-document file)."""
    key = "\x1f".join([collection, source] if part is None else [collection, source, str(part)])
    return "doc_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def file_versions(
    documents: Sequence[LoadedDocument],
    *,
    collection: str,
    source: str,
    extra: dict[str, Any],
    file_bytes: int,
    settings: RetrievalSettings,
    embedder_name: str,
) -> list[DocumentVersion]:
    """The versions of a file's ``documents``; ``extra`` is metadata given for the whole file."""
    several = len(documents) > 1
    versions = []
    for part, loaded in enumerate(documents):
        document = _normalised(loaded, source)
        document_id = document.id or derive_document_id(
            collection, source, part if several else None
        )
        metadata = plain_json({**extra, **normalize_json(document.metadata)})
        size = len(document.text.encode("utf-8")) if several else file_bytes
        shaping = {
            "index_version": INDEX_VERSION,
            "collection": collection,
            "source": source,
            "title": document.title,
            "text": document.text,
            "metadata": metadata,
            "page_starts": document.page_starts,
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "embedder": embedder_name,
        }
        encoded = json.dumps(shaping, sort_keys=True, ensure_ascii=False).encode("utf-8")
        content_hash = hashlib.sha256(encoded).hexdigest()
        versions.append(DocumentVersion(document_id, document, metadata, size, content_hash))
    return versions


def is_current(stored: StoredVersion | None, version: DocumentVersion) -> bool:
    """Whether the store already holds ``version``, ready."""
    return (
        stored is not None
        and stored.status == "ready"
        and stored.content_hash == version.content_hash
    )


def to_write(
    versions: Sequence[DocumentVersion], stored: dict[str, StoredVersion]
) -> list[DocumentVersion]:
    """The versions the store does not hold yet."""
    return [v for v in versions if not is_current(stored.get(v.document_id), v)]


def plain_json(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` unchanged; ``InvalidInput`` unless it is plain JSON."""
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be plain JSON: {exc}") from None
    return metadata


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
