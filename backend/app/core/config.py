"""Settings: the one place that reads environment variables and ``.env``.

Each group is its own ``BaseSettings`` with an env prefix, so variables stay flat and readable
(``LLM_PROVIDER``, ``EMBEDDING_MODEL``, ``DATABASE_URL``) while code reads ``settings.llm.provider``.
Each provider's settings are a group inside ``llm`` (``OPENAI_MODEL`` is
``settings.llm.openai.model``, ``LOCAL_MODEL`` is ``settings.llm.local.model``).
Every variable is documented in ``.env.example`` at the repository root.

The groups live by subject in ``model_settings`` (the chat model, review writer and embedder) and
``service_settings`` (database, retrieval, API, keys, jobs, parsing); import them from here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from app.core.finetune_settings import FinetuneSettings
from app.core.model_settings import (
    ADAPTER_NAME,
    AnthropicSettings,
    EmbeddingProvider,
    EmbeddingSettings,
    LLMProvider,
    LLMSettings,
    LocalModelSettings,
    OpenAISettings,
    ReviewProvider,
    ReviewRole,
    ReviewSettings,
    parse_lora_adapters,
)
from app.core.service_settings import (
    SEARCH_MODES,
    APISettings,
    AuthSettings,
    DatabaseSettings,
    JobsSettings,
    ParseSettings,
    RetrievalSettings,
    SearchMode,
    parse_server_settings,
)
from app.core.settings_base import is_placeholder, settings_config

__all__ = [
    "ADAPTER_NAME",
    "SEARCH_MODES",
    "APISettings",
    "AnthropicSettings",
    "AuthSettings",
    "DatabaseSettings",
    "EmbeddingProvider",
    "EmbeddingSettings",
    "FinetuneSettings",
    "JobsSettings",
    "LLMProvider",
    "LLMSettings",
    "LocalModelSettings",
    "OpenAISettings",
    "ParseSettings",
    "RetrievalSettings",
    "ReviewProvider",
    "ReviewRole",
    "ReviewSettings",
    "SearchMode",
    "Settings",
    "get_settings",
    "parse_lora_adapters",
    "parse_server_settings",
]


class Settings(BaseSettings):
    """All settings, grouped. Build your own in tests: ``Settings(llm=LLMSettings(provider="fake"))``."""

    model_config = settings_config("RAG_")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    api: APISettings = Field(default_factory=APISettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    parsing: ParseSettings = Field(default_factory=ParseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    def finetune_dir(self) -> Path:
        """Where fine-tuning data sets and jobs keep their files."""
        return (self.finetune.dir or self.database.data_dir / "finetune").resolve()

    def review_role(self) -> ReviewRole:
        """The review model: ``REVIEW_*``, with the chat model's settings where they are unset."""
        review, llm = self.review, self.llm
        notes: list[str] = []
        provider: ReviewProvider
        if review.provider is not None:
            provider = review.provider
        elif llm.provider in ("local", "openai", "fake"):
            provider = llm.provider
            if llm.provider == "local":
                notes.append(
                    "REVIEW_PROVIDER is unset, so reviews are written by LLM_PROVIDER=local's "
                    "LOCAL_MODEL; this fallback is deprecated: set REVIEW_PROVIDER=local and "
                    "REVIEW_MODEL (the same base as the chat model is still loaded once)."
                )
        else:
            provider = "none"
        adapters = review.adapters
        if llm.lora_adapters:
            if adapters is None:
                adapters = dict(llm.lora_adapters)
                notes.append("LORA_ADAPTERS is deprecated: name the adapters in REVIEW_ADAPTERS.")
            else:
                notes.append("LORA_ADAPTERS is deprecated and ignored: REVIEW_ADAPTERS is set.")
        model = None
        if provider in ("local", "openai"):
            model = review.model or (llm.openai.model if provider == "openai" else llm.local.model)
        adapters = dict(adapters or {}) if model is not None else {}
        update: dict[str, object] = {"lora_adapters": adapters}
        if provider != "none":
            update["provider"] = provider
        openai: dict[str, object] = {}
        if model is not None:
            update["local"] = llm.local.model_copy(update={"model": model})
            openai["model"] = model
        if review.openai_base_url is not None:
            openai["base_url"] = review.openai_base_url
        if review.openai_api_key is not None:
            openai["api_key"] = review.openai_api_key
        if openai:
            update["openai"] = llm.openai.model_copy(update=openai)
        return ReviewRole(provider, model, adapters, llm.model_copy(update=update), tuple(notes))

    @model_validator(mode="after")
    def _review_model_is_reachable(self) -> Settings:
        role = self.review_role()
        if (
            role.provider == "openai"
            and role.llm.openai.base_url is None
            and is_placeholder(role.llm.openai.api_key)
        ):
            raise ValueError(
                "REVIEW_PROVIDER=openai needs REVIEW_OPENAI_BASE_URL (or OPENAI_BASE_URL) for a "
                "compatible server, or an API key (REVIEW_OPENAI_API_KEY or OPENAI_API_KEY)"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
