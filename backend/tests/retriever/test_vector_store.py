"""The pgvector store on a real PostgreSQL: schema, document life cycle, dense and BM25 search."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from app.core.errors import Conflict, InvalidInput, NotFound
from app.retriever.migrations import available_migrations
from app.retriever.vector_store import BM25_B, BM25_K1, ChunkRow, PGVectorStore
from tests.conftest import StoreFactory, drop_schema, new_schema_name

DIM = 16


def add_document(
    store: PGVectorStore,
    document_id: str,
    chunks: Sequence[ChunkRow],
    *,
    collection: str = "c",
    content_hash: str = "v1",
    metadata: dict[str, Any] | None = None,
    title: str = "Title",
) -> None:
    """Index one document the way the indexer does."""
    store.begin_document(
        document_id=document_id,
        collection=collection,
        source=f"{document_id}.txt",
        title=title,
        content_hash=content_hash,
        size_bytes=100,
        metadata=metadata or {},
    )
    store.replace_chunks(document_id, content_hash, chunks, collection=collection)


def chunk(
    ordinal: int, text: str, vector: Sequence[float] | np.ndarray, **metadata: Any
) -> ChunkRow:
    """A chunk whose search tokens are its whitespace-separated words."""
    return ChunkRow(ordinal, text, text.split(), np.asarray(vector, dtype=np.float32), metadata)


def unit(index: int, dim: int = DIM) -> np.ndarray:
    vector = np.zeros(dim, dtype=np.float32)
    vector[index] = 1.0
    return vector


def texts(hits: Sequence[Any]) -> list[str]:
    return [hit.text for hit in hits]


# ----- schema ---------------------------------------------------------------------------------


def test_migrations_apply_once_and_concurrent_openings_agree(pg_url: str) -> None:
    schema = new_schema_name()
    stores = [
        PGVectorStore(pg_url, dimension=DIM, embedder_name="test:16", schema=schema)
        for _ in range(4)
    ]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(PGVectorStore.open, stores))
        stores[0].close()
        stores[0].open()
        with psycopg.connect(pg_url) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
            info = conn.execute("SELECT embedder, dimension FROM store_info").fetchall()
        assert versions == [(m.version,) for m in available_migrations()]
        assert info == [("test:16", DIM)]
    finally:
        for store in stores:
            store.close()
        drop_schema(pg_url, schema)


def test_a_document_status_is_indexing_ready_or_failed(
    store_factory: StoreFactory, pg_url: str
) -> None:
    store = store_factory(dimension=DIM)
    add_document(store, "d1", [])
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE documents SET status = 'pending' WHERE id = 'd1'")


@pytest.mark.parametrize(
    ("embedder_name", "dimension"), [("other-model", DIM), ("test:16", DIM * 2)]
)
def test_another_embedder_on_the_same_schema_is_refused(
    store_factory: StoreFactory, embedder_name: str, dimension: int
) -> None:
    store = store_factory(dimension=DIM, embedder_name="test:16")
    with pytest.raises(Conflict, match="another data folder") as raised:
        store_factory(dimension=dimension, embedder_name=embedder_name, schema=store.schema)
    assert raised.value.code == "embedder_mismatch"
    assert "test:16" in raised.value.message


def test_nonsense_settings_are_rejected_before_connecting(pg_url: str) -> None:
    with pytest.raises(InvalidInput, match="Schema name"):
        PGVectorStore(pg_url, dimension=DIM, embedder_name="e", schema="Robert'); DROP")
    with pytest.raises(InvalidInput, match="2000"):
        PGVectorStore(pg_url, dimension=3072, embedder_name="e")


# ----- documents --------------------------------------------------------------------------------


def test_a_document_round_trips_with_merged_metadata(store_factory: StoreFactory) -> None:
    store = store_factory()
    add_document(
        store,
        "d1",
        [chunk(0, "alpha beta", unit(0), page=1), chunk(1, "gamma", unit(1), page=2, lang="en")],
        collection="manuals",
        metadata={"lang": "ko", "source": "overridden?", "year": 2024},
        title="사용 설명서",
    )
    record = store.get_document("d1")
    assert record is not None
    assert (record.collection, record.source, record.title) == ("manuals", "d1.txt", "사용 설명서")
    assert (record.status, record.error, record.chunk_count) == ("ready", None, 2)
    assert record.metadata == {"lang": "ko", "source": "overridden?", "year": 2024}
    assert record.created_at <= record.updated_at
    assert store.document_state("d1") == ("v1", "ready")
    assert store.list_collections() == ["manuals"]
    assert [d.id for d in store.list_documents("manuals")] == ["d1"]
    assert store.list_documents("other") == []
    assert store.count_chunks() == store.count_chunks("manuals") == 2

    hits = store.search_dense(unit(1), k=1)
    assert hits[0].document_id == "d1"
    assert hits[0].metadata == {
        "lang": "en",
        "year": 2024,
        "page": 2,
        "source": "d1.txt",
        "title": "사용 설명서",
        "collection": "manuals",
    }


def test_unknown_documents(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.get_document("nope") is None
    assert store.document_state("nope") is None
    assert store.delete_document("nope") is False
    with pytest.raises(NotFound):
        store.replace_chunks("nope", "v1", [])
    with pytest.raises(NotFound):
        store.mark_failed("nope", "reason")


def test_the_same_id_in_two_collections_is_two_documents(store_factory: StoreFactory) -> None:
    store = store_factory()
    add_document(store, "d1", [chunk(0, "alpha", unit(0))], collection="a")
    add_document(store, "d1", [chunk(0, "alpha beta", unit(1))], collection="b", content_hash="v2")
    assert store.document_state("d1", collection="a") == ("v1", "ready")
    assert store.document_state("d1", collection="b") == ("v2", "ready")
    assert [r.collection for r in store.documents_with_id("d1")] == ["a", "b"]
    for collection, text in (("a", "alpha"), ("b", "alpha beta")):
        [hit] = store.search_sparse(["alpha"], k=5, collection=collection)
        assert (hit.document_id, hit.text) == ("d1", text)
    # The id alone does not say which of the two is meant.
    with pytest.raises(Conflict) as ambiguous:
        store.get_document("d1")
    assert ambiguous.value.code == "document_ambiguous"
    with pytest.raises(Conflict):
        store.delete_document("d1")

    assert store.delete_document("d1", collection="a") is True
    assert store.get_document("d1", collection="a") is None
    assert store.get_document("d1").collection == "b"
    assert [h.text for h in store.search_sparse(["alpha"], k=5)] == ["alpha beta"]
    assert store.count_chunks() == 1


def test_chunks_of_another_version_are_refused(store_factory: StoreFactory) -> None:
    store = store_factory()
    add_document(store, "d1", [chunk(0, "x", unit(0))])
    with pytest.raises(Conflict) as raised:
        store.replace_chunks("d1", "v0", [chunk(0, "y", unit(1))])
    assert raised.value.code == "document_version_changed"
    assert texts(store.search_sparse(["x"], k=5)) == ["x"]


def test_the_old_version_stays_searchable_while_the_new_one_is_indexed(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    add_document(store, "d1", [chunk(0, "old words", unit(0)), chunk(1, "old more", unit(1))])
    store.begin_document(
        document_id="d1",
        collection="c",
        source="d1.txt",
        title="Title",
        content_hash="v2",
        size_bytes=5,
        metadata={},
    )
    assert store.document_state("d1") == ("v2", "indexing")
    assert texts(store.search_sparse(["old"], k=5)) == ["old words", "old more"]

    store.replace_chunks("d1", "v2", [chunk(0, "new words", unit(2))])
    assert store.document_state("d1") == ("v2", "ready")
    assert store.search_sparse(["old"], k=5) == []
    assert texts(store.search_sparse(["words"], k=5)) == ["new words"]
    assert store.count_chunks() == 1


def test_a_replacement_that_fails_midway_leaves_the_old_chunks(store_factory: StoreFactory) -> None:
    store = store_factory()
    add_document(store, "d1", [chunk(0, "kept text", unit(0))])
    store.begin_document(
        document_id="d1",
        collection="c",
        source="d1.txt",
        title="Title",
        content_hash="v2",
        size_bytes=5,
        metadata={},
    )
    # PostgreSQL text cannot hold NUL: the COPY breaks after the old chunks were deleted.
    broken = [chunk(0, "fresh text", unit(1)), chunk(1, "bad \x00 text", unit(2))]
    with pytest.raises(psycopg.DataError):
        store.replace_chunks("d1", "v2", broken)
    assert texts(store.search_sparse(["text"], k=5)) == ["kept text"]
    assert store.count_chunks() == 1

    store.mark_failed("d1", "the text holds a NUL character")
    record = store.get_document("d1")
    assert record is not None
    assert (record.status, record.error, record.chunk_count) == (
        "failed",
        "the text holds a NUL character",
        1,
    )


def test_search_sees_only_indexed_chunks(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.begin_document(
        document_id="pending",
        collection="c",
        source="p.txt",
        title="",
        content_hash="v1",
        size_bytes=1,
        metadata={},
    )
    add_document(store, "ready", [chunk(0, "shared word", unit(0))])
    assert {h.document_id for h in store.search_sparse(["shared", "word"], k=5)} == {"ready"}
    assert {h.document_id for h in store.search_dense(unit(0), k=5)} == {"ready"}


def test_documents_left_indexing_by_a_crash_are_failed_on_open(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    for document_id in ("crashed", "busy"):
        store.begin_document(
            document_id=document_id,
            collection="c",
            source=f"{document_id}.txt",
            title="",
            content_hash="v1",
            size_bytes=1,
            metadata={},
        )
    # "busy" is being indexed right now (its lock is held): a second process must leave it be.
    with store.document_lock("busy"):
        store_factory(schema=store.schema)
    crashed = store.get_document("crashed")
    busy = store.get_document("busy")
    assert crashed is not None and busy is not None
    assert crashed.status == "failed"
    assert crashed.error is not None and crashed.error.startswith("interrupted")
    assert busy.status == "indexing"


def test_deleting_a_document_removes_its_chunks_and_postings(
    pg_url: str, store_factory: StoreFactory
) -> None:
    store = store_factory()
    rows = [chunk(i, f"word{i % 7} common", unit(i % DIM)) for i in range(300)]
    add_document(store, "big", rows)
    add_document(store, "small", [chunk(0, "common", unit(0))])
    assert store.delete_document("big") is True
    assert store.delete_document("big") is False
    assert store.count_chunks() == 1
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
        postings = conn.execute("SELECT term, tf FROM chunk_terms").fetchall()
    assert postings == [("common", 1)]


def test_the_document_lock_excludes_a_second_holder(
    pg_url: str, store_factory: StoreFactory
) -> None:
    store = store_factory()
    order: list[str] = []
    second_done = threading.Event()

    def second() -> None:
        with store.document_lock("d1"):
            order.append("second")
        second_done.set()

    with store.document_lock("d1"):
        worker = threading.Thread(target=second)
        worker.start()
        _wait_for_a_blocked_advisory_lock(pg_url)
        order.append("first")
    worker.join()
    assert second_done.is_set()
    assert order == ["first", "second"]


def _wait_for_a_blocked_advisory_lock(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for _ in range(600):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting and waiting[0]:
                return
            conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError("the second lock holder never waited")


def test_concurrent_ingests_of_one_document_do_not_duplicate(store_factory: StoreFactory) -> None:
    store = store_factory()
    rows = [chunk(i, f"part {i}", unit(i)) for i in range(8)]

    def ingest(content_hash: str) -> None:
        with store.document_lock("d1"):
            add_document(store, "d1", rows, content_hash=content_hash)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ingest, ["a", "b", "c", "d"]))
    assert store.count_chunks() == 8
    state = store.document_state("d1")
    assert state is not None and state[1] == "ready"


# ----- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"tags": {"nested": 1}},
        {"lang": []},
        {"lang": None},
        {"": "x"},
        {"score": float("nan")},
    ],
)
def test_bad_filters_are_invalid_input(store_factory: StoreFactory, filters: dict) -> None:
    store = store_factory()
    with pytest.raises(InvalidInput):
        store.search_dense(unit(0), k=3, filters=filters)
    with pytest.raises(InvalidInput):
        store.search_sparse(["x"], k=3, filters=filters)


def test_bad_requests_are_invalid_input(store_factory: StoreFactory) -> None:
    store = store_factory()
    with pytest.raises(InvalidInput, match="16 dimensions"):
        store.search_dense([1.0, 0.0], k=3)
    with pytest.raises(InvalidInput, match="k must be"):
        store.search_sparse(["x"], k=0)
    with pytest.raises(InvalidInput, match="NaN"):
        add_document(store, "d1", [chunk(0, "x", [math.nan] * DIM)])
    with pytest.raises(InvalidInput, match="ordinal"):
        add_document(store, "d2", [chunk(0, "x", unit(0)), chunk(0, "y", unit(1))])
    with pytest.raises(InvalidInput, match="plain JSON"):
        add_document(store, "d3", [chunk(0, "x", unit(0), when=object())])


def test_zero_vectors_are_never_similar(store_factory: StoreFactory) -> None:
    store = store_factory()
    rows = [chunk(0, "zero", np.zeros(DIM), page=1), chunk(1, "one", unit(0), page=2)]
    add_document(store, "d1", rows)
    assert store.search_dense(np.zeros(DIM), k=5) == []
    assert texts(store.search_dense(unit(0), k=5)) == ["one"]
    assert texts(store.search_dense(unit(0), k=5, filters={"page": [1, 2]})) == ["one"]


def test_very_long_tokens_still_match(store_factory: StoreFactory) -> None:
    store = store_factory()
    url = "https://example.com/" + "a" * 3000
    add_document(store, "d1", [ChunkRow(0, "link", [url], unit(0), {})])
    assert texts(store.search_sparse([url], k=1)) == ["link"]


# ----- search over a corpus --------------------------------------------------------------------

N_DOCS, CHUNKS_PER_DOC, CORPUS_DIM = 40, 50, 32
VOCABULARY = [f"w{i}" for i in range(300)]


class Corpus:
    """2,000 chunks with random vectors and Zipf-distributed words, in collections a and b."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.vectors = rng.normal(size=(N_DOCS * CHUNKS_PER_DOC, CORPUS_DIM)).astype(np.float32)
        weights = 1.0 / np.arange(1, len(VOCABULARY) + 1)
        weights /= weights.sum()
        self.tokens: list[list[str]] = []
        self.meta: list[dict[str, Any]] = []
        rare = set(rng.choice(len(self.vectors), size=20, replace=False).tolist())
        for i in range(len(self.vectors)):
            length = int(rng.integers(3, 40))
            self.tokens.append(list(rng.choice(VOCABULARY, size=length, p=weights)))
            doc = i // CHUNKS_PER_DOC
            self.meta.append(
                {
                    "group": "rare" if i in rare else "common",
                    "lang": "ko" if doc % 2 else "en",
                    "collection": "a" if doc < 30 else "b",
                    "document_id": f"doc{doc:02d}",
                }
            )

    def ingest(self, store: PGVectorStore) -> None:
        for doc in range(N_DOCS):
            span = range(doc * CHUNKS_PER_DOC, (doc + 1) * CHUNKS_PER_DOC)
            rows = [
                ChunkRow(
                    i - span.start,
                    f"chunk{i}",
                    self.tokens[i],
                    self.vectors[i],
                    {"group": self.meta[i]["group"]},
                )
                for i in span
            ]
            add_document(
                store,
                f"doc{doc:02d}",
                rows,
                collection=self.meta[span.start]["collection"],
                metadata={"lang": self.meta[span.start]["lang"]},
            )

    def selected(self, collection: str | None = None, **filters: Any) -> list[int]:
        return [
            i
            for i, meta in enumerate(self.meta)
            if (collection is None or meta["collection"] == collection)
            and all(meta[key] in (v if isinstance(v, list) else [v]) for key, v in filters.items())
        ]

    def nearest(self, query: np.ndarray, candidates: list[int], k: int) -> list[str]:
        matrix = self.vectors[candidates]
        cosine = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        order = np.argsort(-cosine, kind="stable")[:k]
        return [f"chunk{candidates[j]}" for j in order]

    def bm25(
        self, query: Sequence[str], scope: list[int], candidates: list[int] | None = None
    ) -> dict[str, float]:
        """Okapi BM25 written out plainly: statistics over ``scope``, scores for ``candidates``."""
        n = len(scope)
        avgdl = sum(len(self.tokens[i]) for i in scope) / n
        df = Counter(term for i in scope for term in set(self.tokens[i]))
        scores = {}
        for i in scope if candidates is None else candidates:
            tf = Counter(self.tokens[i])
            score = 0.0
            for term in query:
                if tf[term]:
                    idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                    norm = 1 - BM25_B + BM25_B * len(self.tokens[i]) / avgdl
                    score += idf * tf[term] * (BM25_K1 + 1) / (tf[term] + BM25_K1 * norm)
            if score:
                scores[f"chunk{i}"] = score
        return scores


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture(scope="module")
def corpus_schema(pg_url: str, corpus: Corpus) -> Iterator[str]:
    schema = new_schema_name("corpus")
    store = PGVectorStore(pg_url, dimension=CORPUS_DIM, embedder_name="random:32", schema=schema)
    store.open()
    corpus.ingest(store)
    store.close()
    yield schema
    drop_schema(pg_url, schema)


