"""Search over the store by meaning (dense), by words (sparse, BM25) or both fused (hybrid).

Hybrid search takes ``settings.candidates`` hits from each ranking and merges them, by default
with score fusion: each list's scores are min-max scaled to [0, 1] (cosine similarity and BM25
live on unrelated scales), then combined as ``w * dense + (1 - w) * sparse``. Unlike reciprocal
rank fusion (also available, ``fusion="rrf"``), this keeps how far ahead a hit is, not only its
rank: on KorQuAD with the offline hash embedder, RRF fell below BM25 alone (recall@1 0.846 vs
0.920) while score fusion with ``w = 0.2`` rose above it (0.924; see docs/benchmarks.md).
The two rankings of a hybrid search run side by side, each on its own database session.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core.config import SEARCH_MODES, RetrievalSettings, SearchMode
from app.core.errors import InvalidInput
from app.models.base import EmbeddingClient
from app.retriever.types import SearchHit
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens


class HybridRetriever:
    """The ``Retriever`` of the RAG chain, over a ``PGVectorStore`` and an embedder."""

    def __init__(
        self, store: PGVectorStore, embedder: EmbeddingClient, settings: RetrievalSettings
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings
        # Idle workers end when the retriever is collected; none is started before a search.
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rag-dense")

    def search(
        self,
        query: str,
        *,
        top_k: int,
        mode: SearchMode,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """At most ``top_k`` ready chunks for ``query``, best first.

        ``dense`` and ``sparse`` hits carry their own score (cosine similarity, BM25);
        ``hybrid`` hits carry the fused score.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("The search query is empty.")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidInput(f"top_k must be a positive whole number, not {top_k!r}.")
        if mode not in SEARCH_MODES:
            raise InvalidInput(
                f"Unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}."
            )
        if mode == "dense":
            return self._dense(query, top_k, collection, filters)
        if mode == "sparse":
            return self._sparse(query, top_k, collection, filters)
        candidates = max(self._settings.candidates, top_k)
        # The two rankings wait on different database sessions (and Kiwi releases the GIL):
        # side by side, a hybrid search takes about as long as the slower of the two.
        dense_future = self._executor.submit(self._dense, query, candidates, collection, filters)
        sparse = self._sparse(query, candidates, collection, filters)
        dense = dense_future.result()
        if self._settings.fusion == "rrf":
            fused = reciprocal_rank_fusion([dense, sparse], rrf_k=self._settings.rrf_k)
        else:
            fused = score_fusion(dense, sparse, dense_weight=self._settings.dense_weight)
        return fused[:top_k]

    def _dense(
        self, query: str, k: int, collection: str | None, filters: dict[str, Any] | None
    ) -> list[SearchHit]:
        embedding = self._embedder.embed_query(query)
        return self._store.search_dense(embedding, k=k, collection=collection, filters=filters)

    def _sparse(
        self, query: str, k: int, collection: str | None, filters: dict[str, Any] | None
    ) -> list[SearchHit]:
        tokens = search_tokens(query)
        return self._store.search_sparse(tokens, k=k, collection=collection, filters=filters)


def _min_max(hits: list[SearchHit]) -> dict[str, float]:
    if not hits:
        return {}
    low = min(h.score for h in hits)
    high = max(h.score for h in hits)
    # One hit, or all equal: each is as good as the best of its list.
    return {h.chunk_id: (h.score - low) / (high - low) if high > low else 1.0 for h in hits}


def score_fusion(
    dense: list[SearchHit], sparse: list[SearchHit], *, dense_weight: float
) -> list[SearchHit]:
    """Merge by ``w * scaled dense + (1 - w) * scaled sparse``; a list missing a hit adds 0."""
    scaled_dense, scaled_sparse = _min_max(dense), _min_max(sparse)
    first_seen: dict[str, SearchHit] = {}
    for hit in (*dense, *sparse):
        first_seen.setdefault(hit.chunk_id, hit)
    fused = {
        chunk_id: dense_weight * scaled_dense.get(chunk_id, 0.0)
        + (1 - dense_weight) * scaled_sparse.get(chunk_id, 0.0)
        for chunk_id in first_seen
    }
    return _ranked(fused, first_seen)


def reciprocal_rank_fusion(rankings: list[list[SearchHit]], *, rrf_k: int) -> list[SearchHit]:
    """Merge rankings of hits by ``sum(1 / (rrf_k + rank))``; ties keep the earlier ranking's order."""
    fused: dict[str, float] = {}
    first_seen: dict[str, SearchHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            first_seen.setdefault(hit.chunk_id, hit)
    return _ranked(fused, first_seen)


def _ranked(fused: dict[str, float], first_seen: dict[str, SearchHit]) -> list[SearchHit]:
    # dicts keep insertion order and sorted() is stable, so equal scores stay in first-seen order.
    order = sorted(fused, key=lambda chunk_id: fused[chunk_id], reverse=True)
    return [
        SearchHit(
            document_id=first_seen[chunk_id].document_id,
            chunk_id=chunk_id,
            text=first_seen[chunk_id].text,
            score=fused[chunk_id],
            metadata=first_seen[chunk_id].metadata,
        )
        for chunk_id in order
    ]
