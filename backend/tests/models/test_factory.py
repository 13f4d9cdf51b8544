"""The factory: each provider gets its adapter; unknown or uninstalled ones get a clear ModelUnavailable."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from app.core.config import (
    AnthropicSettings,
    EmbeddingSettings,
    LLMSettings,
    LocalModelSettings,
    OpenAISettings,
)
from app.core.errors import ModelUnavailable
from app.models.anthropic import AnthropicLLM
from app.models.base import EmbeddingClient, LLMClient
from app.models.extractive import ExtractiveLLM
from app.models.factory import build_embedding_client, build_llm_client
from app.models.fake import FakeLLM
from app.models.hash import HashEmbedder
from app.models.openai import OpenAILLM
from app.models.openai_embeddings import OpenAIEmbedder

LOCAL_SERVER = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("settings", "cls", "name"),
    [
        ({"provider": "extractive"}, ExtractiveLLM, "extractive"),
        ({"provider": "fake"}, FakeLLM, "fake"),
        (
            {"provider": "openai", "openai": OpenAISettings(base_url=LOCAL_SERVER, model="qwen")},
            OpenAILLM,
            "openai:qwen",
        ),
        (
            {
                "provider": "anthropic",
                "anthropic": AnthropicSettings(api_key="k", model="claude-x"),
            },
            AnthropicLLM,
            "anthropic:claude-x",
        ),
    ],
)
def test_llm_providers(settings: dict, cls: type, name: str) -> None:
    llm = build_llm_client(LLMSettings(**settings))
    assert isinstance(llm, cls) and isinstance(llm, LLMClient)
    assert llm.name == name
    asyncio.run(llm.aclose())


def test_local_provider_with_a_missing_model_is_model_unavailable(tmp_path: Path) -> None:
    settings = LLMSettings(
        provider="local", local=LocalModelSettings(model=str(tmp_path / "absent"))
    )
    with pytest.raises(ModelUnavailable, match="Cannot load the tokenizer of LOCAL_MODEL"):
        build_llm_client(settings)


def test_hash_embedder_takes_the_dimension() -> None:
    embedder = build_embedding_client(EmbeddingSettings(provider="hash", dimension=64))
    assert isinstance(embedder, HashEmbedder) and isinstance(embedder, EmbeddingClient)
    assert (embedder.name, embedder.dimension) == ("hash-v1:64", 64)


def test_openai_embedder_uses_the_openai_settings() -> None:
    llm = LLMSettings(openai=OpenAISettings(base_url=LOCAL_SERVER))
    chosen = build_embedding_client(
        EmbeddingSettings(provider="openai", model="bge-m3", dimension=256), llm
    )
    assert isinstance(chosen, OpenAIEmbedder) and chosen.name == "openai:bge-m3"
    # An explicit EMBEDDING_DIMENSION is the size asked for; no request is needed to know it.
    assert chosen.dimension == 256
    chosen.close()


def test_openai_embedder_without_key_or_address_is_refused() -> None:
    embedding = EmbeddingSettings(provider="openai", model="text-embedding-3-small")
    with pytest.raises(ModelUnavailable, match="needs OPENAI_API_KEY"):
        build_embedding_client(embedding)
    with pytest.raises(ModelUnavailable, match="needs OPENAI_API_KEY"):
        build_embedding_client(embedding, LLMSettings(openai=OpenAISettings(api_key="")))


def test_missing_optional_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import sentence_transformers` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.delitem(sys.modules, "app.models.sentence_transformers", raising=False)
    with pytest.raises(ModelUnavailable, match=r"install with pip install '\.\[local\]'"):
        build_embedding_client(EmbeddingSettings(provider="sentence-transformers"))
