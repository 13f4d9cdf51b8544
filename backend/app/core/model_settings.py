"""Settings of the models: the chat model and its providers (``LLM_*``, ``OPENAI_*``,
``ANTHROPIC_*``, ``LOCAL_*``), the review writer (``REVIEW_*``) and the embedder (``EMBEDDING_*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from app.core.settings_base import is_placeholder, settings_config

LLMProvider = Literal["extractive", "fake", "openai", "anthropic", "local"]
ReviewProvider = Literal["local", "openai", "fake", "none"]
EmbeddingProvider = Literal["hash", "sentence-transformers", "openai"]
# What a LoRA adapter may be called: in settings, in requests, in URLs.
ADAPTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class OpenAISettings(BaseSettings):
    """OpenAI or an OpenAI-compatible server (vLLM, Ollama): the chat model with
    LLM_PROVIDER=openai, and the embedder and review writer when they use openai."""

    model_config = settings_config("OPENAI_")

    api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("OPENAI_API_KEY", "LLM_OPENAI_API_KEY"),
        description="Key for OpenAI or an OpenAI-compatible server (any non-empty value for vLLM/Ollama).",
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "LLM_OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible server, e.g. http://localhost:8001/v1 (vLLM, Ollama).",
    )
    model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("OPENAI_MODEL", "LLM_OPENAI_MODEL"),
        description="Chat model name for LLM_PROVIDER=openai.",
    )


class AnthropicSettings(BaseSettings):
    """Anthropic's API: the chat model with LLM_PROVIDER=anthropic."""

    model_config = settings_config("ANTHROPIC_")

    api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "LLM_ANTHROPIC_API_KEY"),
        description="Key for LLM_PROVIDER=anthropic.",
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "LLM_ANTHROPIC_BASE_URL"),
        description="Override of the Anthropic API address (a proxy or gateway).",
    )
    model: str = Field(
        default="claude-sonnet-4-6",
        validation_alias=AliasChoices("ANTHROPIC_MODEL", "LLM_ANTHROPIC_MODEL"),
        description="Model name for LLM_PROVIDER=anthropic.",
    )


class LocalModelSettings(BaseSettings):
    """A Hugging Face model served in-process: the chat model with LLM_PROVIDER=local, and how
    every local model (the review writer's too) is loaded and batched."""

    model_config = settings_config("LOCAL_")

    model: str = Field(
        default="K-intelligence/Midm-2.0-Mini-Instruct",
        validation_alias=AliasChoices("LOCAL_MODEL", "LLM_LOCAL_MODEL"),
        description="Hugging Face model id or local directory for LLM_PROVIDER=local.",
    )
    load_in_4bit: bool = Field(
        default=False,
        validation_alias=AliasChoices("LOCAL_LOAD_IN_4BIT", "LLM_LOCAL_LOAD_IN_4BIT"),
        description="Load the local model in 4-bit NF4 (bitsandbytes, CUDA only).",
    )
    load_in_8bit: bool = Field(
        default=False,
        validation_alias=AliasChoices("LOCAL_LOAD_IN_8BIT", "LLM_LOCAL_LOAD_IN_8BIT"),
        description="Load the local model in 8-bit (bitsandbytes, CUDA only).",
    )
    device: str = Field(
        default="auto",
        validation_alias=AliasChoices("LOCAL_DEVICE", "LLM_LOCAL_DEVICE"),
        description="auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        validation_alias=AliasChoices("LOCAL_DTYPE", "LLM_LOCAL_DTYPE"),
        description="auto (bfloat16 on GPUs that support it, float32 on CPU) | float32 | bfloat16 | float16",
    )
    max_batch_size: int = Field(
        default=16,
        ge=1,
        le=256,
        validation_alias=AliasChoices("LOCAL_MAX_BATCH_SIZE", "LLM_LOCAL_MAX_BATCH_SIZE"),
        description="Most requests the local model generates together in one batch.",
    )
    batch_window_ms: float = Field(
        default=10.0,
        ge=0.0,
        le=1000.0,
        validation_alias=AliasChoices("LOCAL_BATCH_WINDOW_MS", "LLM_LOCAL_BATCH_WINDOW_MS"),
        description="Milliseconds the local model waits for more requests to join a batch.",
    )

    @model_validator(mode="after")
    def _one_quantisation(self) -> LocalModelSettings:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("set at most one of LOCAL_LOAD_IN_4BIT and LOCAL_LOAD_IN_8BIT")
        return self