def _open(pg_url: str, schema: str, **options: Any) -> Iterator[PGVectorStore]:
    store = PGVectorStore(
        pg_url, dimension=CORPUS_DIM, embedder_name="random:32", schema=schema, **options
    )
    store.open()
    yield store
    store.close()


@pytest.fixture(scope="module")
def corpus_store(pg_url: str, corpus_schema: str) -> Iterator[PGVectorStore]:
    yield from _open(pg_url, corpus_schema)


@pytest.fixture(scope="module")
def index_only_store(pg_url: str, corpus_schema: str) -> Iterator[PGVectorStore]:
    """The same chunks, with filtered searches always starting on the HNSW index."""
    yield from _open(pg_url, corpus_schema, exact_search_rows=0, ef_search=10)


def test_dense_search_returns_cosine_similarity_best_first(
    corpus: Corpus, corpus_store: PGVectorStore
) -> None:
    query = corpus.vectors[123]
    hits = corpus_store.search_dense(query, k=10)
    assert hits[0].text == "chunk123"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        vector = corpus.vectors[int(hit.text.removeprefix("chunk"))]
        cosine = vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query))
        assert hit.score == pytest.approx(float(cosine), abs=1e-5)
    exact = corpus.nearest(query, list(range(len(corpus.vectors))), 10)
    assert len(set(texts(hits)) & set(exact)) >= 8


