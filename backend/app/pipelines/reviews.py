"""Review writing: a star rating in, reviews out, through the review model's ``LLMClient``.

The prompt is the one the adapter was trained on (``app.models.review_prompt.review_messages``),
so a LoRA adapter sees at generation time exactly the text it learnt from. ``n`` reviews are ``n``
concurrent requests with seeds derived from the request's seed: a batching model (``LocalLLM``)
generates them together, and the same request with the same seed gives the same reviews.

A request is checked in this order: its own values (``validate_request``), then whether a model
writes reviews at all, then whether the adapter it names is loaded, so that an invalid request is
``InvalidInput`` whatever the state of the models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from app.core.errors import InvalidInput
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from app.models.review_model import ReviewModel, unknown_adapter
from app.models.review_prompt import review_messages

SCALES = (5, 10)
MAX_REVIEWS = 8
MAX_NEW_TOKENS = 512
MAX_SUBJECT_CHARS = 200


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """What to write: the rating and its scale, an optional subject, and sampling knobs."""

    rating: int
    scale: int = 10
    subject: str | None = None
    n: int = 1
    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int | None = None
    adapter: str | None = None


@dataclass(frozen=True, slots=True)
class WrittenReview:
    """One written review and the rating it was written for."""

    text: str
    rating: int


@dataclass(frozen=True, slots=True)
class ReviewToken:
    """A piece of review number ``index`` (0-based), as it is generated."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ReviewsDone:
    """All reviews, finished."""

    reviews: list[WrittenReview]


ReviewEvent = ReviewToken | ReviewsDone


class ReviewWriter:
    """Writes reviews with an injected LLM; ``adapters`` are the adapter names it may ask for."""

    def __init__(self, llm: LLMClient, *, adapters: Sequence[str] = ()) -> None:
        self._llm = llm
        self._adapters = tuple(adapters)

    @property
    def model_name(self) -> str:
        """The name of the model that writes, e.g. ``local:<base>``."""
        return self._llm.name

    async def generate(self, request: ReviewRequest) -> list[WrittenReview]:
        """Write ``request.n`` reviews at once (concurrently, so a batching model batches them)."""
        messages = self._messages(request)
        texts = await asyncio.gather(
            *(self._llm.complete(messages, options) for options in self._options(request))
        )
        return [WrittenReview(text.strip(), request.rating) for text in texts]

    def stream(self, request: ReviewRequest) -> AsyncIterator[ReviewEvent]:
        """Validate now, then yield pieces of the reviews as they are written, then all of them.

        The reviews are written at once (a batching model generates them together), so pieces
        of different reviews arrive interleaved, each with its review's index.
        """
        messages = self._messages(request)
        return self._stream(request, messages)

    async def _stream(
        self, request: ReviewRequest, messages: list[ChatMessage]
    ) -> AsyncIterator[ReviewEvent]:
        # (index, piece), (index, None) when that review is finished, or the error that ended it.
        arrivals: asyncio.Queue[tuple[int, str | None] | Exception] = asyncio.Queue()

        async def write(index: int, options: GenerationOptions) -> None:
            try:
                async for piece in self._llm.stream(messages, options):
                    if piece:
                        arrivals.put_nowait((index, piece))
                arrivals.put_nowait((index, None))
            except Exception as exc:
                arrivals.put_nowait(exc)

        writers = [
            asyncio.create_task(write(index, options))
            for index, options in enumerate(self._options(request))
        ]
        pieces: list[list[str]] = [[] for _ in writers]
        writing = len(writers)
        try:
            while writing:
                arrival = await arrivals.get()
                if isinstance(arrival, Exception):
                    raise arrival
                index, piece = arrival
                if piece is None:
                    writing -= 1
                    continue
                pieces[index].append(piece)
                yield ReviewToken(index, piece)
        finally:
            # The reader left or one review failed: the others stop generating too.
            for writer in writers:
                writer.cancel()
        yield ReviewsDone([WrittenReview("".join(p).strip(), request.rating) for p in pieces])

    def _messages(self, request: ReviewRequest) -> list[ChatMessage]:
        validate_request(request)
        _check_adapter(request.adapter, self._adapters)
        return [
            ChatMessage(m["role"], m["content"])
            for m in review_messages(request.rating, request.scale, request.subject)
        ]

    @staticmethod
    def _options(request: ReviewRequest) -> list[GenerationOptions]:
        seeds = [None if request.seed is None else request.seed + i for i in range(request.n)]
        return [
            GenerationOptions(
                temperature=request.temperature,
                max_tokens=request.max_new_tokens,
                top_p=request.top_p,
                seed=seed,
                adapter=request.adapter,
            )
            for seed in seeds
        ]


def review_writer_for(reviews: ReviewModel, request: ReviewRequest) -> ReviewWriter:
    """The writer for ``request``: ``InvalidInput`` if the request is invalid, then
    ``ModelUnavailable`` (saying how to configure one) if no model writes reviews."""
    validate_request(request)
    llm = reviews.require_llm()
    return ReviewWriter(llm, adapters=list(reviews.adapters()))


def validate_request(request: ReviewRequest) -> None:
    """``InvalidInput`` for values no model could write for (the adapter is checked apart)."""
    if request.scale not in SCALES:
        raise InvalidInput(f"scale must be 5 or 10, got {request.scale}.", code="invalid_scale")
    if not 1 <= request.rating <= request.scale:
        raise InvalidInput(
            f"rating must be between 1 and {request.scale}, got {request.rating}.",
            code="invalid_rating",
        )
    if not 1 <= request.n <= MAX_REVIEWS:
        raise InvalidInput(
            f"n must be between 1 and {MAX_REVIEWS}, got {request.n}.", code="too_many_reviews"
        )
    if not 0.0 <= request.temperature <= 2.0:
        raise InvalidInput(f"temperature must be between 0 and 2, got {request.temperature}.")
    if not 0.0 < request.top_p <= 1.0:
        raise InvalidInput(f"top_p must be in (0, 1], got {request.top_p}.")
    if not 1 <= request.max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInput(
            f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, got {request.max_new_tokens}."
        )
    if request.subject is not None and len(request.subject) > MAX_SUBJECT_CHARS:
        raise InvalidInput(f"subject must be at most {MAX_SUBJECT_CHARS} characters.")


def _check_adapter(adapter: str | None, adapters: Sequence[str]) -> None:
    if adapter is not None and adapter not in adapters:
        raise unknown_adapter(
            adapter,
            adapters,
            when_none="none (set REVIEW_PROVIDER=local and REVIEW_ADAPTERS, or load one with "
            "POST /api/models/adapters)",
        )