class LLMSettings(BaseSettings):
    """Which language model answers, and how it is reached; each provider's own settings are a
    group of their own (``openai``, ``anthropic``, ``local``)."""

    model_config = settings_config("LLM_")

    provider: LLMProvider = Field(
        default="extractive",
        description="extractive (offline, quotes sources) | fake (tests) | openai | anthropic | local",
    )
    temperature: float = Field(default=0.2, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(default=1024, ge=1, le=32768, description="Most tokens in one answer.")
    timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds before a remote call gives up."
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries on 429 / 5xx / connection errors, with backoff.",
    )

    openai: OpenAISettings = Field(
        default_factory=OpenAISettings,
        description="LLM_PROVIDER=openai: the server and model (OPENAI_*).",
    )
    anthropic: AnthropicSettings = Field(
        default_factory=AnthropicSettings,
        description="LLM_PROVIDER=anthropic: the key and model (ANTHROPIC_*).",
    )
    local: LocalModelSettings = Field(
        default_factory=LocalModelSettings,
        description="LLM_PROVIDER=local: the model and how it is loaded (LOCAL_*).",
    )

    # NoDecode: the variable is name=/path pairs, not the JSON pydantic-settings expects for a dict.
    lora_adapters: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("LORA_ADAPTERS", "LLM_LORA_ADAPTERS"),
        description="Deprecated: REVIEW_ADAPTERS. Adapters for the review model, name=/path,... (empty: none).",
    )

    @field_validator("lora_adapters", mode="before")
    @classmethod
    def _parse_adapters(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_lora_adapters(value, setting="LORA_ADAPTERS")
        return value

    @model_validator(mode="after")
    def _keys_for_selected_provider(self) -> LLMSettings:
        if self.provider == "anthropic" and is_placeholder(self.anthropic.api_key):
            raise ValueError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        if (
            self.provider == "openai"
            and self.openai.base_url is None
            and is_placeholder(self.openai.api_key)
        ):
            raise ValueError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
            )
        return self


class ReviewSettings(BaseSettings):
    """Which model writes reviews (the review writer, ``rag generate``), apart from the chat model.

    Unset values fall back to the chat model's settings (``Settings.review_role()``); the
    ``LOCAL_*`` loading knobs (device, dtype, quantisation, batching) apply to both roles, and a
    local base that both roles name is loaded once.
    """

    model_config = settings_config("REVIEW_")

    provider: ReviewProvider | None = Field(
        default=None,
        description="local | openai (any OpenAI-compatible server, e.g. vLLM with --enable-lora) | "
        "fake (tests) | none (no review writing). Unset: LLM_PROVIDER's if it is local, openai or "
        "fake, else none.",
    )
    model: str | None = Field(
        default=None,
        description="local: hub id or folder of the base model (unset: LOCAL_MODEL); openai: the "
        "base model's name on that server (unset: OPENAI_MODEL).",
    )
    # NoDecode: the variable is name=/path pairs, not the JSON pydantic-settings expects for a dict.
    adapters: Annotated[dict[str, Path] | None, NoDecode] = Field(
        default=None,
        description="LoRA adapters loaded at start: name=/path,name2=/path2 (openai: the names the "
        "server serves them under). Unset: LORA_ADAPTERS. Adapters loaded through "
        "POST /api/models/adapters are kept in the database and loaded at start too.",
    )
    openai_base_url: str | None = Field(
        default=None,
        description="REVIEW_PROVIDER=openai: the server's address, e.g. http://localhost:8001/v1 "
        "(unset: OPENAI_BASE_URL).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="REVIEW_PROVIDER=openai: its key (unset: OPENAI_API_KEY)."
    )

    @field_validator("adapters", mode="before")
    @classmethod
    def _parse_adapters(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_lora_adapters(value, setting="REVIEW_ADAPTERS")
        return value


@dataclass(frozen=True, slots=True)
class ReviewRole:
    """The review model with every fallback applied: what ``Settings.review_role()`` returns."""

    provider: ReviewProvider
    model: str | None
    """Base model (local) or model name (openai); None for fake and none."""
    adapters: dict[str, Path]
    """Adapters to load at start (local) or that the server serves by name (openai)."""
    llm: LLMSettings
    """The settings its client is built from: the chat model's, with the review model, its
    adapters and its OpenAI address and key."""
    deprecations: tuple[str, ...]
    """What in the settings is deprecated, worded for the start-up log."""


class EmbeddingSettings(BaseSettings):
    """Which model turns text into vectors."""

    model_config = settings_config("EMBEDDING_")

    provider: EmbeddingProvider = Field(
        default="hash",
        description="hash (offline, character n-grams) | sentence-transformers | openai",
    )
    model: str = Field(
        default="intfloat/multilingual-e5-small",
        description="Model id or local path (sentence-transformers) or model name (openai).",
    )
    dimension: int = Field(
        default=768,
        ge=8,
        le=16000,
        description="Vector size of the hash embedder (other providers report their own).",
    )
    batch_size: int = Field(default=32, ge=1, le=2048, description="Texts embedded per call.")
    device: str | None = Field(
        default=None, description="Device for sentence-transformers (cpu, cuda, mps); unset: auto."
    )


def parse_lora_adapters(value: str, *, setting: str = "REVIEW_ADAPTERS") -> dict[str, Path]:
    """``"reviews=/a,other=/b"`` → ``{"reviews": Path("/a"), "other": Path("/b")}``; errors name
    ``setting``."""
    adapters: dict[str, Path] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"{setting} entry {item.strip()!r} is not name=/path")
        if not ADAPTER_NAME.fullmatch(name):
            raise ValueError(
                f"{setting} name {name!r}: use letters, digits, '_', '-' or '.' (at most 64)"
            )
        if name in adapters:
            raise ValueError(f"{setting} names {name!r} twice")
        adapters[name] = Path(path).expanduser()
    return adapters
