"""OpenAI embeddings, or those of any OpenAI-compatible server (vLLM, Ollama, TEI) via a base URL.

Synchronous, like the indexer and the retriever that call it from worker threads. Texts go out in
batches; the SDK retries 429 / 5xx / connection errors itself. The vector size is the one asked
for (``dimensions``, which text-embedding-3 models can shorten to) or else the one the server
returns, learnt from the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai

from app.core.errors import ModelUnavailable
from app.models.openai import OFFICIAL_ADDRESS, UNUSED_KEY, translate_error


class OpenAIEmbedder:
    """Embeddings through ``openai.OpenAI``, ``batch_size`` texts per request."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model = model
        self._requested_dimension = dimension
        self._dimension = dimension
        self._batch_size = batch_size
        self._address = base_url or OFFICIAL_ADDRESS
        self._client = openai.OpenAI(
            api_key=api_key or UNUSED_KEY,
            base_url=self._address,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    @property
    def name(self) -> str:
        """``openai:{model}``."""
        return f"openai:{self._model}"

    @property
    def dimension(self) -> int:
        """The vector size; asks the server once if neither configured nor seen yet."""
        if self._dimension is None:
            return len(self.embed_query("dimension"))
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in order, ``batch_size`` per request."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += self._embed_batch(texts[start : start + self._batch_size])
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        return self._embed_batch([text])[0]

    def _embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        # The API rejects empty strings; a space embeds as "nothing" just as well.
        inputs = [text if text.strip() else " " for text in texts]
        try:
            response = self._client.embeddings.create(
                model=self._model,
                input=inputs,
                encoding_format="float",
                **({"dimensions": self._requested_dimension} if self._requested_dimension else {}),
            )
        except openai.APIError as error:
            raise translate_error(error, self._address, model_setting="EMBEDDING_MODEL") from error
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(inputs):
            raise ModelUnavailable(
                f"The embedding server returned {len(vectors)} vectors for {len(inputs)} texts."
            )
        for vector in vectors:
            if self._dimension is None:
                self._dimension = len(vector)
            elif len(vector) != self._dimension:
                raise ModelUnavailable(
                    f"The embedding server returned a vector of size {len(vector)}, expected {self._dimension}."
                )
        return vectors

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        self._client.close()
