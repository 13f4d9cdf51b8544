"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.config import ADAPTER_NAME, ReviewProvider, SearchMode
from app.retriever.types import DocumentStatus
from app.text import normalize_json, normalize_line, normalize_text, request_text_problem


def _accepted(value: str) -> str:
    problem = request_text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _request_text(value: str) -> str:
    return normalize_text(_accepted(value))


def _request_name(value: str) -> str:
    return normalize_line(_accepted(value))


def _request_filters(filters: dict[str, Any]) -> dict[str, Any]:
    for key, value in filters.items():
        for text in [key, *(value if isinstance(value, list) else [value])]:
            if isinstance(text, str) and (problem := request_text_problem(text)) is not None:
                raise ValueError(f"filter keys and values {problem}")
    return normalize_json(filters)


# Request fields pass the text boundary (``app.text``) the stored documents passed: NUL and lone
# surrogates are refused with 422, the rest is normalised so that it compares with what is stored.
# RequestText is running text (a query, a question, a message); RequestName a one-line name (a
# collection, a document id).
RequestText = Annotated[str, AfterValidator(_request_text)]
RequestName = Annotated[str, AfterValidator(_request_name)]

FilterValue = str | int | float | bool | list[str | int | float | bool]
Filters = Annotated[dict[str, FilterValue], AfterValidator(_request_filters)]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong, for people (English).")
    params: dict[str, str | int | float] = Field(
        default_factory=dict,
        exclude_if=lambda params: not params,
        description="Values the message names (file name, limit), for clients that word it "
        "themselves from the code; left out when the message names none.",
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: RequestText = Field(min_length=1, max_length=4000, description="What to look for.")
    top_k: int | None = Field(default=None, ge=1, le=100, description="How many chunks to return.")
    mode: SearchMode | None = Field(default=None, description="hybrid (default) | dense | sparse")
    collection: RequestName | None = Field(
        default=None, max_length=100, description="Collection to search."
    )
    filters: Filters | None = Field(
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
    content: RequestText = Field(max_length=20000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: RequestText = Field(min_length=1, description="The user's question.")
    history: list[HistoryMessage] = Field(
        default_factory=list, max_length=50, description="Earlier turns, oldest first."
    )
    top_k: int | None = Field(default=None, ge=1, le=50, description="Passages given to the LLM.")
    mode: SearchMode | None = Field(default=None, description="Retrieval mode.")
    collection: RequestName | None = Field(default=None, max_length=100)
    filters: Filters | None = None


class SourceOut(BaseModel):
    number: int = Field(description="The n of the [n] citations in the answer.")
    document_id: str
    chunk_id: str
    title: str
    source: str
    text: str
    score: float
    metadata: dict[str, Any]
    filename: str = Field(description="The file's name, without the folders of `source`.")
    page: int | None = Field(
        description="Page, slide or sheet (1-based) where the passage begins; null when the "
        "format has none."
    )
    page_end: int | None = Field(description="Last page of a passage that runs onto later pages.")
    page_label: str | None = Field(description="The page's own name, e.g. a sheet's.")
    page_unit: Literal["page", "slide", "sheet"] | None = Field(
        description="What `page` counts; null when there is no page."
    )


class ChatResponse(BaseModel):
    answer: str
    sources: list[SourceOut]
    cited: list[int] = Field(description="Source numbers the answer cites, in order of first use.")


class DocumentOut(BaseModel):
    id: str
    collection: str
    source: str
    title: str
    status: DocumentStatus
    error: str | None
    chunk_count: int
    size_bytes: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int = Field(description="How many documents the list holds, on all pages.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; none on the last page."
    )


class UploadResult(BaseModel):
    filename: str
    document_id: str | None
    outcome: Literal["indexed", "unchanged", "failed", "removed", "rejected"]
    chunks: int = 0
    error: ErrorDetail | None = None


class UploadResponse(BaseModel):
    results: list[UploadResult]


class UploadAccepted(BaseModel):
    job_id: str = Field(description="The job that indexes the files: `GET /api/jobs/{job_id}`.")


class JobProgress(BaseModel):
    done: int = Field(
        description="Items done. For ingest: documents (a file counts as one until read)."
    )
    total: int = Field(description="Items known so far; grows as files turn out to hold several.")


class GovernorState(BaseModel):
    state: Literal["running", "paused"]
    reason: (
        Literal["user", "schedule", "cpu_load", "gpu_busy", "gpu_temperature", "gpu_power"] | None
    ) = Field(description="Why it is paused; null while it runs.")
    since: str | None = Field(description="When this state began (ISO 8601).")
    resumes_at: str | None = Field(
        description="When a schedule pause ends (the next window's start); null otherwise."
    )


class FinetuneInfo(BaseModel):
    dataset_id: str
    eval_dataset_id: str | None
    model: str = Field(description="The base model trained on.")
    method: str = Field(description="lora or qlora.")
    config: dict[str, Any] = Field(
        description="Every setting of the run, as `rag finetune train` records it in run.json."
    )
    device: str
    phase: Literal["queued", "training", "evaluating", "done"]
    adapter_ready: bool = Field(description="Whether the trained adapter is saved (publishable).")
    eval: dict[str, Any] | None = Field(
        description="The `rag finetune eval` report (base vs adapter vs real reviews); null "
        "until the evaluation is done or when there is no evaluation data set."
    )
    eval_error: ErrorDetail | None = Field(description="Why the evaluation failed, if it did.")
    published: list[str] = Field(description="Names the review writer serves the adapter under.")


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="What the job does: ingest or finetune.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: JobProgress
    results: list[UploadResult] = Field(
        description="Per file, as the synchronous upload's results, as far as the job got."
    )
    error: ErrorDetail | None = Field(description="Why the job failed; null unless it did.")
    created_at: datetime
    updated_at: datetime
    pause_requested: bool = Field(
        default=False, description="A training job asked to pause: it idles between steps."
    )
    metrics: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Training jobs: the logged steps ({step, loss, lr, tokens_per_s, elapsed_s, "
        "epoch}), at most 2,000 evenly spread ones. In the event stream, each event holds only "
        "the steps logged since the one before. Empty in lists of jobs.",
    )
    eta_s: float | None = Field(
        default=None, description="Training jobs: seconds to the last step at the recent pace."
    )
    governor: GovernorState | None = Field(
        default=None,
        description="Training jobs while training: running, or paused and why (user, schedule, "
        "the machine's CPU load, another process on the GPU, GPU temperature or power).",
    )
    finetune: FinetuneInfo | None = Field(default=None, description="Training jobs only.")


class JobList(BaseModel):
    jobs: list[JobOut] = Field(description="Newest first.")
    total: int = Field(description="All jobs, on every page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


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


class ReviewStatus(BaseModel):
    provider: ReviewProvider = Field(description="REVIEW_PROVIDER: local, openai, fake or none.")
    name: str | None = Field(description="The review model, e.g. local:<base>; null for none.")
    adapters: list[str] = Field(description="Adapters a review request may name now.")
    shares_chat_model: bool = Field(description="The chat model is the same loaded base.")


class StatusResponse(BaseModel):
    version: str
    llm: ProviderInfo = Field(description="The chat model (LLM_PROVIDER).")
    reviews: ReviewStatus = Field(description="The review writer (REVIEW_PROVIDER).")
    embedding: EmbeddingInfo
    database: DatabaseInfo
    retrieval: RetrievalInfo
    limits: LimitsInfo


class ModelRoleInfo(BaseModel):
    """One model role: its provider and model, and how a local one is loaded."""

    provider: str
    name: str | None = Field(
        description="Provider and model, e.g. local:<base>; null when REVIEW_PROVIDER=none."
    )
    base_model: str | None = Field(description="Base model id or folder (local only).")
    device: str | None = Field(description="cpu, cuda, mps (local only).")
    dtype: str | None = Field(description="float32, bfloat16, float16 (local only).")
    quantization: str | None = Field(description="4bit, 8bit or null.")


class AdapterRunInfo(BaseModel):
    """How an adapter was trained (its run.json and train_log.jsonl), and its eval.json summary."""

    base_model: str | None
    method: str | None = Field(description="lora or qlora.")
    data: str | None = Field(description="The training data file.")
    examples: int | None = Field(description="Reviews kept for training.")
    steps: int | None = Field(description="Optimizer steps done; null while it was unfinished.")
    total_steps: int | None
    final_loss: float | None = Field(description="Loss of the last logged step.")
    finished_at: str | None = Field(description="ISO time the run finished; null if it did not.")
    eval: dict[str, float | str | None] | None = Field(
        description="From eval.json beside the adapter (`rag finetune eval --out`): data, "
        "rating_consistency, perplexity, distinct_1, distinct_2, copy_rate, empty_rate of the "
        "adapter, base_rating_consistency and base_perplexity; null when not evaluated."
    )


class AdapterInfo(BaseModel):
    name: str = Field(description="What a review request names as `adapter`.")
    path: str = Field(description="The adapter's folder on the server.")
    origin: Literal["settings", "api"] = Field(
        description="settings: REVIEW_ADAPTERS; api: loaded at run time, kept in the database."
    )
    run: AdapterRunInfo | None = Field(description="Null when the folder has no run.json.")


class ReviewRoleInfo(ModelRoleInfo):
    provider: ReviewProvider
    writes_reviews: bool = Field(description="False when REVIEW_PROVIDER=none.")
    loads_adapters: bool = Field(
        description="Adapters can be loaded and unloaded while the server runs (local)."
    )
    shares_chat_model: bool = Field(description="Chat answers come from this same loaded base.")
    adapters: list[AdapterInfo] = Field(description="Adapters a review request may name now.")


class ModelsResponse(BaseModel):
    chat: ModelRoleInfo = Field(description="The chat answerer (LLM_*).")
    reviews: ReviewRoleInfo = Field(description="The review writer (REVIEW_*).")


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=f"^{ADAPTER_NAME.pattern}$",
        description="Letters, digits, '_', '-', '.' (at most 64): what review requests name.",
    )


class AdapterLoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=f"^{ADAPTER_NAME.pattern}$",
        description="Letters, digits, '_', '-', '.' (at most 64): what review requests name.",
    )
    path: RequestName = Field(
        min_length=1,
        max_length=4096,
        description="Absolute path of the adapter folder on the server (what "
        "`rag finetune train --output` wrote).",
    )
