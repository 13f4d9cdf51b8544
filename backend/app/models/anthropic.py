"""Anthropic Claude models through the official SDK's Messages API.

The system prompt travels apart from the turns, as the API wants. The SDK retries 429 / 5xx /
connection errors with backoff (``LLM_MAX_RETRIES``); what is left becomes ``ModelUnavailable``.
This version of the Messages API takes no sampling knobs (temperature, top-p, seed), so of
``GenerationOptions`` only ``max_tokens`` applies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic

from app.core.config import LLMSettings
from app.core.errors import ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions
from app.models.provider_errors import connection_failure, status_failure

_OFFICIAL_ADDRESS = "https://api.anthropic.com"


class AnthropicLLM:
    """Messages (whole or streamed) through ``anthropic.AsyncAnthropic``."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        self._model = settings.anthropic.model
        self._address = settings.anthropic.base_url or _OFFICIAL_ADDRESS
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic.api_key.get_secret_value(),
            base_url=self._address,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    @property
    def name(self) -> str:
        """``anthropic:{model}``."""
        return f"anthropic:{self._model}"

    def _request(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None
    ) -> dict[str, Any]:
        options = options or GenerationOptions()
        request: dict[str, Any] = {
            "model": self._model,
            "max_tokens": options.max_tokens or self._settings.max_tokens,
            "messages": _turns(messages),
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            request["system"] = system
        return request

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """The text of one message."""
        try:
            response = await self._client.messages.create(**self._request(messages, options))
        except anthropic.APIError as error:
            raise _translate(error, self._address) from error
        return "".join(block.text for block in response.content if block.type == "text")

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """The text as the server streams it (server-sent events)."""
        try:
            async with self._client.messages.stream(**self._request(messages, options)) as stream:
                async for text in stream.text_stream:
                    if text:
                        yield text
        except anthropic.APIError as error:
            raise _translate(error, self._address) from error

    async def check(self) -> None:
        """List one model: cheap, and it proves the address and the key."""
        try:
            await self._client.models.list(limit=1)
        except anthropic.APIError as error:
            raise _translate(error, self._address) from error

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()


def _turns(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """User and assistant turns, neighbours of the same role merged (the API wants them alternating)."""
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    return turns


def _translate(error: anthropic.APIError, address: str) -> ModelUnavailable:
    if isinstance(error, anthropic.APIStatusError):
        return status_failure(
            "Anthropic",
            error.status_code,
            error.body,
            key_setting="ANTHROPIC_API_KEY",
            model_setting="ANTHROPIC_MODEL",
        )
    if isinstance(error, anthropic.APIConnectionError):
        return connection_failure(
            "Anthropic", address, timed_out=isinstance(error, anthropic.APITimeoutError)
        )
    return ModelUnavailable(f"Anthropic returned an unusable response: {error.message}")
