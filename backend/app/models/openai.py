"""OpenAI chat models, and any OpenAI-compatible server (vLLM, Ollama, LM Studio) via a base URL.

The official SDK does the HTTP work, including retries with backoff on 429 / 5xx / connection
errors (``LLM_MAX_RETRIES``); what is left after those retries becomes ``ModelUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from app.core.config import LLMSettings
from app.core.errors import ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions
from app.models.provider_errors import connection_failure, status_failure

OFFICIAL_ADDRESS = "https://api.openai.com/v1"
# Local OpenAI-compatible servers ignore the key, but the SDK refuses to start without one.
UNUSED_KEY = "unused"


class OpenAILLM:
    """Chat completions through ``openai.AsyncOpenAI``."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        self._model = settings.openai.model
        self._address = settings.openai.base_url or OFFICIAL_ADDRESS
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai.api_key.get_secret_value() or UNUSED_KEY,
            base_url=self._address,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    @property
    def name(self) -> str:
        """``openai:{model}``."""
        return f"openai:{self._model}"

    def _request(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None
    ) -> dict[str, Any]:
        options = options or GenerationOptions()
        max_tokens = options.max_tokens or self._settings.max_tokens
        request: dict[str, Any] = {
            # An OpenAI-compatible server (vLLM) serves each LoRA adapter under its own model name.
            "model": options.adapter or self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": (
                self._settings.temperature if options.temperature is None else options.temperature
            ),
        }
        # OpenAI's newer models accept only max_completion_tokens; compatible servers know max_tokens.
        if self._settings.openai.base_url is None:
            request["max_completion_tokens"] = max_tokens
        else:
            request["max_tokens"] = max_tokens
        if options.top_p is not None:
            request["top_p"] = options.top_p
        if options.seed is not None:
            request["seed"] = options.seed
        return request

    async def complete(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> str:
        """The whole reply of one chat completion."""
        try:
            response = await self._client.chat.completions.create(
                **self._request(messages, options)
            )
        except openai.APIError as error:
            raise translate_error(error, self._address) from error
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""

    async def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> AsyncIterator[str]:
        """The reply as the server streams it (server-sent events)."""
        try:
            stream = await self._client.chat.completions.create(
                **self._request(messages, options), stream=True
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.APIError as error:
            raise translate_error(error, self._address) from error

    async def check(self) -> None:
        """List the server's models: cheap, and it proves the address and the key."""
        try:
            await self._client.models.list()
        except openai.APIError as error:
            raise translate_error(error, self._address) from error

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()


def translate_error(
    error: openai.APIError, address: str, *, model_setting: str = "OPENAI_MODEL"
) -> ModelUnavailable:
    """The ``ModelUnavailable`` that explains an OpenAI SDK error (shared with the embedder)."""
    if isinstance(error, openai.APIStatusError):
        return status_failure(
            "OpenAI",
            error.status_code,
            error.body,
            key_setting="OPENAI_API_KEY",
            model_setting=f"{model_setting} / OPENAI_BASE_URL",
        )
    if isinstance(error, openai.APIConnectionError):
        return connection_failure(
            "OpenAI", address, timed_out=isinstance(error, openai.APITimeoutError)
        )
    return ModelUnavailable(f"OpenAI returned an unusable response: {error.message}")
