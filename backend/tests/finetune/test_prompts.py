"""The review prompt, and the chat template chosen for training and generation."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from app.core.errors import InvalidInput
from app.finetune.prompts import render_review_prompt
from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE, chat_template_for, template_injects_text
from app.models.review_prompt import REVIEW_SYSTEM_PROMPT, review_messages, review_user_prompt


def test_user_prompt_names_rating_scale_and_subject() -> None:
    assert review_user_prompt(8, 10) == "별점 8/10점 리뷰를 써 주세요"
    assert (
        review_user_prompt(2, 5, " 무선 청소기 ")
        == "별점 2/5점 리뷰를 써 주세요\n대상: 무선 청소기"
    )
    assert review_messages(3, 5) == [
        {"role": "system", "content": REVIEW_SYSTEM_PROMPT},
        {"role": "user", "content": "별점 3/5점 리뷰를 써 주세요"},
    ]


@pytest.mark.parametrize(("rating", "scale"), [(0, 10), (11, 10), (6, 5), (1, 1)])
def test_user_prompt_rejects_impossible_ratings(rating: int, scale: int) -> None:
    with pytest.raises(InvalidInput):
        review_user_prompt(rating, scale)


def test_injecting_template_is_replaced_by_the_compact_one(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert template_injects_text(tokenizer)
    assert chat_template_for(tokenizer) == COMPACT_LLAMA3_TEMPLATE
    prompt = render_review_prompt(tokenizer, 9, 10)
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"{REVIEW_SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "별점 9/10점 리뷰를 써 주세요<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_a_template_that_injects_nothing_is_kept(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = (
        "{%- for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content }}<|eot_id|>{%- endfor %}"
        "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{%- endif %}"
    )
    tokenizer.chat_template = plain
    assert not template_injects_text(tokenizer)
    assert chat_template_for(tokenizer) == plain
