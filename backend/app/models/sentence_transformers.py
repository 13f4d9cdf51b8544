"""Local embedding models through sentence-transformers (``pip install '.[local]'``).

The model is a Hugging Face hub id (downloaded once into the cache, on an explicit opt-in) or a
local directory saved by sentence-transformers. Vectors are L2-normalised, so cosine distance in
pgvector ranks the same as the model's own similarity. The e5 family was trained with ``query: ``
and ``passage: `` in front of its inputs and is markedly worse without them; bge-m3 and most
others take the text as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from sentence_transformers import SentenceTransformer

from app.core.errors import ModelUnavailable
from app.core.logger import get_logger

log = get_logger(__name__)


class SentenceTransformerEmbedder:
    """A sentence-transformers model, normalised, with e5's query / passage prefixes."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model_id = model
        self._batch_size = batch_size
        try:
            self._model = SentenceTransformer(model, device=device)
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"Cannot load the embedding model {model!r}: {str(error).rstrip('. ')}. Check EMBEDDING_MODEL "
                "(a Hugging Face id reachable from here, or a local sentence-transformers directory)."
            ) from error
        is_e5 = "e5" in model.lower()
        self._query_prefix = "query: " if is_e5 else None
        self._passage_prefix = "passage: " if is_e5 else None
        self._dimension = self._model.get_embedding_dimension() or len(self.embed_query("차원"))
        log.info(
            "embedding model %s on %s, %d dimensions", model, self._model.device, self._dimension
        )

    @property
    def name(self) -> str:
        """``sentence-transformers:{model}``."""
        return f"sentence-transformers:{self._model_id}"

    @property
    def dimension(self) -> int:
        """The model's output size."""
        return self._dimension

    def _encode(self, texts: Sequence[str], prefix: str | None) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            prompt=prefix,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages (with ``passage: `` for e5 models)."""
        return self._encode(texts, self._passage_prefix)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (with ``query: `` for e5 models)."""
        return self._encode([text], self._query_prefix)[0]

    def close(self) -> None:
        """Nothing to do: the weights are freed with this object."""
