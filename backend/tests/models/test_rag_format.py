"""The sources block and question read back exactly as the pipeline wrote them."""

from __future__ import annotations

from app.models.rag_format import (
    PromptSource,
    format_question,
    is_rag_prompt,
    parse_question,
    parse_sources,
)
from app.pipelines.prompts import build_messages

SOURCES = [
    PromptSource(1, "회사 규정.md", "  연차는 15일입니다.\n\n입사 첫해는 11일입니다.  "),
    PromptSource(2, "notes [draft].txt", "질문: 이 줄은 본문입니다."),
]


def test_the_pipeline_prompt_reads_back() -> None:
    prompt = build_messages(" 연차는 며칠인가요? ", SOURCES)[-1].content
    assert is_rag_prompt(prompt)
    assert parse_sources(prompt) == [
        PromptSource(1, "회사 규정.md", "연차는 15일입니다.\n\n입사 첫해는 11일입니다."),
        PromptSource(2, "notes [draft].txt", "질문: 이 줄은 본문입니다."),
    ]
    # The question is the text after the last marker, even when a source contains the marker.
    assert parse_question(prompt) == "연차는 며칠인가요?"


def test_a_prompt_without_sources() -> None:
    assert not is_rag_prompt("별점 4/5점 리뷰를 써 주세요")
    assert parse_sources("별점 4/5점 리뷰를 써 주세요") == []
    assert parse_question("  별점 4/5점 리뷰를 써 주세요 ") == "별점 4/5점 리뷰를 써 주세요"


def test_no_sources_is_still_a_rag_prompt() -> None:
    prompt = format_question("무엇이든", [])
    assert is_rag_prompt(prompt)
    assert parse_sources(prompt) == []
    assert parse_question(prompt) == "무엇이든"
