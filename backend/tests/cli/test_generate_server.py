"""``rag generate`` and ``rag models`` ask a running server (chat extractive, reviews by the tiny
local Llama) instead of loading a model in their own process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.cli import main
from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    JobsSettings,
    LLMSettings,
    LocalModelSettings,
    ReviewSettings,
    Settings,
    get_settings,
)
from app.main import create_app
from tests.conftest import drop_schema, new_schema_name
from tests.utils.live_server import free_port, live_server
from tests.utils.local_llm import ServingDirs, tiny_serving

REQUEST = ["--rating", "9", "--n", "2", "--seed", "4", "--max-new-tokens", "12"]


@dataclass
class Server:
    url: str
    client: httpx.Client


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> ServingDirs:
    return tiny_serving(tmp_path_factory)


@pytest.fixture(scope="module")
def server(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, dirs: ServingDirs
) -> Iterator[Server]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url, data_dir=tmp_path_factory.mktemp("data")),
        llm=LLMSettings(provider="extractive", local=LocalModelSettings(device="cpu")),
        review=ReviewSettings(
            provider="local", model=str(dirs.model), adapters={"reviews": dirs.adapters["reviews"]}
        ),
        embedding=EmbeddingSettings(provider="hash", dimension=64),
        api=APISettings(index_sample_corpus=False),
        jobs=JobsSettings(serve_workers=0),
    )
    schema = new_schema_name("cli")
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield Server(url, client)
    drop_schema(pg_url, schema)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean working directory and settings read afresh from the environment."""
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _api_answer(server: Server, adapter: str | None) -> dict:
    body = {"rating": 9, "n": 2, "seed": 4, "max_new_tokens": 12, "adapter": adapter}
    response = server.client.post("/api/reviews/generate", json=body)
    assert response.status_code == 200
    return response.json()


def test_generate_asks_the_server_and_says_which_adapter_wrote(
    server: Server, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "--server", server.url, *REQUEST, "--adapter", "reviews"]
    assert main([*argv, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == _api_answer(server, "reviews")
    assert answer["adapter"] == "reviews" and answer["model"].startswith("local:")

    assert main(argv) == 0
    out, err = capsys.readouterr()
    texts = [review["text"] for review in answer["reviews"]]
    assert out.splitlines() == [f"{n}. [9/10] {text}" for n, text in enumerate(texts, start=1)]
    assert f"written by {answer['model']} with the adapter 'reviews'" in err


def test_without_an_adapter_it_says_the_base_wrote_and_names_the_loaded_ones(
    server: Server, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--server", server.url, *REQUEST]) == 0
    out, err = capsys.readouterr()
    base = _api_answer(server, None)
    assert out.splitlines()[0] == f"1. [9/10] {base['reviews'][0]['text']}"
    assert "without an adapter (the base model)" in err
    assert "loaded adapters: reviews" in err


def test_the_default_server_is_the_configured_host_and_port(
    server: Server, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    address = urlsplit(server.url)
    monkeypatch.setenv("API_HOST", "0.0.0.0")
    monkeypatch.setenv("API_PORT", str(address.port))
    assert main(["generate", *REQUEST, "--adapter", "reviews", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == _api_answer(server, "reviews")


def test_errors_of_the_server_and_no_server_at_all(
    server: Server, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--server", server.url, "--rating", "9", "--adapter", "nope"]) == 2
    assert "Unknown adapter 'nope'; available: reviews" in capsys.readouterr().err
    assert main(["generate", "--server", server.url, "--rating", "11"]) == 2
    assert "rating" in capsys.readouterr().err
    nobody = f"http://127.0.0.1:{free_port()}"
    assert main(["generate", "--server", nobody, "--rating", "9"]) == 2
    err = capsys.readouterr().err
    assert f"No rag server answers at {nobody}" in err and "--local" in err


def test_models_list_load_and_unload_mirror_the_api(
    server: Server,
    env: Path,
    dirs: ServingDirs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "list", "--server", server.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == server.client.get("/api/models").json()

    # A relative folder is the one under the current directory.
    monkeypatch.chdir(dirs.adapters["other"].parent)
    assert main(["models", "load", "other", "other", "--server", server.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"loaded other from {dirs.adapters['other']}"
    assert "no run record" in out

    assert main(["models", "list", "--server", server.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "chat     extractive  extractive"
    assert out.splitlines()[1] == f"reviews  local  local:{dirs.model} (cpu, float32)"
    assert f"  other  [api]  {dirs.adapters['other']}" in out.splitlines()

    argv = ["generate", "--server", server.url, *REQUEST, "--adapter", "other", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == _api_answer(server, "other")

    assert main(["models", "unload", "other", "--server", server.url]) == 0
    assert capsys.readouterr().out == "unloaded other\n"
    assert main(["models", "unload", "other", "--server", server.url]) == 2
    assert "No adapter named 'other' is loaded" in capsys.readouterr().err
    assert main(["models", "load", "x", str(dirs.model), "--server", server.url]) == 2
    assert "has no adapter_config.json" in capsys.readouterr().err
