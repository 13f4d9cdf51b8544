"""The text format of a RAG prompt's sources and question: the contract between the pipeline that
writes it and the offline models that read it back.

The sources block is plain text any LLM can read::

    <sources>
    [1] 제목: 회사 규정.md
    본문 ...
    [2] 제목: ...
    </sources>

    질문: ...

``parse_sources`` and ``parse_question`` read it back, so an offline model (the extractive
adapter) can answer from exactly what a remote LLM would see, without a side channel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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


def format_question(question: str, sources: Sequence[PromptSource]) -> str:
    """The user message of a RAG prompt: the sources block, then the question."""
    return f"{format_sources(sources)}\n\n{_QUESTION_MARK} {question.strip()}"


def is_rag_prompt(prompt: str) -> bool:
    """Whether ``prompt`` carries a sources block (``format_sources`` wrote it)."""
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
    """Return the question that ``format_question`` put after the sources."""
    index = prompt.rfind(_QUESTION_MARK)
    return prompt[index + len(_QUESTION_MARK) :].strip() if index >= 0 else prompt.strip()
