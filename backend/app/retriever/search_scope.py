"""What dense and sparse search share: which chunks a search covers, its k, and its rows as hits.

A search covers one collection or all, narrowed by metadata filters: equality on each key (a
list means any of its values), written as JSON containment so that the GIN index on
``chunks.metadata`` answers it.
"""

from __future__ import annotations

import math
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from app.core.errors import InvalidInput
from app.retriever.types import SearchHit

_FilterValue = str | int | float | bool


def check_k(k: int) -> None:
    """Raise ``InvalidInput`` unless ``k`` is a positive whole number."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive whole number, not {k!r}.")


def hit_from_row(row: tuple[Any, ...]) -> SearchHit:
    """A hit from a row of ``(chunk id, document id, text, metadata, score)``."""
    chunk_id, document_id, text, metadata, score = row
    return SearchHit(
        document_id=document_id,
        chunk_id=str(chunk_id),
        text=text,
        score=float(score),
        metadata=metadata,
    )


def scope(
    collection: str | None, filters: dict[str, Any] | None
) -> tuple[sql.Composable | None, list[Any]]:
    """The WHERE condition on ``chunks c`` for a collection and metadata filters; ``None``: all."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    if collection is not None:
        clauses.append(sql.SQL("c.collection = %s"))
        params.append(collection)
    if filters:
        clause, filter_params = metadata_filter(filters, sql.SQL("c.metadata"))
        clauses.append(clause)
        params += filter_params
    if not clauses:
        return None, []
    return sql.SQL(" AND ").join(clauses), params


def metadata_filter(
    filters: dict[str, Any] | None, column: sql.Composable
) -> tuple[sql.Composable, list[Any]]:
    """Equality on each key (a list means any of its values), as indexable JSON containment."""
    if not filters:
        return sql.SQL("TRUE"), []
    if not isinstance(filters, dict):
        raise InvalidInput("Filters must be an object of metadata keys and values.")
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput("Filter keys must be non-empty strings.")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise InvalidInput(f"The filter on {key!r} lists no values.")
        for item in values:
            if not isinstance(item, _FilterValue) or (
                isinstance(item, float) and not math.isfinite(item)
            ):
                raise InvalidInput(
                    f"The filter on {key!r} must be a string, number or boolean, or a list of "
                    f"them; got {item!r}."
                )
        containment = sql.SQL("{} @> %s").format(column)
        clauses.append(sql.SQL("({})").format(sql.SQL(" OR ").join([containment] * len(values))))
        params += [Jsonb({key: item}) for item in values]
    return sql.SQL(" AND ").join(clauses), params
