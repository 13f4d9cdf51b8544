"""BM25 statistics kept at write time, and the scoring that reads them, on a real PostgreSQL.

The statistics (chunks and tokens per collection, document frequency per term and collection)
are kept by triggers; after any mix of writes they must equal a count made from scratch. The
scores must equal BM25 written out plainly in Python over the searched collection.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from app.retriever.search_sql import candidates_for
from app.retriever.store_writes import ChunkRow, DocumentWrite
from app.retriever.vector_store import BM25_B, BM25_K1, PGVectorStore
from tests.conftest import StoreFactory, drop_schema, new_schema_name
from tests.utils.old_schemas import migrate_before

DIM = 8


def rows(*texts: str, **metadata: Any) -> list[ChunkRow]:
    """Chunks whose search tokens are their whitespace-separated words."""
    vector = np.ones(DIM, dtype=np.float32)
    return [ChunkRow(i, text, text.split(), vector, dict(metadata)) for i, text in enumerate(texts)]


def write(
    store: PGVectorStore,
    document_id: str,
    chunks: Sequence[ChunkRow],
    *,
    collection: str = "a",
    version: str = "v1",
    metadata: dict[str, Any] | None = None,
) -> None:
    """Store one version of a document in two steps, as a single-document ingest does."""
    store.begin_document(
        document_id=document_id,
        collection=collection,
        source=f"{document_id}.txt",
        title=document_id,
        content_hash=version,
        size_bytes=10,
        metadata=metadata or {},
    )
    store.replace_chunks(document_id, version, chunks)


def document(document_id: str, chunks: Sequence[ChunkRow], collection: str = "a") -> DocumentWrite:
    return DocumentWrite(
        document_id=document_id,
        collection=collection,
        source="many.jsonl",
        title=document_id,
        content_hash="v1",
        size_bytes=10,
        metadata={},
        chunks=chunks,
    )


@pytest.fixture
def connect(pg_url: str) -> Iterator[Any]:
    opened: list[psycopg.Connection] = []

    def make(store: PGVectorStore) -> psycopg.Connection:
        conn = psycopg.connect(pg_url, autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(store.schema)))
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def kept(conn: psycopg.Connection) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str], int]]:
    """The maintained statistics, summed over their rows; keys whose sum is 0 left out."""
    collections = {
        name: (int(chunks), int(tokens))
        for name, chunks, tokens in conn.execute(
            "SELECT collection, sum(chunks), sum(tokens) FROM collection_stats GROUP BY 1"
        )
        if chunks or tokens
    }
    terms = {
        (term, name): int(df)
        for term, name, df in conn.execute(
            "SELECT term, collection, sum(df) FROM term_stats GROUP BY 1, 2"
        )
        if df
    }
    return collections, terms


def recounted(
    conn: psycopg.Connection,
) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str], int]]:
    """The same statistics counted from the chunks and postings themselves."""
    collections = {
        name: (int(chunks), int(tokens))
        for name, chunks, tokens in conn.execute(
            "SELECT collection, count(*), sum(token_count) FROM chunks GROUP BY 1"
        )
    }
    terms = {
        (term, name): int(df)
        for term, name, df in conn.execute(
            "SELECT term, collection, count(*) FROM chunk_terms GROUP BY 1, 2"
        )
    }
    return collections, terms


def test_statistics_follow_inserts_updates_and_deletes_in_two_collections(
    store_factory: StoreFactory, connect: Any
) -> None:
    store = store_factory(dimension=DIM)
    conn = connect(store)
    write(store, "d1", rows("apple pie", "apple apple tart"))
    write(store, "d2", rows("pie crust"), collection="b")
    store.write_documents(
        [
            document("m1", rows("tart tatin", "apple")),
            document("m2", rows("crust"), collection="b"),
        ]
    )
    collections, terms = kept(conn)
    assert (collections, terms) == recounted(conn)
    assert collections == {"a": (4, 8), "b": (2, 3)}
    assert terms[("apple", "a")] == 3
    assert terms[("pie", "a")] == 1 and terms[("pie", "b")] == 1
    assert terms[("crust", "b")] == 2

    write(store, "d1", rows("plum"), version="v2")
    store.write_documents([document("m2", rows("crust crust pie"), collection="b")])
    assert kept(conn) == recounted(conn)
    assert kept(conn)[0] == {"a": (3, 4), "b": (2, 5)}

    assert store.delete_document("d2")
    store.delete_documents_from("a", "many.jsonl", keep=[])
    assert kept(conn) == recounted(conn)
    assert kept(conn) == (
        {"a": (1, 1), "b": (1, 3)},
        {("plum", "a"): 1, ("crust", "b"): 1, ("pie", "b"): 1},
    )

    assert store.delete_document("d1")
    assert store.delete_document("m2")
    assert kept(conn) == ({}, {})


def test_a_rolled_back_write_leaves_the_statistics_as_they_were(
    store_factory: StoreFactory, connect: Any
) -> None:
    store = store_factory(dimension=DIM)
    conn = connect(store)
    write(store, "d1", rows("apple pie"))
    before = kept(conn)

    class Stop(Exception):
        pass

    with pytest.raises(Stop), store.atomic():
        store.write_documents([document("m1", rows("apple tart"))])
        raise Stop
    assert kept(conn) == before == recounted(conn)


def test_concurrent_writers_never_wait_on_each_other_and_both_count(
    store_factory: StoreFactory, connect: Any
) -> None:
    store = store_factory(dimension=DIM)
    conn = connect(store)
    write(store, "d0", rows("shared first"))
    first_wrote, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with store.atomic():
                store.write_documents([document("m1", rows("shared apple"))])
                first_wrote.set()
                # The transaction stays open, its statistics rows written, until the second
                # writer has finished: it must not have waited for this one.
                if not second_done.wait(timeout=60):
                    raise AssertionError("the second writer waited for the first")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_wrote.wait(timeout=60)
    store.write_documents([document("m2", rows("shared pear"))])
    second_done.set()
    thread.join(timeout=60)
    assert not errors
    collections, terms = kept(conn)
    assert (collections, terms) == recounted(conn)
    assert terms[("shared", "a")] == 3
    slots = conn.execute("SELECT count(*) FROM term_stats WHERE term = 'shared'").fetchone()
    assert slots is not None and slots[0] == 2


def bm25(
    query: Sequence[str], corpus: dict[str, list[str]], scope: Sequence[str]
) -> dict[str, float]:
    """Okapi BM25 of every chunk in ``scope`` with statistics over ``scope``; 0s left out."""
    n = len(scope)
    avgdl = sum(len(corpus[c]) for c in scope) / n
    df = Counter(term for c in scope for term in set(corpus[c]))
    scores = {}
    for c in scope:
        tf = Counter(corpus[c])
        score = 0.0
        for term in query:
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                norm = 1 - BM25_B + BM25_B * len(corpus[c]) / avgdl
                score += idf * tf[term] * (BM25_K1 + 1) / (tf[term] + BM25_K1 * norm)
        if score:
            scores[c] = score
    return scores


def ranked_with_frequent_rule(
    query: Sequence[str],
    corpus: dict[str, list[str]],
    scope: Sequence[str],
    ids: dict[str, int],
    *,
    k: int,
    share: float,
    candidates: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """The frequent-term rule of ``search_sql`` written out plainly, ``min_df`` 0."""
    full = bm25(query, corpus, scope)
    df = Counter(term for c in scope for term in set(corpus[c]))
    present = sorted({t for t in query if df[t]}, key=lambda t: (df[t], t))
    frequent = {t for t in present[1:] if df[t] > share * len(scope)}
    essential = [t for t in query if t in present and t not in frequent]
    partial = bm25(essential, corpus, scope)
    pool = [c for c in (candidates or scope) if c in partial]
    best = sorted(pool, key=lambda c: (-partial[c], ids[c]))[: candidates_for(k)]
    return sorted(((c, full[c]) for c in best), key=lambda hit: (-hit[1], ids[hit[0]]))[:k]


@pytest.fixture(scope="module")
def zipf_store(pg_url: str) -> Iterator[tuple[PGVectorStore, dict[str, list[str]], dict[str, int]]]:
    """400 chunks of Zipf-distributed words in collections a and b, searched with a frequent-term
    rule that applies at this size (share 0.2, no minimum)."""
    rng = np.random.default_rng(14)
    words = [f"w{i}" for i in range(60)]
    weights = 1.0 / np.arange(1, len(words) + 1)
    corpus = {
        f"chunk{i}": list(
            rng.choice(words, size=int(rng.integers(2, 16)), p=weights / weights.sum())
        )
        for i in range(400)
    }
    schema = new_schema_name("zipf")
    store = PGVectorStore(
        pg_url,
        dimension=DIM,
        embedder_name="test:8",
        schema=schema,
        frequent_term_share=0.2,
        frequent_term_min_df=0,
    )
    store.open()
    vector = np.ones(DIM, dtype=np.float32)
    store.write_documents(
        [
            DocumentWrite(
                document_id=name,
                collection="a" if i % 4 else "b",
                source="zipf.jsonl",
                title=name,
                content_hash="v1",
                size_bytes=1,
                metadata={"half": i % 2},
                chunks=[ChunkRow(0, name, tokens, vector, {})],
            )
            for i, (name, tokens) in enumerate(corpus.items())
        ]
    )
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        ids = {
            text: int(chunk_id) for chunk_id, text in conn.execute("SELECT id, text FROM chunks")
        }
    try:
        yield store, corpus, ids
    finally:
        store.close()
        drop_schema(pg_url, schema)


def in_collection(collection: str | None) -> list[str]:
    return [
        f"chunk{i}" for i in range(400) if collection is None or (collection == "a") == bool(i % 4)
    ]


@pytest.mark.parametrize(
    ("query", "collection", "k"),
    [
        (["w0", "w1", "w30"], "a", 5),
        (["w0", "w0", "w2", "w45"], "a", 50),
        (["w0", "w1"], "b", 10),
        (["w0", "w3", "w17"], None, 20),
        (["w59", "w58"], "a", 5),
    ],
)
def test_scores_are_bm25_with_the_frequent_term_rule(
    zipf_store: tuple[PGVectorStore, dict[str, list[str]], dict[str, int]],
    query: list[str],
    collection: str | None,
    k: int,
) -> None:
    store, corpus, ids = zipf_store
    expected = ranked_with_frequent_rule(
        query, corpus, in_collection(collection), ids, k=k, share=0.2
    )
    hits = store.search_sparse(query, k=k, collection=collection)
    assert [h.text for h in hits] == [name for name, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected], rel=1e-9)


def test_the_rule_leaves_out_chunks_holding_frequent_terms_only(
    zipf_store: tuple[PGVectorStore, dict[str, list[str]], dict[str, int]],
) -> None:
    store, corpus, _ = zipf_store
    scope = in_collection("a")
    df = Counter(term for c in scope for term in set(corpus[c]))
    assert df["w0"] > 0.2 * len(scope) and 0 < df["w40"] < 0.2 * len(scope)
    hits = store.search_sparse(["w0", "w40"], k=400, collection="a")
    assert {h.text for h in hits} == {c for c in scope if "w40" in corpus[c]}
    # Alone, the frequent term is the rarest of its query, so it is read.
    assert len(store.search_sparse(["w0"], k=400, collection="a")) == df["w0"]


def test_metadata_filters_narrow_the_candidates_without_changing_statistics(
    zipf_store: tuple[PGVectorStore, dict[str, list[str]], dict[str, int]],
) -> None:
    store, corpus, ids = zipf_store
    scope = in_collection("a")
    odd = [c for c in scope if int(c.removeprefix("chunk")) % 2]
    query = ["w0", "w2", "w9", "w33"]
    expected = ranked_with_frequent_rule(query, corpus, scope, ids, k=30, share=0.2, candidates=odd)
    hits = store.search_sparse(query, k=30, collection="a", filters={"half": 1})
    assert [h.text for h in hits] == [name for name, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected], rel=1e-9)
    assert all(h.metadata["half"] == 1 for h in hits)


def test_a_schema_of_the_previous_version_is_migrated_with_its_postings_and_statistics(
    pg_url: str,
) -> None:
    schema = new_schema_name("old")
    try:
        with psycopg.connect(pg_url) as conn:
            migrate_before(conn, schema, 6, dimension=DIM)
            conn.execute("INSERT INTO store_info (embedder, dimension) VALUES ('test:8', 8)")
            conn.execute("INSERT INTO collections VALUES ('a'), ('b')")
            corpus = {
                "x1": ("a", ["apple", "pie", "apple"]),
                "x2": ("a", ["pie"]),
                "x3": ("b", ["apple", "tart"]),
            }
            for number, (name, (collection, tokens)) in enumerate(corpus.items(), start=1):
                conn.execute(
                    "INSERT INTO documents (id, collection, source, title, content_hash,"
                    " size_bytes, metadata, status) VALUES (%s, %s, 's', 't', 'h', 1, '{}', 'ready')",
                    (name, collection),
                )
                conn.execute(
                    "INSERT INTO chunks (id, document_id, collection, ordinal, text, metadata,"
                    " token_count, embedding) VALUES (%s, %s, %s, 0, %s, '{}', %s, %s)",
                    (number, name, collection, name, len(tokens), str([1.0] * DIM)),
                )
                for term, tf in Counter(tokens).items():
                    conn.execute(
                        "INSERT INTO chunk_terms (term, chunk_id, tf) VALUES (%s, %s, %s)",
                        (term, number, tf),
                    )
        store = PGVectorStore(pg_url, dimension=DIM, embedder_name="test:8", schema=schema)
        store.open()
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                assert kept(conn) == recounted(conn)
                assert kept(conn)[0] == {"a": (2, 4), "b": (1, 2)}
                postings = conn.execute(
                    "SELECT term, collection, chunk_id, tf, token_count FROM chunk_terms"
                    " ORDER BY chunk_id, term"
                ).fetchall()
            assert postings[:2] == [("apple", "a", 1, 2, 3), ("pie", "a", 1, 1, 3)]
            hits = store.search_sparse(["apple", "pie"], k=5, collection="a")
            tokens = {name: t for name, (c, t) in corpus.items() if c == "a"}
            expected = bm25(["apple", "pie"], tokens, list(tokens))
            assert {h.text: h.score for h in hits} == pytest.approx(expected, rel=1e-9)
        finally:
            store.close()
    finally:
        drop_schema(pg_url, schema)
