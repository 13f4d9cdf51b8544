"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.config import SearchMode

FilterValue = str | int | float | bool | list[str | int | float | bool]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong, for people.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000, description="What to look for.")
    top_k: int | None = Field(default=None, ge=1, le=100, description="How many chunks to return.")
    mode: SearchMode | None = Field(default=None, description="hybrid (default) | dense | sparse")
    collection: str | None = Field(
        default=None, max_length=100, description="Collection to search."
    )
    filters: dict[str, FilterValue] | None = Field(
        default=None,
        description='Metadata equality filters, e.g. {"lang": "ko"}; a list means any of its values.',
    )


class SearchResult(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    results: list[SearchResult]


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=20000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The user's question.")
    history: list[HistoryMessage] = Field(
        default_factory=list, max_length=50, description="Earlier turns, oldest first."
    )
    top_k: int | None = Field(default=None, ge=1, le=50, description="Passages given to the LLM.")
    mode: SearchMode | None = Field(default=None, description="Retrieval mode.")
    collection: str | None = Field(default=None, max_length=100)
    filters: dict[str, FilterValue] | None = None


class SourceOut(BaseModel):
    number: int = Field(description="The n of the [n] citations in the answer.")
    document_id: str
    chunk_id: str
    title: str
    source: str
    text: str
    score: float
    metadata: dict[str, Any]


class ChatResponse(BaseModel):
    answer: str
    sources: list[SourceOut]
    cited: list[int] = Field(description="Source numbers the answer cites, in order of first use.")


class DocumentOut(BaseModel):
    id: str
    collection: str
    source: str
    title: str
    status: Literal["pending", "indexing", "ready", "failed"]
    error: str | None
    chunk_count: int
    size_bytes: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class UploadResult(BaseModel):
    filename: str
    document_id: str | None
    outcome: Literal["indexed", "unchanged", "failed", "removed", "rejected"]
    chunks: int = 0
    error: ErrorDetail | None = None


class UploadResponse(BaseModel):
    results: list[UploadResult]


class CollectionList(BaseModel):
    collections: list[str]


class CheckResult(BaseModel):
    ok: bool
    detail: str


class ReadyResponse(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckResult]


class ProviderInfo(BaseModel):
    provider: str
    name: str


class EmbeddingInfo(ProviderInfo):
    dimension: int


class DatabaseInfo(BaseModel):
    mode: Literal["embedded", "external"]
    ok: bool


class RetrievalInfo(BaseModel):
    mode: SearchMode
    top_k: int


class LimitsInfo(BaseModel):
    max_upload_mb: float
    max_files: int
    max_question_chars: int


class StatusResponse(BaseModel):
    version: str
    llm: ProviderInfo
    embedding: EmbeddingInfo
    database: DatabaseInfo
    retrieval: RetrievalInfo
    limits: LimitsInfo
