"""Review writing and model info over HTTP, on a real server with the tiny local model and two
LoRA adapters; plus the answers for a model that cannot write reviews."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import APISettings, DatabaseSettings, EmbeddingSettings, LLMSettings, Settings
from app.main import create_app
from tests.utils.live_server import live_server
from tests.utils.local_llm import (
    ServingDirs,
    arriving_together,
    record_endless_generations,
    tiny_serving,
    wait_for_generation,
)
from tests.utils.sse import parse_sse


@dataclass
class Served:
    """A running app, its base URL and a client."""

    app: FastAPI
    url: str
    client: httpx.Client


@contextmanager
def _serve(pg_url: str, data_dir: Path, llm: LLMSettings) -> Iterator[Served]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url, data_dir=data_dir),
        llm=llm,
        embedding=EmbeddingSettings(provider="hash", dimension=64),
        api=APISettings(index_sample_corpus=False),
    )
    app = create_app(settings, schema=f"reviews_{uuid.uuid4().hex[:10]}", frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield Served(app, url, client)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> ServingDirs:
    return tiny_serving(tmp_path_factory)


@pytest.fixture(scope="module")
def local(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, dirs: ServingDirs
) -> Iterator[Served]:
    with _serve(pg_url, tmp_path_factory.mktemp("data"), dirs.settings()) as served:
        yield served


def _generate(served: Served, **body: object) -> httpx.Response:
    return served.client.post("/api/reviews/generate", json=body)


def test_models_describes_the_local_model(local: Served, dirs: ServingDirs) -> None:
    response = local.client.get("/api/models")
    assert response.status_code == 200
    loaded = {
        "provider": "local",
        "name": f"local:{dirs.model}",
        "base_model": str(dirs.model),
        "device": "cpu",
        "dtype": "float32",
        "quantization": None,
    }
    # LLM_PROVIDER=local with LORA_ADAPTERS (the deprecated settings): one base serves both roles.
    assert response.json() == {
        "chat": loaded,
        "reviews": {
            **loaded,
            "writes_reviews": True,
            "loads_adapters": True,
            "shares_chat_model": True,
            "adapters": [
                {"name": name, "path": str(dirs.adapters[name]), "origin": "settings", "run": None}
                for name in ("reviews", "other")
            ],
        },
    }


def test_generate_returns_n_reviews(local: Served, dirs: ServingDirs) -> None:
    response = _generate(local, rating=9, n=3, adapter="reviews", max_new_tokens=16, seed=1)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == f"local:{dirs.model}"
    assert body["adapter"] == "reviews"
    assert [r["rating"] for r in body["reviews"]] == [9, 9, 9]
    assert all(isinstance(r["text"], str) for r in body["reviews"])
    # The same seed writes the same reviews.
    again = _generate(local, rating=9, n=3, adapter="reviews", max_new_tokens=16, seed=1)
    assert again.json() == body


def test_adapters_write_differently_from_each_other_and_the_base(local: Served) -> None:
    texts = {
        adapter: _generate(
            local, rating=7, temperature=0, max_new_tokens=12, adapter=adapter
        ).json()["reviews"][0]["text"]
        for adapter in ("reviews", "other", None)
    }
    assert len(set(texts.values())) == 3


def test_eight_concurrent_requests_are_batched(local: Served) -> None:
    llm = local.app.state.components.llm
    seen = len(llm.batch_sizes)

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=local.url, timeout=120) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/reviews/generate",
                        json={"rating": r, "temperature": 0, "max_new_tokens": 8},
                    )
                    for r in range(1, 9)
                )
            )

    with arriving_together(llm, 8):
        responses = asyncio.run(send())
    assert [r.status_code for r in responses] == [200] * 8
    assert [r.json()["reviews"][0]["rating"] for r in responses] == list(range(1, 9))
    assert llm.batch_sizes[seen:] == [8]


def test_stream_yields_tokens_then_done(local: Served) -> None:
    body = {"rating": 3, "n": 2, "temperature": 0, "max_new_tokens": 10, "adapter": "other"}
    with local.client.stream("POST", "/api/reviews/generate/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"token"}
    done = events[-1][1]
    assert done["adapter"] == "other" and len(done["reviews"]) == 2
    for index, review in enumerate(done["reviews"]):
        streamed = "".join(data["text"] for name, data in events[:-1] if data["index"] == index)
        assert streamed.strip() == review["text"]
    assert _generate(local, **body).json() == done


def test_a_client_that_hangs_up_stops_the_generation(
    local: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = local.app.state.components.llm
    # Left alone, each review would run to all 400 tokens.
    produced = record_endless_generations(llm, monkeypatch)
    seen = len(llm.batch_sizes)
    body = {"rating": 2, "n": 3, "temperature": 0, "max_new_tokens": 400}
    with (
        arriving_together(llm, 3),
        local.client.stream("POST", "/api/reviews/generate/stream", json=body) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith("event: token")
    wait_for_generation(produced)
    # The three reviews were written together, and all three were cut short.
    assert llm.batch_sizes[seen:] == [3]
    assert len(produced) == 3
    for text in produced:
        assert len(llm.tokenizer(text, add_special_tokens=False)["input_ids"]) < 100


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rating": 11}, "rating"),
        ({"rating": 0}, "rating"),
        ({"rating": 7, "scale": 5}, "rating must be between 1 and 5, got 7"),
        ({"rating": 3, "scale": 7}, "scale"),
        ({"rating": 3, "n": 9}, "n"),
        ({"rating": 3, "adapter": "nope"}, "Unknown adapter 'nope'; available: reviews, other"),
    ],
)
def test_bad_requests_are_422_with_a_clear_message(
    local: Served, body: dict[str, object], message: str
) -> None:
    for path in ("/api/reviews/generate", "/api/reviews/generate/stream"):
        response = local.client.post(path, json=body)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] in {"invalid_input", "invalid_rating", "unknown_adapter"}
        assert message in error["message"]


def test_an_extractive_model_cannot_write_reviews(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("extractive")
    with _serve(pg_url, data_dir, LLMSettings(provider="extractive")) as served:
        response = _generate(served, rating=5)
        models = served.client.get("/api/models").json()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "REVIEW_PROVIDER=local" in error["message"] and "REVIEW_ADAPTERS" in error["message"]
    assert models["chat"]["provider"] == "extractive"
    reviews = models["reviews"]
    assert (reviews["provider"], reviews["name"], reviews["writes_reviews"]) == (
        "none",
        None,
        False,
    )
    assert (reviews["base_model"], reviews["adapters"], reviews["device"]) == (None, [], None)


def test_the_fake_model_writes_reviews(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("fake")
    with _serve(pg_url, data_dir, LLMSettings(provider="fake")) as served:
        first = _generate(served, rating=10, n=2)
        second = _generate(served, rating=10, n=2)
        unknown = _generate(served, rating=10, adapter="reviews")
    assert first.status_code == 200
    assert first.json() == second.json()
    assert first.json()["model"] == "fake" and len(first.json()["reviews"]) == 2
    assert unknown.status_code == 422
    assert "REVIEW_ADAPTERS" in unknown.json()["error"]["message"]
