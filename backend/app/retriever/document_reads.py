"""The SQL that reads documents and collections: one record, lists, pages, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from app.core.errors import Conflict, InvalidInput
from app.retriever.types import DocumentRecord

_DOCUMENT_COLUMNS = (
    "id, collection, source, title, content_hash, status, error, chunk_count, size_bytes,"
    " metadata, created_at, updated_at"
)


class DocumentKey(NamedTuple):
    """A document's place in the list, newest first: its creation time, then its id."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """One page of the document list and how many documents the whole list holds."""

    documents: list[DocumentRecord]
    total: int
    next_after: DocumentKey | None
    """Where the next page starts; ``None`` on the last page."""


def get_document(
    conn: psycopg.Connection, document_id: str, collection: str
) -> DocumentRecord | None:
    """One document of ``collection``, or ``None``."""
    row = conn.execute(
        f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = %s AND collection = %s",
        (document_id, collection),
    ).fetchone()
    return None if row is None else DocumentRecord(*row)


def documents_with_id(conn: psycopg.Connection, document_id: str) -> list[DocumentRecord]:
    """The documents with ``document_id``, one per collection holding one, by collection."""
    rows = conn.execute(
        f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = %s ORDER BY collection",
        (document_id,),
    ).fetchall()
    return [DocumentRecord(*row) for row in rows]


def collection_of(conn: psycopg.Connection, document_id: str, collection: str | None) -> str | None:
    """``collection``, or when it is ``None`` the one collection holding ``document_id`` (``None``
    if none does); ``Conflict`` when several do, as the id alone does not say which is meant."""
    if collection is not None:
        return collection
    rows = conn.execute(
        "SELECT collection FROM documents WHERE id = %s LIMIT 2", (document_id,)
    ).fetchall()
    if len(rows) > 1:
        raise ambiguous_document(document_id)
    return rows[0][0] if rows else None


def ambiguous_document(document_id: str) -> Conflict:
    """The error for an id that several collections hold, asked for without a collection."""
    return Conflict(
        f"Several collections hold a document with id {document_id!r}; name the collection.",
        code="document_ambiguous",
        params={"document_id": document_id},
    )


def list_documents(conn: psycopg.Connection, collection: str | None) -> list[DocumentRecord]:
    """Documents of one collection (or all), ordered by collection and source."""
    query = f"SELECT {_DOCUMENT_COLUMNS} FROM documents"
    params: tuple[Any, ...] = ()
    if collection is not None:
        query += " WHERE collection = %s"
        params = (collection,)
    rows = conn.execute(query + " ORDER BY collection, source, id", params).fetchall()
    return [DocumentRecord(*row) for row in rows]


def page_documents(
    conn: psycopg.Connection, collection: str | None, limit: int, after: DocumentKey | None
) -> DocumentPage:
    """Up to ``limit`` documents newest first, starting after ``after``, and the count of all."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number, not {limit!r}.")
    scope = sql.SQL("TRUE")
    scope_params: list[Any] = []
    if collection is not None:
        scope = sql.SQL("collection = %s")
        scope_params = [collection]
    position = sql.SQL("TRUE")
    position_params: list[Any] = []
    if after is not None:
        position = sql.SQL("(created_at, id) < (%s, %s)")
        position_params = [after.created_at, after.id]
    # One row past the page says whether another page follows.
    query = sql.SQL(
        "SELECT {columns} FROM documents WHERE {scope} AND {position}"
        " ORDER BY created_at DESC, id DESC LIMIT %s"
    ).format(columns=sql.SQL(_DOCUMENT_COLUMNS), scope=scope, position=position)
    rows = conn.execute(query, [*scope_params, *position_params, limit + 1]).fetchall()
    count = conn.execute(
        sql.SQL("SELECT count(*) FROM documents WHERE {}").format(scope), scope_params
    ).fetchone()
    documents = [DocumentRecord(*row) for row in rows[:limit]]
    last = documents[-1] if len(rows) > limit else None
    return DocumentPage(
        documents=documents,
        total=int(count[0]) if count else 0,
        next_after=DocumentKey(last.created_at, last.id) if last else None,
    )


def document_ids_from(conn: psycopg.Connection, collection: str, source: str) -> list[str]:
    """Ids of the documents read from ``source`` into ``collection``."""
    rows = conn.execute(
        "SELECT id FROM documents WHERE collection = %s AND source = %s ORDER BY id",
        (collection, source),
    ).fetchall()
    return [row[0] for row in rows]


def list_collections(conn: psycopg.Connection) -> list[str]:
    """Names of the collections that hold at least one document, sorted."""
    rows = conn.execute(
        "SELECT name FROM collections c"
        " WHERE EXISTS (SELECT 1 FROM documents d WHERE d.collection = c.name)"
        " ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


def count_chunks(conn: psycopg.Connection, collection: str | None) -> int:
    """Number of searchable chunks, in one collection or in all."""
    query = "SELECT count(*) FROM chunks"
    params: tuple[Any, ...] = ()
    if collection is not None:
        query += " WHERE collection = %s"
        params = (collection,)
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0
