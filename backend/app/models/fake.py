"""A deterministic stand-in LLM for tests and demos: no model, no network, the same reply every time.

Without a script it answers from the prompt itself: it repeats the question and the first sentence
of source [1], citing ``[1]``, or says it found nothing when there are no sources; a prompt that is
not a RAG prompt (a review request) gets ``[fake]`` and the request's first line. A script of
replies (strings, or exceptions to raise) lets tests drive the pipeline through exact answers and
failures; the calls it received are recorded for inspection.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from app.core.errors import ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions
from app.models.rag_format import NO_ANSWER_KO, is_rag_prompt, parse_question, parse_sources

_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One request the fake received."""

    messages: tuple[ChatMessage, ...]
    options: GenerationOptions | None


class FakeLLM:
    """Deterministic LLM: scripted replies first, then an echo of the question with ``[1]``."""

    def __init__(
        self,
        replies: Iterable[str | Exception] = (),
        *,
        available: bool = True,
        name: str = "fake",
    ) -> None:
        self._replies: deque[str | Exception] = deque(replies)
        self.available = available
        self._name = name
        self.calls: list[FakeCall] = []
        self.closed = False

    @property
    def name(self) -> str:
        """``fake`` unless named otherwise."""
        return self._name

    def _reply(self, messages: Sequence[ChatMessage], options: GenerationOptions | None) -> str:
        self.calls.append(FakeCall(tuple(messages), options))
        if self._replies:
            scripted = self._replies.popleft()
            if isinstance(scripted, Exception):
                raise scripted
            return scripted
        return _echo_answer(messages)

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """The next scripted reply, or the echo answer."""
        return self._reply(messages, options)

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """The same reply as ``complete``, one word (with its trailing space) at a time."""
        for piece in _PIECE.findall(self._reply(messages, options)):
            # Yield control between pieces, as a real network stream would.
            await asyncio.sleep(0)
            yield piece

    async def check(self) -> None:
        """Raise ``ModelUnavailable`` when built with ``available=False``."""
        if not self.available:
            raise ModelUnavailable("The fake model is set to be unavailable.")

    async def aclose(self) -> None:
        """Remember that it was closed."""
        self.closed = True


def _echo_answer(messages: Sequence[ChatMessage]) -> str:
    """The fake's unscripted reply to the last user message."""
    prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
    if not is_rag_prompt(prompt):
        # Any other task (a review request, say) gets a reply that shows what was asked.
        return f"[fake] {prompt.strip().splitlines()[0] if prompt.strip() else ''}".strip()
    sources = parse_sources(prompt)
    if not sources:
        return NO_ANSWER_KO
    question = parse_question(prompt)
    # Quote the first line of prose: a markdown heading is not an answer.
    lines = [line.strip() for line in sources[0].text.splitlines() if line.strip()]
    prose = next((line for line in lines if not line.startswith("#")), lines[0] if lines else "")
    quote = _SENTENCE_END.split(prose, maxsplit=1)[0]
    return f"질문: {question}\n답: {quote} [1]"
