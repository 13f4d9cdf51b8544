"""FakeLLM: deterministic echo answers with citations, scripted replies and failures, recorded calls."""

from __future__ import annotations

import asyncio

import pytest

from app.core.errors import ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from app.models.fake import FakeLLM
from app.models.rag_format import NO_ANSWER_KO, PromptSource
from app.pipelines.prompts import build_messages

SOURCES = [
    PromptSource(
        1, "도서관", "# 이용 시간\n\n주말에는 오후 5시에 닫습니다. 평일은 10시까지 엽니다."
    )
]
MESSAGES = build_messages("주말에는 언제 닫나요?", SOURCES)


async def _both(llm: FakeLLM) -> tuple[str, list[str]]:
    return await llm.complete(MESSAGES), [p async for p in llm.stream(MESSAGES)]


def test_echoes_question_and_cites_the_first_source() -> None:
    llm = FakeLLM()
    assert isinstance(llm, LLMClient) and llm.name == "fake"
    whole, pieces = asyncio.run(_both(llm))
    assert whole == "질문: 주말에는 언제 닫나요?\n답: 주말에는 오후 5시에 닫습니다. [1]"
    assert len(pieces) > 3 and "".join(pieces) == whole


def test_without_sources_it_finds_nothing() -> None:
    reply = asyncio.run(FakeLLM().complete(build_messages("아무거나", [])))
    assert reply == NO_ANSWER_KO


def test_scripted_replies_and_failures_come_first_and_calls_are_recorded() -> None:
    llm = FakeLLM(["첫 답 [1]", ModelUnavailable("down")])
    options = GenerationOptions(temperature=0.0, max_tokens=5)

    async def run() -> None:
        assert await llm.complete(MESSAGES, options) == "첫 답 [1]"
        with pytest.raises(ModelUnavailable, match="down"):
            [p async for p in llm.stream(MESSAGES)]
        assert (await llm.complete(MESSAGES)).endswith("[1]")

    asyncio.run(run())
    assert [c.options for c in llm.calls] == [options, None, None]
    assert llm.calls[0].messages == tuple(MESSAGES)


def test_check_and_close() -> None:
    llm = FakeLLM(available=False)

    async def run() -> None:
        with pytest.raises(ModelUnavailable):
            await llm.check()
        await FakeLLM().check()
        await llm.aclose()

    asyncio.run(run())
    assert llm.closed


def test_other_tasks_get_a_reply_naming_the_request() -> None:
    messages = [
        ChatMessage("system", "리뷰 작가"),
        ChatMessage("user", "별점 9/10점 리뷰를 써 주세요"),
    ]
    assert asyncio.run(FakeLLM().complete(messages)) == "[fake] 별점 9/10점 리뷰를 써 주세요"
