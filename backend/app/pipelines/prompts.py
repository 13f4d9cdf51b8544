"""Prompt templates of the RAG chain, and the one definition of how sources are numbered.

The sources block is plain text any LLM can read::

    <sources>
    [1] 제목: 회사 규정.md
    본문 ...
    [2] 제목: ...
    </sources>

``parse_sources`` reads it back, so an offline model (the extractive adapter) can answer from
exactly what a remote LLM would see, without a side channel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.models.base import ChatMessage

SYSTEM_PROMPT = (
    "당신은 사용자의 문서를 근거로 답하는 한국어 어시스턴트입니다.\n"
    "- <sources> 안의 자료만 근거로 삼고, 자료에 없는 내용은 지어내지 마세요.\n"
    "- 근거로 쓴 문장 뒤에 [1], [2]처럼 출처 번호를 붙이세요.\n"
    "- 자료에 답이 없으면 '제공된 문서에서 답을 찾지 못했습니다.'라고 분명히 말하세요.\n"
    "- 질문이 영어면 영어로, 그 밖에는 한국어로 간결하게 답하세요."
)

NO_ANSWER_KO = "제공된 문서에서 답을 찾지 못했습니다."

_SOURCES_OPEN = "<sources>"
_SOURCES_CLOSE = "</sources>"
_SOURCE_HEADER = re.compile(r"^\[(\d+)\] 제목: (.*)$", re.MULTILINE)
_QUESTION_MARK = "질문:"


@dataclass(frozen=True, slots=True)
class PromptSource:
    """A numbered passage as shown to the model."""

    number: int
    title: str
    text: str


def format_sources(sources: Sequence[PromptSource]) -> str:
    """Render numbered passages inside ``<sources>`` tags."""
    body = "\n\n".join(f"[{s.number}] 제목: {s.title}\n{s.text.strip()}" for s in sources)
    return f"{_SOURCES_OPEN}\n{body}\n{_SOURCES_CLOSE}"


def is_rag_prompt(prompt: str) -> bool:
    """Whether ``prompt`` was built by ``build_messages`` (it carries a sources block)."""
    return _SOURCES_OPEN in prompt and _SOURCES_CLOSE in prompt


def parse_sources(prompt: str) -> list[PromptSource]:
    """Read back the passages that ``format_sources`` wrote into ``prompt``."""
    start = prompt.find(_SOURCES_OPEN)
    end = prompt.find(_SOURCES_CLOSE, start)
    if start < 0 or end < 0:
        return []
    block = prompt[start + len(_SOURCES_OPEN) : end]
    headers = list(_SOURCE_HEADER.finditer(block))
    sources = []
    for i, header in enumerate(headers):
        body_end = headers[i + 1].start() if i + 1 < len(headers) else len(block)
        text = block[header.end() : body_end].strip()
        sources.append(PromptSource(int(header.group(1)), header.group(2).strip(), text))
    return sources


def parse_question(prompt: str) -> str:
    """Return the question that ``build_messages`` put after the sources."""
    index = prompt.rfind(_QUESTION_MARK)
    return prompt[index + len(_QUESTION_MARK) :].strip() if index >= 0 else prompt.strip()


def build_messages(
    question: str,
    sources: Sequence[PromptSource],
    history: Sequence[ChatMessage] = (),
    *,
    max_history: int = 6,
) -> list[ChatMessage]:
    """System prompt, the last ``max_history`` turns, then the sources and the question."""
    recent = [m for m in history if m.role in ("user", "assistant")][-max_history:]
    user = f"{format_sources(sources)}\n\n{_QUESTION_MARK} {question.strip()}"
    return [ChatMessage("system", SYSTEM_PROMPT), *recent, ChatMessage("user", user)]
