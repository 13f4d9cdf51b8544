"""Sparse search: Okapi BM25 (k1 1.2, b 0.75) from postings and maintained statistics alone.

The caller supplies the search tokens (Kiwi morphemes and eojeol stems). The number of chunks,
their average length and the document frequencies are those of the searched collection (all
collections when none is named); metadata filters narrow the results, not those statistics.

Statistics: ``collection_stats`` (chunks and tokens per collection) and ``term_stats`` (document
frequency per term and collection), kept by triggers as chunks and postings change (migration
0006). A search reads those and the postings of its terms; each posting carries its chunk's
collection and token count, so nothing scans ``chunks``.

Frequent terms. A term held by more than ``FREQUENT_SHARE`` of the searched chunks, and by more
than ``FREQUENT_MIN_DF`` of them, is *frequent* (in 100k NSMC reviews: 영화, 보, 있, 좋, 하, 없,
재밌, 되, 같): its postings are not read. Candidates are the chunks that hold one of the query's other terms
(when every term is frequent, the rarest one is read), ranked by those terms' BM25; the best
``candidates_for(k)`` of them then get the frequent terms' part by an index probe per chunk and
term, and the ``k`` best of the complete scores are returned. Every score returned is the
chunk's full BM25; what the rule gives up is the chunks that hold frequent terms only, whose
score is small (a frequent term's idf is below ln(1 / FREQUENT_SHARE), 3.0), and the order
among candidates beyond the probed ones. Below ``FREQUENT_MIN_DF`` a list is cheap to read, so
small collections (KorQuAD's 906 chunks, the tests' corpora) are ranked exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from app.retriever.search_scope import hit_from_row, metadata_filter
from app.retriever.types import SearchHit

BM25_K1 = 1.2
BM25_B = 0.75
FREQUENT_SHARE = 0.05
FREQUENT_MIN_DF = 2000


def search_sparse(
    conn: psycopg.Connection,
    term_counts: dict[str, int],
    *,
    k: int,
    collection: str | None,
    filters: dict[str, Any] | None,
    frequent_share: float = FREQUENT_SHARE,
    frequent_min_df: int = FREQUENT_MIN_DF,
) -> list[SearchHit]:
    """The ``k`` chunks with the highest BM25 score for the query's ``term_counts`` (term →
    times in the query); ``score`` is that score. One statement."""
    if not term_counts:
        return []
    narrowed, filter_params = (
        metadata_filter(filters, sql.SQL("c.metadata")) if filters else (None, [])
    )
    query, params = sparse_query(
        list(term_counts),
        list(term_counts.values()),
        k=k,
        collection=collection,
        metadata_filter=narrowed,
        filter_params=filter_params,
        frequent_share=frequent_share,
        frequent_min_df=frequent_min_df,
    )
    return [hit_from_row(row) for row in conn.execute(query, params).fetchall()]


def candidates_for(k: int) -> int:
    """How many of the best candidates get their frequent terms' part added."""
    return max(4 * k, 100)


def sparse_query(
    terms: Sequence[str],
    query_counts: Sequence[int],
    *,
    k: int,
    collection: str | None,
    metadata_filter: sql.Composable | None,
    filter_params: Sequence[Any],
    frequent_share: float = FREQUENT_SHARE,
    frequent_min_df: int = FREQUENT_MIN_DF,
) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters of a BM25 top-``k`` over ``terms``.

    ``metadata_filter`` is a condition on ``c.metadata`` of the chunk; it narrows the results
    without changing the statistics, which are those of ``collection`` (all when ``None``).
    """
    scoped = collection is not None
    in_collection = sql.SQL("collection = %s" if scoped else "TRUE")
    posting_in_collection = sql.SQL("p.collection = %s" if scoped else "TRUE")
    narrowed = sql.SQL("TRUE")
    if metadata_filter is not None:
        narrowed = sql.SQL("p.chunk_id IN (SELECT c.id FROM chunks c WHERE {})").format(
            metadata_filter
        )
    # The BM25 part of one posting p of a term w (w.idf already carries the query's count).
    part = sql.SQL(
        "w.idf * p.tf * (%s + 1) / (p.tf + %s * (1 - %s + %s * p.token_count / w.avgdl))"
    )
    part_params = [BM25_K1, BM25_K1, BM25_B, BM25_B]
    query = sql.SQL(
        """
        WITH stats AS (
            SELECT sum(chunks)::float8 AS n,
                   sum(tokens)::float8 / nullif(sum(chunks), 0) AS avgdl
            FROM collection_stats WHERE {in_collection}
        ),
        weights AS (
            SELECT q.term, q.qtf * ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf, s.avgdl,
                   d.df > greatest(%s * s.n, %s) AND row_number() OVER (ORDER BY d.df, q.term) > 1
                       AS frequent
            FROM unnest(%s::text[], %s::int[]) AS q (term, qtf)
            JOIN (
                SELECT term, sum(df)::float8 AS df FROM term_stats
                WHERE term = ANY(%s::text[]) AND {in_collection}
                GROUP BY term HAVING sum(df) > 0
            ) d USING (term)
            CROSS JOIN stats s
        ),
        -- One term to read: each chunk has one posting, so nothing to add up.
        candidates AS (
            SELECT p.chunk_id, p.collection, {part} AS partial
            FROM weights w JOIN chunk_terms p ON p.term = w.term AND {posting_in_collection}
            WHERE NOT w.frequent AND {narrowed}
                AND (SELECT count(*) FROM weights WHERE NOT frequent) = 1
            ORDER BY partial DESC, p.chunk_id
            LIMIT %s
        ),
        summed_candidates AS (
            SELECT p.chunk_id, p.collection, sum({part}) AS partial
            FROM weights w JOIN chunk_terms p ON p.term = w.term AND {posting_in_collection}
            WHERE NOT w.frequent AND {narrowed}
                AND (SELECT count(*) FROM weights WHERE NOT frequent) > 1
            GROUP BY p.chunk_id, p.collection
            ORDER BY partial DESC, p.chunk_id
            LIMIT %s
        ),
        top AS (
            SELECT c.chunk_id, c.partial + coalesce(f.part, 0) AS score
            FROM (SELECT * FROM candidates UNION ALL SELECT * FROM summed_candidates) c
            LEFT JOIN LATERAL (
                SELECT sum({part}) AS part
                FROM weights w JOIN chunk_terms p
                    ON p.term = w.term AND p.collection = c.collection AND p.chunk_id = c.chunk_id
                WHERE w.frequent
            ) f ON TRUE
            ORDER BY score DESC, c.chunk_id
            LIMIT %s
        )
        SELECT c.id, c.document_id, c.text, c.metadata, top.score
        FROM top JOIN chunks c ON c.id = top.chunk_id
        ORDER BY top.score DESC, c.id
        """
    ).format(
        in_collection=in_collection,
        posting_in_collection=posting_in_collection,
        narrowed=narrowed,
        part=part,
    )
    scope = [collection] if scoped else []
    params: list[Any] = [*scope, frequent_share, frequent_min_df]
    params += [list(terms), list(query_counts), list(terms), *scope]
    for _ in ("candidates", "summed_candidates"):
        params += [*part_params, *scope, *filter_params, candidates_for(k)]
    params += [*part_params, k]
    return query, params
