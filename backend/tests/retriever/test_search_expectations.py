"""Search results of a small indexed corpus, pinned: ingest may change how it writes, never what
search finds. The same reviews go in once as a bulk load (the HNSW index rebuilt after the
rows) and once into the live index; dense, sparse and hybrid results, scores included, must be
these in both. On 30 chunks the HNSW search visits every vector, so dense results are exact."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app.core.config import RetrievalSettings
from app.models.hash import HashEmbedder
from app.retriever.hybrid import HybridRetriever
from app.retriever.indexer import Indexer
from tests.conftest import StoreFactory
from tests.utils.documents import nsmc_reviews

# The store's results as they were before ingest wrote many documents per transaction and
# overlapped its work with the database's: (mode, query, [(document, score rounded to 1e-4)]).
EXPECTED = [
    (
        "dense",
        "배우들 연기가 정말 좋았어요",
        [("r26", 0.2036), ("r05", 0.1775), ("r10", 0.1442), ("r03", 0.1268), ("r07", 0.0937)],
    ),
    ("sparse", "배우들 연기가 정말 좋았어요", [("r11", 1.4473), ("r24", 1.0213)]),
    (
        "hybrid",
        "배우들 연기가 정말 좋았어요",
        [("r11", 0.8223), ("r26", 0.2), ("r05", 0.1694), ("r10", 0.1305), ("r03", 0.1101)],
    ),
    (
        "dense",
        "스토리가 지루하고 별로",
        [("r18", 0.3258), ("r29", 0.3248), ("r12", 0.2912), ("r20", 0.2427), ("r11", 0.1936)],
    ),
    ("sparse", "스토리가 지루하고 별로", [("r29", 2.6401), ("r12", 2.4827), ("r24", 1.2286)]),
    (
        "hybrid",
        "스토리가 지루하고 별로",
        [("r29", 0.9991), ("r12", 0.8774), ("r18", 0.2), ("r20", 0.1197), ("r11", 0.0722)],
    ),
    (
        "dense",
        "감동적인 음악",
        [("r20", 0.3087), ("r17", 0.2504), ("r06", 0.2269), ("r26", 0.2107), ("r28", 0.1742)],
    ),
    ("sparse", "감동적인 음악", [("r20", 7.8431)]),
    (
        "hybrid",
        "감동적인 음악",
        [("r20", 1.0), ("r17", 0.144), ("r06", 0.1214), ("r26", 0.1059), ("r28", 0.0708)],
    ),
]


@pytest.fixture(params=[1, 0], ids=["bulk-load", "live-index"])
def retriever(
    request: pytest.FixtureRequest, store_factory: StoreFactory
) -> Iterator[HybridRetriever]:
    embedder = HashEmbedder(64)
    store = store_factory(dimension=embedder.dimension, embedder_name=embedder.name)
    settings = RetrievalSettings(chunk_size=200, chunk_overlap=40, bulk_load_chunks=request.param)
    lines = [
        json.dumps({"id": f"r{i:02d}", "text": text}, ensure_ascii=False)
        for i, text in enumerate(nsmc_reviews(30))
    ]
    results = Indexer(store, embedder, settings).ingest_bytes(
        "reviews.jsonl", "\n".join(lines).encode()
    )
    assert [r.outcome for r in results] == ["indexed"] * 30
    search = RetrievalSettings(candidates=10, rrf_k=60, fusion="score", dense_weight=0.2)
    yield HybridRetriever(store, embedder, search)


def test_search_finds_what_it_always_found(retriever: HybridRetriever) -> None:
    found = [
        (mode, query, [(h.document_id, round(h.score, 4)) for h in hits])
        for mode, query, _ in EXPECTED
        for hits in [retriever.search(query, top_k=5, mode=mode)]
    ]
    assert found == EXPECTED
