"""Settings: defaults, validation of nonsense, and `.env.example` documenting every variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from app.core.config import (
    AnthropicSettings,
    DatabaseSettings,
    LLMSettings,
    LocalModelSettings,
    OpenAISettings,
    RetrievalSettings,
    Settings,
)

ENV_EXAMPLE = Path(__file__).resolve().parents[3] / ".env.example"


def _env_names(settings: type[BaseSettings] = Settings) -> set[str]:
    """The variables ``settings`` reads: those of its groups, and of the groups in those."""
    names = set()
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in settings.model_fields.items():
        group = field.default_factory
        if isinstance(group, type) and issubclass(group, BaseSettings):
            names |= _env_names(group)
            continue
        alias = field.validation_alias
        names.add(alias.choices[0] if isinstance(alias, AliasChoices) else (prefix + name).upper())
    return names


def test_env_example_documents_every_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    documented = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert _env_names() - documented == set()
    # The rest is what only docker-compose.yml reads; nothing stale.
    compose = (ENV_EXAMPLE.parent / "docker-compose.yml").read_text(encoding="utf-8")
    for name in documented - _env_names():
        assert "${" + name in compose, f"{name} is read by neither rag nor docker-compose.yml"
    # Copied to .env as the comment says, the example (compose variables included) loads.
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.llm.provider == "extractive" and settings.database.url is None


def test_defaults_are_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.llm.provider == "extractive"
    assert settings.embedding.provider == "hash"
    assert settings.database.url is None


def test_flat_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RETRIEVAL_TOP_K", "7")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DATABASE_URL", "")
    settings = Settings()
    assert settings.llm.provider == "openai"
    assert settings.llm.openai.base_url == "http://127.0.0.1:9/v1"
    assert settings.retrieval.top_k == 7
    assert settings.database.data_dir == tmp_path / "d"
    assert settings.database.url is None


def test_local_model_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCAL_MODEL", "/models/base")
    monkeypatch.setenv("LOCAL_DTYPE", "bfloat16")
    monkeypatch.setenv("LOCAL_MAX_BATCH_SIZE", "4")
    # The older LLM_-prefixed names still work.
    monkeypatch.setenv("LLM_LOCAL_DEVICE", "cuda:1")
    monkeypatch.setenv("LLM_LOCAL_BATCH_WINDOW_MS", "25")
    local = Settings().llm.local
    assert (local.model, local.dtype, local.max_batch_size) == ("/models/base", "bfloat16", 4)
    assert (local.device, local.batch_window_ms) == ("cuda:1", 25.0)
    monkeypatch.setenv("LOCAL_LOAD_IN_4BIT", "true")
    monkeypatch.setenv("LOCAL_LOAD_IN_8BIT", "true")
    with pytest.raises(ValidationError, match="at most one of LOCAL_LOAD_IN_4BIT"):
        Settings()


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RETRIEVAL_MODE=sparse\nEMBEDDING_DIMENSION=128\n")
    settings = Settings()
    assert settings.retrieval.mode == "sparse"
    assert settings.embedding.dimension == 128


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (RetrievalSettings, {"top_k": -1}, "top_k"),
        (RetrievalSettings, {"chunk_size": 100, "chunk_overlap": 100}, "CHUNK_OVERLAP"),
        (RetrievalSettings, {"mode": "fuzzy"}, "mode"),
        (LLMSettings, {"provider": "gpt"}, "provider"),
        (
            LLMSettings,
            {"provider": "anthropic", "anthropic": AnthropicSettings(api_key="changeme")},
            "ANTHROPIC_API_KEY",
        ),
        (
            LLMSettings,
            {"provider": "openai", "openai": OpenAISettings(api_key="sk-...")},
            "OPENAI_API_KEY",
        ),
        (DatabaseSettings, {"pool_min": 5, "pool_max": 2}, "POOL_MIN"),
        (LocalModelSettings, {"load_in_4bit": True, "load_in_8bit": True}, "LOCAL_LOAD_IN_4BIT"),
    ],
)
def test_nonsense_is_rejected(factory, kwargs: dict, message: str, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match=message):
        factory(**kwargs)


def test_openai_compatible_server_needs_no_real_key(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = LLMSettings(
        provider="openai", openai=OpenAISettings(base_url="http://localhost:8001/v1")
    )
    assert settings.openai.base_url == "http://localhost:8001/v1"


def test_field_names_work_in_code(tmp_path: Path) -> None:
    assert DatabaseSettings(data_dir=tmp_path).data_dir == tmp_path
