"""The review-writing prompt: the contract between the review writer that sends it
(``pipelines/reviews.py``) and the adapter trained on it (``app.finetune``).

Both import these functions, so an adapter is asked at serving time in exactly the words it was
trained on; the chat template that renders them is ``app.hf.chat_template``'s.
"""

from __future__ import annotations

from app.core.errors import InvalidInput

REVIEW_SYSTEM_PROMPT = "너는 리뷰 작가다. 주어진 별점에 어울리는 짧은 한국어 리뷰를 쓴다."


def review_user_prompt(rating: int, scale: int, subject: str | None = None) -> str:
    """The user turn asking for a review with ``rating`` stars out of ``scale``."""
    if scale < 2:
        raise InvalidInput(f"rating scale must be at least 2, got {scale}")
    if not 1 <= rating <= scale:
        raise InvalidInput(f"rating must be between 1 and {scale}, got {rating}")
    prompt = f"별점 {rating}/{scale}점 리뷰를 써 주세요"
    if subject and subject.strip():
        prompt += f"\n대상: {subject.strip()}"
    return prompt


def review_messages(rating: int, scale: int, subject: str | None = None) -> list[dict[str, str]]:
    """System and user turns of a review request, ready for a chat template."""
    return [
        {"role": "system", "content": REVIEW_SYSTEM_PROMPT},
        {"role": "user", "content": review_user_prompt(rating, scale, subject)},
    ]
