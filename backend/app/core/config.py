"""Settings: the one place that reads environment variables and ``.env``.

Each group is its own ``BaseSettings`` with an env prefix, so variables stay flat and readable
(``LLM_PROVIDER``, ``EMBEDDING_MODEL``, ``DATABASE_URL``) while code reads ``settings.llm.provider``.
Every variable is documented in ``.env.example`` at the repository root.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LLMProvider = Literal["extractive", "fake", "openai", "anthropic", "local"]
EmbeddingProvider = Literal["hash", "sentence-transformers", "openai"]
SearchMode = Literal["hybrid", "dense", "sparse"]

_PLACEHOLDER_KEYS = {"", "changeme", "your-key-here", "sk-...", "sk-xxx", "xxx"}


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `DATABASE_URL=` copied from .env.example means "not set", not "the empty URL".
        env_ignore_empty=True,
        # Code and tests may use field names (data_dir=...) where the environment uses aliases.
        populate_by_name=True,
    )


class DatabaseSettings(BaseSettings):
    """Where the vectors live."""

    model_config = _config("DATABASE_")

    url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: embedded server in data_dir.",
    )
    data_dir: Path = Field(
        default=Path("./data"),
        validation_alias=AliasChoices("RAG_DATA_DIR", "DATABASE_DATA_DIR"),
        description="Folder of the embedded PostgreSQL (and other local state) when DATABASE_URL is unset.",
    )
    pool_min: int = Field(default=1, ge=0, description="Connections kept open in the pool.")
    pool_max: int = Field(default=8, ge=1, description="Most connections the pool opens.")
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection before answering 503."
    )

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX")
        return self


class LLMSettings(BaseSettings):
    """Which language model answers, and how it is reached."""

    model_config = _config("LLM_")

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

    openai_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("OPENAI_API_KEY", "LLM_OPENAI_API_KEY"),
        description="Key for OpenAI or an OpenAI-compatible server (any non-empty value for vLLM/Ollama).",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "LLM_OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible server, e.g. http://localhost:8001/v1 (vLLM, Ollama).",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("OPENAI_MODEL", "LLM_OPENAI_MODEL"),
        description="Chat model name for LLM_PROVIDER=openai.",
    )
    anthropic_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "LLM_ANTHROPIC_API_KEY"),
        description="Key for LLM_PROVIDER=anthropic.",
    )
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "LLM_ANTHROPIC_BASE_URL"),
        description="Override of the Anthropic API address (a proxy or gateway).",
    )
    anthropic_model: str = Field(
        default="claude-sonnet-4-6",
        validation_alias=AliasChoices("ANTHROPIC_MODEL", "LLM_ANTHROPIC_MODEL"),
        description="Model name for LLM_PROVIDER=anthropic.",
    )

    local_model: str = Field(
        default="K-intelligence/Midm-2.0-Mini-Instruct",
        validation_alias=AliasChoices("LOCAL_MODEL", "LLM_LOCAL_MODEL"),
        description="Hugging Face model id or local directory for LLM_PROVIDER=local.",
    )
    # NoDecode: the variable is name=/path pairs, not the JSON pydantic-settings expects for a dict.
    lora_adapters: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("LORA_ADAPTERS", "LLM_LORA_ADAPTERS"),
        description="LoRA adapters served on the local model: name=/path,name2=/path2 (empty: none).",
    )
    local_load_in_4bit: bool = Field(
        default=False,
        validation_alias=AliasChoices("LOCAL_LOAD_IN_4BIT", "LLM_LOCAL_LOAD_IN_4BIT"),
        description="Load the local model in 4-bit NF4 (bitsandbytes, CUDA only).",
    )
    local_load_in_8bit: bool = Field(
        default=False,
        validation_alias=AliasChoices("LOCAL_LOAD_IN_8BIT", "LLM_LOCAL_LOAD_IN_8BIT"),
        description="Load the local model in 8-bit (bitsandbytes, CUDA only).",
    )
    local_device: str = Field(
        default="auto",
        validation_alias=AliasChoices("LOCAL_DEVICE", "LLM_LOCAL_DEVICE"),
        description="auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps",
    )
    local_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        validation_alias=AliasChoices("LOCAL_DTYPE", "LLM_LOCAL_DTYPE"),
        description="auto (bfloat16 on GPUs that support it, float32 on CPU) | float32 | bfloat16 | float16",
    )
    local_max_batch_size: int = Field(
        default=16,
        ge=1,
        le=256,
        validation_alias=AliasChoices("LOCAL_MAX_BATCH_SIZE", "LLM_LOCAL_MAX_BATCH_SIZE"),
        description="Most requests the local model generates together in one batch.",
    )
    local_batch_window_ms: float = Field(
        default=10.0,
        ge=0.0,
        le=1000.0,
        validation_alias=AliasChoices("LOCAL_BATCH_WINDOW_MS", "LLM_LOCAL_BATCH_WINDOW_MS"),
        description="Milliseconds the local model waits for more requests to join a batch.",
    )

    @field_validator("lora_adapters", mode="before")
    @classmethod
    def _parse_adapters(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_lora_adapters(value)
        return value

    @model_validator(mode="after")
    def _one_quantisation(self) -> LLMSettings:
        if self.local_load_in_4bit and self.local_load_in_8bit:
            raise ValueError("set at most one of LOCAL_LOAD_IN_4BIT and LOCAL_LOAD_IN_8BIT")
        return self

    @model_validator(mode="after")
    def _keys_for_selected_provider(self) -> LLMSettings:
        if self.provider == "anthropic" and _is_placeholder(self.anthropic_api_key):
            raise ValueError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        if (
            self.provider == "openai"
            and self.openai_base_url is None
            and _is_placeholder(self.openai_api_key)
        ):
            raise ValueError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)"
            )
        return self


class EmbeddingSettings(BaseSettings):
    """Which model turns text into vectors."""

    model_config = _config("EMBEDDING_")

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


class RetrievalSettings(BaseSettings):
    """How documents are cut up and how they are found again."""

    model_config = _config("RETRIEVAL_")

    chunk_size: int = Field(default=500, ge=50, le=8000, description="Target characters per chunk.")
    chunk_overlap: int = Field(
        default=100, ge=0, description="Characters repeated between neighbouring chunks."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Passages given to the LLM by default.")
    mode: SearchMode = Field(default="hybrid", description="hybrid | dense | sparse")
    fusion: Literal["score", "rrf"] = Field(
        default="score",
        description="How hybrid merges dense and sparse: score (weighted min-max scores) | rrf (reciprocal ranks).",
    )
    dense_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Share of the dense score in score fusion (0.2 suits the hash embedder; ~0.5 a neural one).",
    )
    rrf_k: int = Field(
        default=60, ge=1, description="Reciprocal rank fusion constant (larger flattens ranks)."
    )
    candidates: int = Field(
        default=50, ge=1, le=1000, description="Candidates taken from each ranking before fusion."
    )
    ef_search: int = Field(
        default=100, ge=10, le=1000, description="HNSW ef_search: higher is slower and more exact."
    )
    default_collection: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        description="Collection used when none is named.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("RETRIEVAL_CHUNK_OVERLAP must be smaller than RETRIEVAL_CHUNK_SIZE")
        return self


class APISettings(BaseSettings):
    """The HTTP server and its limits."""

    model_config = _config("API_")

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    max_upload_mb: float = Field(default=50.0, gt=0, description="Largest accepted file, in MB.")
    max_files: int = Field(default=20, ge=1, description="Most files in one upload request.")
    max_question_chars: int = Field(default=4000, ge=1, description="Longest accepted question.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (JSON list)."
    )
    index_sample_corpus: bool = Field(
        default=True, description="Index the bundled sample documents on first start."
    )
    log_level: str = Field(default="INFO", description="DEBUG | INFO | WARNING | ERROR")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()


class Settings(BaseSettings):
    """All settings, grouped. Build your own in tests: ``Settings(llm=LLMSettings(provider="fake"))``."""

    model_config = _config("RAG_")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    api: APISettings = Field(default_factory=APISettings)


def parse_lora_adapters(value: str) -> dict[str, Path]:
    """``"reviews=/a,other=/b"`` → ``{"reviews": Path("/a"), "other": Path("/b")}``."""
    adapters: dict[str, Path] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"LORA_ADAPTERS entry {item.strip()!r} is not name=/path")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(
                f"LORA_ADAPTERS name {name!r}: use letters, digits, '_', '-' or '.' (at most 64)"
            )
        if name in adapters:
            raise ValueError(f"LORA_ADAPTERS names {name!r} twice")
        adapters[name] = Path(path).expanduser()
    return adapters


def _is_placeholder(key: SecretStr) -> bool:
    return key.get_secret_value().strip().lower() in _PLACEHOLDER_KEYS


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