def assert_nearest(hits: Sequence[Any], expected: list[str], *, exact: bool) -> None:
    """Exact searches return exactly the nearest chunks; HNSW ones nearly (it is approximate)."""
    if exact:
        assert texts(hits) == expected
    else:
        assert len(set(texts(hits)) & set(expected)) >= 0.8 * len(expected)


@pytest.mark.parametrize("store_name", ["corpus_store", "index_only_store"])
def test_a_filter_matching_one_percent_still_returns_k_exact_results(
    request: pytest.FixtureRequest, corpus: Corpus, store_name: str
) -> None:
    store: PGVectorStore = request.getfixturevalue(store_name)
    rare = corpus.selected(group="rare")
    assert len(rare) == 20
    for probe in (5, 999, 1500):
        query = corpus.vectors[probe]
        hits = store.search_dense(query, k=10, filters={"group": "rare"})
        assert len(hits) == 10
        assert all(h.metadata["group"] == "rare" for h in hits)
        assert_nearest(hits, corpus.nearest(query, rare, 10), exact=store_name == "corpus_store")


@pytest.mark.parametrize("store_name", ["corpus_store", "index_only_store"])
@pytest.mark.parametrize(
    ("collection", "filters"),
    [
        ("b", {}),
        ("a", {"lang": "ko"}),
        (None, {"lang": ["ko", "en"], "group": "common"}),
        ("b", {"group": ["rare", "nothing"]}),
    ],
)
def test_dense_search_in_a_collection_with_filters(
    request: pytest.FixtureRequest,
    corpus: Corpus,
    store_name: str,
    collection: str | None,
    filters: dict[str, Any],
) -> None:
    store: PGVectorStore = request.getfixturevalue(store_name)
    selected = corpus.selected(collection, **filters)
    query = corpus.vectors[77] + corpus.vectors[1777]
    hits = store.search_dense(query, k=5, collection=collection, filters=filters)
    assert len(hits) == 5
    assert_nearest(hits, corpus.nearest(query, selected, 5), exact=store_name == "corpus_store")
    if collection:
        assert {h.metadata["collection"] for h in hits} == {collection}


