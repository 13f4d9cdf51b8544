"""Settings: the one place that reads environment variables and ``.env``.

Each group is its own ``BaseSettings`` with an env prefix, so variables stay flat and readable
(``LLM_PROVIDER``, ``EMBEDDING_MODEL``, ``DATABASE_URL``) while code reads ``settings.llm.provider``.
Every variable is documented in ``.env.example`` at the repository root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LLMProvider = Literal["extractive", "fake", "openai", "anthropic", "local"]
ReviewProvider = Literal["local", "openai", "fake", "none"]
EmbeddingProvider = Literal["hash", "sentence-transformers", "openai"]
SearchMode = Literal["hybrid", "dense", "sparse"]

_PLACEHOLDER_KEYS = {"", "changeme", "your-key-here", "sk-...", "sk-xxx", "xxx"}
# What a LoRA adapter may be called: in settings, in requests, in URLs.
ADAPTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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
    restart_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to keep restarting a dead embedded PostgreSQL before the process "
        "exits with status 3, so that its service manager restarts it.",
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
        description="Deprecated: REVIEW_ADAPTERS. Adapters for the review model, name=/path,... (empty: none).",
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
            return parse_lora_adapters(value, setting="LORA_ADAPTERS")
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


class ReviewSettings(BaseSettings):
    """Which model writes reviews (the review writer, ``rag generate``), apart from the chat model.

    Unset values fall back to the chat model's settings (``Settings.review_role()``); the
    ``LOCAL_*`` loading knobs (device, dtype, quantisation, batching) apply to both roles, and a
    local base that both roles name is loaded once.
    """

    model_config = _config("REVIEW_")

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
        default=40,
        ge=10,
        le=1000,
        description="HNSW ef_search (at least 2 x top-k is used): higher is slower and more exact.",
    )
    default_collection: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        description="Collection used when none is named.",
    )
    bulk_load_chunks: int = Field(
        default=2000,
        ge=0,
        description="New chunks in one file from which the HNSW index is built after the rows "
        "instead of updated row by row, on an empty store (more on a full one); 0: never.",
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


class JobsSettings(BaseSettings):
    """Background jobs and the worker processes that run them."""

    model_config = _config("JOBS_")

    serve_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Worker processes the server starts and stops with itself (0: workers run apart, `rag worker`).",
    )
    concurrency: int = Field(
        default=1, ge=1, le=64, description="Jobs one worker process runs at the same time."
    )
    heartbeat_s: float = Field(
        default=5.0, gt=0, description="Seconds between a worker's signs of life."
    )
    stalled_after_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds of silence after which a worker counts as dead and its jobs are run again.",
    )
    poll_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between a worker's looks for jobs it was not told about (retries, takeovers).",
    )
    retry_wait_s: float = Field(
        default=5.0, ge=0, description="Seconds before a job the database failed runs again."
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a stopping worker gives its jobs to hand themselves back before it exits.",
    )

    @model_validator(mode="after")
    def _silence_outlasts_heartbeats(self) -> JobsSettings:
        if self.stalled_after_s <= 2 * self.heartbeat_s:
            raise ValueError("JOBS_STALLED_AFTER_S must be more than twice JOBS_HEARTBEAT_S")
        return self


class ParseSettings(BaseSettings):
    """Limits on reading one file into text; a file over any of them fails alone, with the reason."""

    model_config = _config("PARSE_")

    timeout_s: float = Field(
        default=300.0, gt=0, description="Seconds one file may take to be read into text."
    )
    memory_mb: int = Field(
        default=2048,
        ge=64,
        description="Memory, in MB, a parsing process may take on top of what it holds when it "
        "starts (Linux); PDFs need about 300 MB of it for Kiwi.",
    )
    max_expanded_mb: float = Field(
        default=256.0,
        gt=0,
        description="Most MB the archive members and compressed streams of one file inflate to.",
    )
    max_html_depth: int = Field(
        default=512, ge=16, description="Deepest nesting of elements in an HTML page."
    )
    max_document_chars: int = Field(
        default=1_000_000,
        ge=1000,
        description="Longest document, in characters of text (a .jsonl line, a .csv row, a file).",
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Parsing processes kept running in each process that indexes files.",
    )


class Settings(BaseSettings):
    """All settings, grouped. Build your own in tests: ``Settings(llm=LLMSettings(provider="fake"))``."""

    model_config = _config("RAG_")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    api: APISettings = Field(default_factory=APISettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    parsing: ParseSettings = Field(default_factory=ParseSettings)

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
            model = review.model or (llm.openai_model if provider == "openai" else llm.local_model)
        adapters = dict(adapters or {}) if model is not None else {}
        update: dict[str, object] = {"lora_adapters": adapters}
        if provider != "none":
            update["provider"] = provider
        if model is not None:
            update |= {"local_model": model, "openai_model": model}
        if review.openai_base_url is not None:
            update["openai_base_url"] = review.openai_base_url
        if review.openai_api_key is not None:
            update["openai_api_key"] = review.openai_api_key
        return ReviewRole(provider, model, adapters, llm.model_copy(update=update), tuple(notes))

    @model_validator(mode="after")
    def _review_model_is_reachable(self) -> Settings:
        role = self.review_role()
        if (
            role.provider == "openai"
            and role.llm.openai_base_url is None
            and _is_placeholder(role.llm.openai_api_key)
        ):
            raise ValueError(
                "REVIEW_PROVIDER=openai needs REVIEW_OPENAI_BASE_URL (or OPENAI_BASE_URL) for a "
                "compatible server, or an API key (REVIEW_OPENAI_API_KEY or OPENAI_API_KEY)"
            )
        return self


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


def _is_placeholder(key: SecretStr) -> bool:
    return key.get_secret_value().strip().lower() in _PLACEHOLDER_KEYS


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
