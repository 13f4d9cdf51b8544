"""``/api/reviews``: reviews for a star rating, written by the review model (``REVIEW_*``).

The body is validated first (422 in any model state), then whether a model writes reviews (503
with how to configure one), then whether the adapter it names is loaded (422).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ReaderDep, ReviewModelDep, rate_limited
from app.api.schemas import ErrorResponse
from app.api.sse import format_event, sse_response
from app.pipelines.reviews import (
    MAX_NEW_TOKENS,
    MAX_REVIEWS,
    MAX_SUBJECT_CHARS,
    ReviewRequest,
    ReviewsDone,
    ReviewToken,
    WrittenReview,
    review_writer_for,
)

router = APIRouter(prefix="/api/reviews", tags=["reviews"])

_ERRORS = {422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


class ReviewGenerateRequest(BaseModel):
    """What to write; ``rating`` must be within ``1..scale``."""

    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=10, description="Stars, 1..scale.")
    scale: Literal[5, 10] = Field(default=10, description="Out of how many stars.")
    subject: str | None = Field(
        default=None, max_length=MAX_SUBJECT_CHARS, description="Movie or product name."
    )
    n: int = Field(default=1, ge=1, le=MAX_REVIEWS, description="How many reviews.")
    temperature: float = Field(default=0.9, ge=0.0, le=2.0, description="0 is greedy.")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(default=128, ge=1, le=MAX_NEW_TOKENS)
    seed: int | None = Field(default=None, ge=0, description="Same seed, same reviews.")
    adapter: str | None = Field(
        default=None,
        description="LoRA adapter name (GET /api/models lists them); null for the base model.",
    )

    def to_request(self) -> ReviewRequest:
        """The pipeline's request."""
        return ReviewRequest(**self.model_dump())


class ReviewOut(BaseModel):
    text: str
    rating: int


class ReviewsResponse(BaseModel):
    reviews: list[ReviewOut]
    model: str = Field(description="The model that wrote them, e.g. local:<base model>.")
    adapter: str | None = Field(description="The adapter that wrote them; null for the base model.")


def _response(reviews: list[WrittenReview], model: str, adapter: str | None) -> ReviewsResponse:
    return ReviewsResponse(
        reviews=[ReviewOut(text=r.text, rating=r.rating) for r in reviews],
        model=model,
        adapter=adapter,
    )


@router.post(
    "/generate",
    response_model=ReviewsResponse,
    responses=_ERRORS,
    dependencies=[rate_limited("reviews")],
)
async def generate(
    body: ReviewGenerateRequest, model: ReviewModelDep, _: ReaderDep
) -> ReviewsResponse:
    """Write ``n`` reviews that match the rating, with the prompt the adapter was trained on."""
    request = body.to_request()
    writer = review_writer_for(model, request)
    reviews = await writer.generate(request)
    return _response(reviews, writer.model_name, body.adapter)


@router.post(
    "/generate/stream",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    dependencies=[rate_limited("reviews")],
)
async def generate_stream(body: ReviewGenerateRequest, model: ReviewModelDep, _: ReaderDep):
    """Stream the reviews as Server-Sent Events: ``token`` ``{index, text}`` events, then ``done``.

    ``done`` carries the same body as ``POST /api/reviews/generate``. The reviews are written
    together, so their tokens arrive interleaved; a failure after streaming began arrives as an
    ``error`` event.
    """
    request = body.to_request()
    writer = review_writer_for(model, request)
    events = writer.stream(request)

    async def frames() -> AsyncIterator[str]:
        async for event in events:
            match event:
                case ReviewToken(index=index, text=text):
                    yield format_event("token", {"index": index, "text": text})
                case ReviewsDone(reviews=reviews):
                    done = _response(reviews, writer.model_name, body.adapter)
                    yield format_event("done", done.model_dump(mode="json"))

    return sse_response(frames())
