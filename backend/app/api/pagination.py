"""Paged lists of the API: the bounds of ``limit`` and the opaque ``cursor`` of the next page.

A list that pages is ordered newest first by (creation time, id); the cursor is where the last
page ended, as URL-safe base64 of that pair. Clients pass it back as it came and never read it,
so its form may change; one that does not decode is ``invalid_cursor`` (422).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated

from fastapi import Query

from app.core.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Most items in the page (1-{MAX_LIMIT}).")
]
Cursor = Annotated[
    str | None,
    Query(max_length=1000, description="`next_cursor` of the previous page; none: the first."),
]


def encode_cursor(created_at: datetime, item_id: str) -> str:
    """The cursor of the page that follows the item created at ``created_at`` with ``item_id``."""
    text = json.dumps([created_at.isoformat(), item_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of a cursor made by ``encode_cursor``; ``InvalidInput`` otherwise."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created, item_id = decoded if isinstance(decoded, list) else (None, None)
        created_at = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError):
        created_at, item_id = None, None
    if created_at is None or created_at.tzinfo is None or not isinstance(item_id, str):
        raise InvalidInput(
            "The cursor is not one this server gave out; start again from the first page.",
            code="invalid_cursor",
        )
    return created_at, item_id