def test_no_match_means_no_hits(corpus_store: PGVectorStore) -> None:
    assert corpus_store.search_dense(np.ones(CORPUS_DIM), k=5, collection="nope") == []
    assert corpus_store.search_dense(np.ones(CORPUS_DIM), k=5, filters={"lang": "fr"}) == []
    assert corpus_store.search_sparse(["w1"], k=5, filters={"lang": "fr"}) == []
    assert corpus_store.search_sparse(["unheard-of"], k=5) == []
    assert corpus_store.search_sparse([], k=5) == []


@pytest.mark.parametrize(
    ("query", "collection"),
    [(["w3", "w40", "w250"], "a"), (["w3", "w40", "w250"], None), (["w7", "w7", "w120"], "b")],
)
def test_sparse_scores_are_bm25_over_the_searched_collection(
    corpus: Corpus, corpus_store: PGVectorStore, query: list[str], collection: str | None
) -> None:
    expected = corpus.bm25(query, corpus.selected(collection))
    hits = corpus_store.search_sparse(query, k=15, collection=collection)
    assert len(hits) == 15
    best = sorted(expected.values(), reverse=True)[:15]
    assert [h.score for h in hits] == pytest.approx(best, rel=1e-9)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.text], rel=1e-9)


def test_sparse_filters_narrow_results_without_changing_scores(
    corpus: Corpus, corpus_store: PGVectorStore
) -> None:
    query = ["w2", "w30", "w31"]
    scope = corpus.selected("a")
    rare = corpus.selected("a", group="rare")
    expected = corpus.bm25(query, scope, candidates=rare)
    hits = corpus_store.search_sparse(query, k=50, collection="a", filters={"group": "rare"})
    assert {h.text: h.score for h in hits} == pytest.approx(expected, rel=1e-9)
