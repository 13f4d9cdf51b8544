"""The review writer's model (``REVIEW_*``): its client, what it can do, and its LoRA adapters.

It is built by ``models/factory.py`` apart from the chat model, or on the same ``LocalLLM`` when
both roles name the same local base, so that the base is loaded once. Which adapters a request may
name comes from the model itself: a local model's adapters change while it serves; an
OpenAI-compatible server serves the ones its settings name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.core.errors import Conflict, InvalidInput, ModelUnavailable
from app.models.base import LLMClient
from app.models.capabilities import Capabilities

NOT_CONFIGURED = (
    "No model writes reviews (REVIEW_PROVIDER=none). Set REVIEW_PROVIDER=local with "
    "REVIEW_MODEL=<hub id or folder> (and REVIEW_ADAPTERS=reviews=/path/to/adapter, the folder "
    "`rag finetune train` wrote), or REVIEW_PROVIDER=openai for an OpenAI-compatible server, and "
    "restart; adapters can then be loaded while the server runs (POST /api/models/adapters)."
)


def unknown_adapter(
    name: str, available: Iterable[str], *, when_none: str = "none are loaded"
) -> InvalidInput:
    """The refusal of a request naming adapter ``name``, which is not one of ``available``."""
    known = ", ".join(available) or when_none
    return InvalidInput(f"Unknown adapter {name!r}; available: {known}.", code="unknown_adapter")


@runtime_checkable
class AdapterHost(Protocol):
    """A model that loads and unloads LoRA adapters while it serves (``LocalLLM``)."""

    base_model: str

    @property
    def adapter_paths(self) -> dict[str, Path]:
        """Adapters a request may name now, and their folders."""
        ...

    def load_adapter(self, name: str, path: Path) -> None:
        """Attach the adapter in ``path`` as ``name``."""
        ...

    def unload_adapter(self, name: str) -> None:
        """Detach ``name`` once the requests using it have finished."""
        ...


class ReviewModel:
    """The configured review writer: ``llm`` is None when ``REVIEW_PROVIDER=none``."""

    def __init__(
        self,
        provider: str,
        llm: LLMClient | None,
        capabilities: Capabilities,
        *,
        configured: Mapping[str, Path] | None = None,
        shares_chat_model: bool = False,
    ) -> None:
        self.provider = provider
        self.llm = llm
        self.capabilities = capabilities
        self.configured: dict[str, Path] = dict(configured or {})
        """Adapters the settings name (``REVIEW_ADAPTERS``)."""
        self.shares_chat_model = shares_chat_model
        """Whether the chat model is this same loaded model (it then answers without adapter)."""

    @property
    def name(self) -> str | None:
        """The client's name, e.g. ``local:<base>``; None when no model writes reviews."""
        return self.llm.name if self.llm is not None else None

    @property
    def base_model(self) -> str | None:
        """The base adapters must have been trained on, when adapters load here."""
        return self._host.base_model if self._host is not None else None

    def adapters(self) -> dict[str, Path]:
        """Adapters a request may name now, and where each was loaded from."""
        if self._host is not None:
            return self._host.adapter_paths
        return dict(self.configured) if self.capabilities.names_adapters else {}

    def require_llm(self) -> LLMClient:
        """The client, if it can write reviews; ``ModelUnavailable`` saying how to set one up."""
        if self.llm is None or not self.capabilities.writes_reviews:
            raise ModelUnavailable(NOT_CONFIGURED)
        return self.llm

    def load_adapter(self, name: str, path: Path) -> None:
        """Load adapter ``name`` from ``path`` (blocking); see ``LocalLLM.load_adapter``."""
        self.adapter_host().load_adapter(name, path)

    def unload_adapter(self, name: str) -> None:
        """Unload adapter ``name`` once the requests using it have finished (blocking)."""
        self.adapter_host().unload_adapter(name)

    async def aclose(self) -> None:
        """Close the client, unless the chat model (which closes it) is the same one."""
        if self.llm is not None and not self.shares_chat_model:
            await self.llm.aclose()

    @property
    def _host(self) -> AdapterHost | None:
        if self.capabilities.loads_adapters and isinstance(self.llm, AdapterHost):
            return self.llm
        return None

    def adapter_host(self) -> AdapterHost:
        """The model adapters load onto: ``ModelUnavailable`` when no model writes reviews,
        ``Conflict`` when this one cannot load adapters while it runs."""
        self.require_llm()
        if self._host is None:
            raise Conflict(
                f"REVIEW_PROVIDER={self.provider} cannot load adapters while it runs: it serves "
                "those REVIEW_ADAPTERS names. Load adapters at run time with "
                "REVIEW_PROVIDER=local.",
                code="adapters_fixed",
                params={"provider": self.provider},
            )
        return self._host
