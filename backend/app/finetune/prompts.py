"""The review prompt as training and evaluation render it: the turns of
``app.models.review_prompt`` through the chat template of ``app.hf.chat_template``."""

from __future__ import annotations

from typing import Any

from app.hf.chat_template import render_chat
from app.models.review_prompt import review_messages


def render_review_prompt(
    tokenizer: Any, rating: int, scale: int, subject: str | None = None
) -> str:
    """The generation prompt for a review: system, user, and the opened assistant turn."""
    return render_chat(
        tokenizer, review_messages(rating, scale, subject), add_generation_prompt=True
    )
