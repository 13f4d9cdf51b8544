"""Prompt templates of the RAG chain: the system prompt and the message list sent to the LLM.

The sources and question are written in the format of ``app.models.rag_format``, which offline
models read back.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.models.base import ChatMessage
from app.models.rag_format import NO_ANSWER_KO, PromptSource, format_question

SYSTEM_PROMPT = (
    "당신은 사용자의 문서를 근거로 답하는 한국어 어시스턴트입니다.\n"
    "- <sources> 안의 자료만 근거로 삼고, 자료에 없는 내용은 지어내지 마세요.\n"
    "- 근거로 쓴 문장 뒤에 [1], [2]처럼 출처 번호를 붙이세요.\n"
    f"- 자료에 답이 없으면 '{NO_ANSWER_KO}'라고 분명히 말하세요.\n"
    "- 질문이 영어면 영어로, 그 밖에는 한국어로 간결하게 답하세요."
)


def build_messages(
    question: str,
    sources: Sequence[PromptSource],
    history: Sequence[ChatMessage] = (),
    *,
    max_history: int = 6,
) -> list[ChatMessage]:
    """System prompt, the last ``max_history`` turns, then the sources and the question."""
    recent = [m for m in history if m.role in ("user", "assistant")][-max_history:]
    user = format_question(question, sources)
    return [ChatMessage("system", SYSTEM_PROMPT), *recent, ChatMessage("user", user)]
