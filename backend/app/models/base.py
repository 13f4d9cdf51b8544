"""The interfaces every model adapter implements.

Routers and pipelines know only these protocols; ``models/factory.py`` picks the concrete adapter
from settings. Adding a model is one new file here and one ``case`` in the factory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Per-request sampling knobs; ``None`` means the adapter's configured default."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    adapter: str | None = None
    """Name of a LoRA adapter, for adapters that host several on one base model."""


@runtime_checkable
class LLMClient(Protocol):
    """A chat model: complete a conversation at once or token by token."""

    @property
    def name(self) -> str:
        """Provider and model, e.g. ``openai:gpt-4o-mini``; shown to users."""
        ...

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """Return the assistant's whole reply. Raises ``ModelUnavailable`` on provider failure."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """Yield the reply in pieces as they are produced."""
        ...

    async def check(self) -> None:
        """Raise ``ModelUnavailable`` if the model cannot answer now (used by ``/ready``)."""
        ...

    async def aclose(self) -> None:
        """Release connections or memory held by the adapter."""
        ...


@runtime_checkable
class EmbeddingClient(Protocol):
    """Turns text into fixed-size vectors; documents and queries may be embedded differently."""

    @property
    def name(self) -> str:
        """Provider and model, e.g. ``hash:768``; recorded with the index."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector this client returns."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages for storage."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        ...

    def close(self) -> None:
        """Release resources held by the client."""
        ...
