"""Settings of the services: the database (``DATABASE_*``), retrieval (``RETRIEVAL_*``), the HTTP
server (``API_*``), API keys (``AUTH_*``), background jobs (``JOBS_*``) and file parsing (``PARSE_*``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from limits import parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from app.core.settings_base import settings_config

SearchMode = Literal["hybrid", "dense", "sparse"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
# A PostgreSQL setting's name (extensions' settings have a dot: hnsw.ef_search).
_SERVER_SETTING = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


class DatabaseSettings(BaseSettings):
    """Where the vectors live."""

    model_config = settings_config("DATABASE_")

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
    # NoDecode: the variable is name=value pairs, not JSON.
    embedded_settings: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="PostgreSQL settings of the embedded server over those sized to the machine's "
        "memory, name=value,... (e.g. shared_buffers=2GB,work_mem=32MB); read when it starts.",
    )

    @field_validator("embedded_settings", mode="before")
    @classmethod
    def _parse_embedded_settings(cls, value: object) -> object:
        return parse_server_settings(value) if isinstance(value, str) else value

    @field_validator("embedded_settings")
    @classmethod
    def _check_embedded_settings(cls, value: dict[str, str]) -> dict[str, str]:
        for name, setting in value.items():
            if not _SERVER_SETTING.fullmatch(name):
                raise ValueError(f"DATABASE_EMBEDDED_SETTINGS: {name!r} is no PostgreSQL setting")
            if not setting or len(setting) > 200 or any(c in setting for c in "\n\r\0"):
                raise ValueError(
                    f"DATABASE_EMBEDDED_SETTINGS: the value of {name} must be one line of at "
                    "most 200 characters"
                )
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX")
        return self


class RetrievalSettings(BaseSettings):
    """How documents are cut up and how they are found again."""

    model_config = settings_config("RETRIEVAL_")

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
    # Measured (768-d hash vectors, server CPU): into an empty store 25 new chunks cost 0.01 s
    # inserted and 0.02 s rebuilt, 50 cost 0.06 s and 0.02 s, 250 cost 0.48 s and 0.06 s.
    bulk_load_chunks: int = Field(
        default=50,
        ge=0,
        description="New chunks in one file from which the HNSW index is built after the rows "
        "instead of updated row by row, on an empty store (more on a full one: see "
        "indexer._REBUILD_SHARE); 0: never.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("RETRIEVAL_CHUNK_OVERLAP must be smaller than RETRIEVAL_CHUNK_SIZE")
        return self


class APISettings(BaseSettings):
    """The HTTP server and its limits."""

    model_config = settings_config("API_")

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    max_upload_mb: float = Field(default=50.0, gt=0, description="Largest accepted file, in MB.")
    max_files: int = Field(default=20, ge=1, description="Most files in one upload request.")
    max_question_chars: int = Field(default=4000, ge=1, description="Longest accepted question.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (JSON list)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names requests may be addressed to (JSON list; guards against DNS "
        'rebinding). Empty: localhost, 127.0.0.1, ::1 and the host the server listens on; ["*"]: any.',
    )
    index_sample_corpus: bool = Field(
        default=True, description="Index the bundled sample documents on first start."
    )
    log_level: str = Field(default="INFO", description="DEBUG | INFO | WARNING | ERROR")

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes: the largest file an upload or an ingest accepts."""
        return int(self.max_upload_mb * 1024 * 1024)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()


class AuthSettings(BaseSettings):
    """API keys and the limits on what one key may ask for (see docs/security.md)."""

    model_config = settings_config("AUTH_")

    disabled: bool = Field(
        default=False,
        description="Serve every request without a key, even on a non-loopback address (a "
        "warning is logged at every start). Only behind something else that authenticates.",
    )
    cache_s: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="Seconds a verified key is trusted without asking the database again: a "
        "revoked key stops working at most this long after `rag keys revoke` (0: at once).",
    )
    client_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("RAG_API_KEY", "AUTH_CLIENT_KEY"),
        description="The API key `rag generate` and `rag models` send to a server that needs one.",
    )
    rate_chat: str = Field(
        default="30/minute",
        description="Most chat requests per key (limits notation, e.g. 30/minute).",
    )
    rate_search: str = Field(default="120/minute", description="Most searches per key.")
    rate_reviews: str = Field(default="30/minute", description="Most review requests per key.")
    rate_uploads: str = Field(default="60/hour", description="Most upload requests per key.")

    @field_validator("rate_chat", "rate_search", "rate_reviews", "rate_uploads")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            rates = parse_many(value)
        except ValueError:
            rates = []
        if not rates or any(rate.amount < 1 for rate in rates):
            raise ValueError(f"{value!r} is not a rate such as 30/minute or 5/second")
        return value


class JobsSettings(BaseSettings):
    """Background jobs and the worker processes that run them."""

    model_config = settings_config("JOBS_")

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
    retention_days: int = Field(
        default=30,
        ge=0,
        le=36500,
        description="Days a finished job (succeeded, failed or cancelled) is kept before the "
        "workers delete it; 0 keeps every job.",
    )

    @model_validator(mode="after")
    def _silence_outlasts_heartbeats(self) -> JobsSettings:
        if self.stalled_after_s <= 2 * self.heartbeat_s:
            raise ValueError("JOBS_STALLED_AFTER_S must be more than twice JOBS_HEARTBEAT_S")
        return self


class ParseSettings(BaseSettings):
    """Limits on reading one file into text; a file over any of them fails alone, with the reason."""

    model_config = settings_config("PARSE_")

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


def parse_server_settings(value: str) -> dict[str, str]:
    """``"shared_buffers=2GB,work_mem=32MB"`` → ``{"shared_buffers": "2GB", "work_mem": "32MB"}``."""
    settings: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, setting = item.partition("=")
        if not sep:
            raise ValueError(f"DATABASE_EMBEDDED_SETTINGS entry {item.strip()!r} is not name=value")
        settings[name.strip().lower()] = setting.strip()
    return settings
