"""Two model roles on a real server: chat by the extractive answerer, reviews by the tiny local
Llama; adapters loaded and unloaded over HTTP while it serves, and back after a restart."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

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
)
from app.main import create_app
from app.models.base import ChatMessage, GenerationOptions
from app.models.local import LocalLLM
from app.models.review_prompt import review_messages
from tests.conftest import drop_schema, new_schema_name
from tests.utils.live_server import live_server
from tests.utils.local_llm import (
    ServingDirs,
    build_adapter,
    build_narrow_model,
    set_adapter_base,
    tiny_serving,
)
from tests.utils.sse import parse_sse
from tests.utils.tiny_lm import NSMC_TRAIN

GREEDY = {"temperature": 0, "max_new_tokens": 12}
DOC = (
    "# 도서관 이용 안내\n\n"
    "중앙도서관은 평일 오전 9시부터 오후 10시까지 문을 엽니다. "
    "책은 한 번에 다섯 권까지 2주 동안 빌릴 수 있습니다."
)


@dataclass
class Served:
    """A running app, its base URL and a client."""

    app: FastAPI
    url: str
    client: httpx.Client

    @property
    def reviews(self) -> LocalLLM:
        """The review writer's loaded model."""
        llm = self.app.state.components.reviews.llm
        assert isinstance(llm, LocalLLM)
        return llm


def _settings(pg_url: str, data_dir: Path, llm: LLMSettings, review: ReviewSettings) -> Settings:
    return Settings(
        database=DatabaseSettings(url=pg_url, data_dir=data_dir),
        llm=llm,
        review=review,
        embedding=EmbeddingSettings(provider="hash", dimension=64),
        api=APISettings(index_sample_corpus=False),
        jobs=JobsSettings(serve_workers=0),
    )


@contextmanager
def _serve(settings: Settings, schema: str) -> Iterator[Served]:
    app = create_app(settings, schema=schema, frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield Served(app, url, client)


def _extractive_chat() -> LLMSettings:
    """Chat by the extractive answerer; the loading knobs that every local model uses."""
    return LLMSettings(
        provider="extractive", local=LocalModelSettings(device="cpu", batch_window_ms=50.0)
    )


def _tiny_reviews(dirs: ServingDirs, **changes: object) -> ReviewSettings:
    values: dict[str, Any] = {
        "provider": "local",
        "model": str(dirs.model),
        "adapters": {"reviews": dirs.adapters["reviews"]},
        **changes,
    }
    return ReviewSettings(**values)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> ServingDirs:
    return tiny_serving(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, dirs: ServingDirs) -> Path:
    """An adapter trained here by ``rag finetune train`` and evaluated by ``rag finetune eval``."""
    root = tmp_path_factory.mktemp("trained")
    dev, train = _nsmc_splits(root)
    output = root / "adapter"
    quiet = ["--nice", "0", "--max-threads", "1", "--no-progress", "--log-every", "1"]
    steps = ["--max-steps", "3", "--micro-batch-size", "4", "--grad-accum", "1"]
    train_args = ["--model", str(dirs.model), "--data", str(train), "--output", str(output)]
    assert main(["finetune", "train", *train_args, *quiet, *steps]) == 0
    eval_args = ["--adapter", str(output), "--data", str(dev), "--train", str(train)]
    small = ["--per-rating", "1", "--ratings", "1,10", "--max-new-tokens", "8"]
    small += ["--ppl-samples", "8", "--classifier-samples", "500", "--out", str(output)]
    assert main(["finetune", "eval", *eval_args, *small]) == 0
    return output


def _nsmc_splits(root: Path) -> tuple[Path, Path]:
    """300 dev and 2,000 training reviews from the shared NSMC file, as TSVs with its header."""
    with gzip.open(NSMC_TRAIN, "rt", encoding="utf-8") as f:
        header, *rows = (next(f) for _ in range(2301))
    dev, train = root / "dev.tsv", root / "train.tsv"
    dev.write_text(header + "".join(rows[:300]), encoding="utf-8")
    train.write_text(header + "".join(rows[300:]), encoding="utf-8")
    return dev, train


@pytest.fixture(scope="module")
def served(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, dirs: ServingDirs
) -> Iterator[Served]:
    schema = new_schema_name("roles")
    settings = _settings(
        pg_url, tmp_path_factory.mktemp("data"), _extractive_chat(), _tiny_reviews(dirs)
    )
    with _serve(settings, schema) as served:
        yield served
    drop_schema(pg_url, schema)


def _write(served: Served, **body: object) -> httpx.Response:
    return served.client.post("/api/reviews/generate", json={"rating": 8, **GREEDY, **body})


def _text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["reviews"][0]["text"]


def _direct(llm: LocalLLM, rating: int, adapter: str | None) -> str:
    """What the loaded model writes for ``rating``, asked in this process."""
    messages = [ChatMessage(m["role"], m["content"]) for m in review_messages(rating, 10, None)]
    options = GenerationOptions(temperature=0.0, max_tokens=12, top_p=1.0, adapter=adapter)
    return asyncio.run(llm.complete(messages, options))


def _adapter_names(served: Served) -> list[str]:
    return [a["name"] for a in served.client.get("/api/models").json()["reviews"]["adapters"]]


def _wait_until(llm: LocalLLM, condition: Callable[[], bool]) -> None:
    """Block until ``condition`` holds; the model notifies on every change of its adapters."""
    with llm._adapters_changed:
        assert llm._adapters_changed.wait_for(condition, timeout=60)


def test_status_and_models_show_both_roles(served: Served, dirs: ServingDirs) -> None:
    status = served.client.get("/api/status").json()
    assert status["llm"] == {"provider": "extractive", "name": "extractive"}
    assert status["reviews"] == {
        "provider": "local",
        "name": f"local:{dirs.model}",
        "adapters": ["reviews"],
        "shares_chat_model": False,
    }
    models = served.client.get("/api/models").json()
    assert models["chat"] == {
        "provider": "extractive",
        "name": "extractive",
        "base_model": None,
        "device": None,
        "dtype": None,
        "quantization": None,
    }
    reviews = models["reviews"]
    assert (reviews["provider"], reviews["base_model"], reviews["device"]) == (
        "local",
        str(dirs.model),
        "cpu",
    )
    assert (reviews["writes_reviews"], reviews["loads_adapters"]) == (True, True)
    assert reviews["shares_chat_model"] is False
    assert reviews["adapters"] == [
        {
            "name": "reviews",
            "path": str(dirs.adapters["reviews"]),
            "origin": "settings",
            "run": None,
        }
    ]


def test_chat_stays_extractive_and_cited_while_reviews_come_from_the_tiny_model(
    served: Served, tmp_path: Path
) -> None:
    document = tmp_path / "도서관.md"
    document.write_text(DOC, encoding="utf-8")
    served.app.state.components.indexer.ingest_path(document, collection="roles")
    chat = served.client.post(
        "/api/chat", json={"question": "중앙도서관은 몇 시에 문을 여나요?", "collection": "roles"}
    )
    assert chat.status_code == 200
    answer = chat.json()
    # The extractive answerer quotes the document and cites it; no generated text.
    assert "오전 9시부터 오후 10시까지" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["cited"] == [1] and answer["sources"][0]["filename"] == "도서관.md"

    response = _write(served, adapter="reviews")
    assert response.json()["model"] == f"local:{served.reviews.base_model}"
    assert response.json()["adapter"] == "reviews"
    assert _text(response) == _direct(served.reviews, 8, "reviews")
    assert _text(_write(served)) == _direct(served.reviews, 8, None)


def test_an_adapter_trained_here_loads_over_http_and_writes(
    served: Served, trained: Path, dirs: ServingDirs
) -> None:
    base = _text(_write(served))
    response = served.client.post(
        "/api/models/adapters", json={"name": "trained", "path": str(trained)}
    )
    assert response.status_code == 201, response.text
    loaded = response.json()
    assert (loaded["name"], loaded["path"], loaded["origin"]) == ("trained", str(trained), "api")
    run = loaded["run"]
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert (run["base_model"], run["method"], run["steps"], run["total_steps"]) == (
        str(dirs.model),
        "lora",
        3,
        3,
    )
    assert run["final_loss"] == pytest.approx(log[-1]["loss"]) and run["finished_at"]
    assert run["data"].endswith("train.tsv") and run["examples"] > 1000
    report = json.loads((trained / "eval.json").read_text())["results"]
    assert run["eval"]["rating_consistency"] == report["adapter"]["rating_consistency"]["overall"]
    assert run["eval"]["base_perplexity"] == report["base"]["perplexity"]
    assert served.client.get("/api/models").json()["reviews"]["adapters"][1] == loaded

    written = _write(served, adapter="trained")
    assert written.json()["adapter"] == "trained"
    assert _text(written) == _direct(served.reviews, 8, "trained")
    assert _text(_write(served)) == base
    assert served.client.delete("/api/models/adapters/trained").status_code == 204
    assert _adapter_names(served) == ["reviews"]


def test_adapters_that_do_not_fit_are_422_and_change_nothing(
    served: Served, dirs: ServingDirs, tmp_path: Path
) -> None:
    before = served.client.get("/api/models").json()
    with_reviews = _text(_write(served, adapter="reviews"))

    other_base = tmp_path / "other-base"
    shutil.copytree(dirs.adapters["other"], other_base)
    set_adapter_base(other_base, "someone/another-model")
    narrow = build_adapter(
        build_narrow_model(tmp_path / "narrow-model"), tmp_path / "narrow", seed=3
    )
    set_adapter_base(narrow, str(dirs.model))
    cases = [
        ({"name": "x", "path": str(other_base)}, 422, "adapter_base_mismatch"),
        ({"name": "x", "path": str(narrow)}, 422, "adapter_shape_mismatch"),
        ({"name": "x", "path": str(tmp_path / "absent")}, 422, "invalid_adapter"),
        ({"name": "x", "path": str(tmp_path)}, 422, "invalid_adapter"),
        ({"name": "x", "path": "relative/folder"}, 422, "invalid_adapter"),
        ({"name": "reviews", "path": str(dirs.adapters["other"])}, 409, "adapter_exists"),
    ]
    for body, status, code in cases:
        response = served.client.post("/api/models/adapters", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    mismatch = served.client.post("/api/models/adapters", json=cases[0][0]).json()["error"]
    # The message and params name both models.
    assert "someone/another-model" in mismatch["message"] and str(dirs.model) in mismatch["message"]
    assert mismatch["params"] == {
        "name": "x",
        "adapter_base": "someone/another-model",
        "model_base": str(dirs.model),
    }

    assert served.client.get("/api/models").json() == before
    assert _write(served, adapter="x").json()["error"]["code"] == "unknown_adapter"
    assert _text(_write(served, adapter="reviews")) == with_reviews
    assert list(served.reviews.model.peft_config) == ["reviews"]


def test_a_load_does_not_pause_generation_for_others(
    served: Served, dirs: ServingDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = served.reviews
    reading = threading.Event()
    prepare = llm._prepare

    def slow_read(name: str, path: Path) -> Any:
        assert reading.wait(60), "the test never let the adapter be read"
        return prepare(name, path)

    monkeypatch.setattr(llm, "_prepare", slow_read)
    body = {"name": "other", "path": str(dirs.adapters["other"])}
    loads: list[httpx.Response] = []
    loader = threading.Thread(
        target=lambda: loads.append(served.client.post("/api/models/adapters", json=body))
    )
    loader.start()
    _wait_until(llm, lambda: "other" in llm._loading)
    # While the adapter is still being read, reviews are written.
    assert _text(_write(served, adapter="reviews")) == _direct(llm, 8, "reviews")
    reading.set()
    loader.join(timeout=120)
    assert loads[0].status_code == 201
    assert _text(_write(served, adapter="other")) == _direct(llm, 8, "other")
    assert served.client.delete("/api/models/adapters/other").status_code == 204


def test_unloading_lets_the_stream_in_flight_finish(
    served: Served, dirs: ServingDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = served.reviews
    brief = build_adapter(dirs.model, tmp_path / "brief", seed=5)
    assert (
        served.client.post("/api/models/adapters", json={"name": "brief", "path": str(brief)})
    ).status_code == 201
    body = {"rating": 4, "n": 1, "temperature": 0, "max_new_tokens": 24, "adapter": "brief"}
    expected = _text(_write(served, **body))

    # Generation waits for the gate, so the stream is in flight for as long as the test likes.
    gate = threading.Event()
    generate = llm._generate

    def gated(requests: Any) -> list[str]:
        assert gate.wait(60), "the test never opened the gate"
        return generate(requests)

    monkeypatch.setattr(llm, "_generate", gated)
    streamed: list[list[tuple[str, Any]]] = []

    def read_stream() -> None:
        with served.client.stream("POST", "/api/reviews/generate/stream", json=body) as response:
            streamed.append(parse_sse(response.iter_lines()))

    unloads: list[httpx.Response] = []
    stream = threading.Thread(target=read_stream)
    unload = threading.Thread(
        target=lambda: unloads.append(served.client.delete("/api/models/adapters/brief"))
    )
    stream.start()
    _wait_until(llm, lambda: llm._adapters["brief"].users == 1)
    unload.start()
    _wait_until(llm, lambda: llm._adapters["brief"].unloading)
    # Being unloaded: no longer listed, and new requests naming it are refused at once.
    assert "brief" not in _adapter_names(served)
    refused = _write(served, adapter="brief")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unknown_adapter")
    assert unloads == []
    gate.set()
    stream.join(timeout=120)
    unload.join(timeout=120)
    events = streamed[0]
    assert events[-1][0] == "done"
    assert events[-1][1]["adapter"] == "brief"
    assert events[-1][1]["reviews"][0]["text"] == expected
    assert unloads[0].status_code == 204
    assert "brief" not in llm.model.peft_config


def test_unloading_an_adapter_of_the_settings_or_an_unknown_one(served: Served) -> None:
    response = served.client.delete("/api/models/adapters/reviews")
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "adapter_from_settings",
    )
    response = served.client.delete("/api/models/adapters/nope")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "adapter_not_found")
    assert _adapter_names(served) == ["reviews"]


def test_adapters_loaded_over_http_come_back_after_a_restart(
    pg_url: str, tmp_path: Path, dirs: ServingDirs
) -> None:
    schema = new_schema_name("restart")
    settings = _settings(pg_url, tmp_path / "data", _extractive_chat(), _tiny_reviews(dirs))
    body = {"name": "other", "path": str(dirs.adapters["other"])}
    try:
        with _serve(settings, schema) as first:
            assert first.client.post("/api/models/adapters", json=body).status_code == 201
            written = _text(_write(first, adapter="other"))
        with _serve(settings, schema) as second:
            adapters = second.client.get("/api/models").json()["reviews"]["adapters"]
            assert [(a["name"], a["origin"]) for a in adapters] == [
                ("reviews", "settings"),
                ("other", "api"),
            ]
            assert _text(_write(second, adapter="other")) == written
            assert second.client.delete("/api/models/adapters/other").status_code == 204
        with _serve(settings, schema) as third:
            assert _adapter_names(third) == ["reviews"]
    finally:
        drop_schema(pg_url, schema)


def test_both_roles_on_one_local_base_load_it_once(
    pg_url: str, tmp_path: Path, dirs: ServingDirs
) -> None:
    chat = LLMSettings(
        provider="local",
        local=LocalModelSettings(model=str(dirs.model), device="cpu"),
        max_tokens=12,
    )
    settings = _settings(pg_url, tmp_path / "data", chat, _tiny_reviews(dirs))
    schema = new_schema_name("shared")
    try:
        with _serve(settings, schema) as served:
            components = served.app.state.components
            assert components.llm is components.reviews.llm
            models = served.client.get("/api/models").json()
            assert models["reviews"]["shares_chat_model"] is True
            assert models["chat"]["base_model"] == models["reviews"]["base_model"]
            answer = served.client.post("/api/chat", json={"question": "도서관은 언제 여나요?"})
            assert answer.status_code == 200
            assert _text(_write(served, adapter="reviews")) == _direct(served.reviews, 8, "reviews")
    finally:
        drop_schema(pg_url, schema)


INVALID_REVIEWS = [
    {},
    {"rating": 0},
    {"rating": 11},
    {"rating": 7, "scale": 5},
    {"rating": 3, "scale": 7},
    {"rating": 3, "n": 9},
    {"rating": 3, "temperature": 3},
    {"rating": 3, "top_p": 0},
    {"rating": 3, "max_new_tokens": 0},
    {"rating": 3, "subject": "x" * 201},
    {"rating": 3, "seed": -1},
    {"rating": "many"},
    {"rating": 3, "extra": True},
]
INVALID_LOADS = [
    {},
    {"name": "reviews"},
    {"path": "/srv/adapter"},
    {"name": "", "path": "/srv/adapter"},
    {"name": "has space", "path": "/srv/adapter"},
    {"name": "x" * 65, "path": "/srv/adapter"},
    {"name": "reviews", "path": ""},
    {"name": "reviews", "path": "/srv/\u0000adapter"},
    {"name": "reviews", "path": "/srv/adapter", "base": "x"},
]


def test_invalid_bodies_are_422_when_no_model_writes_reviews(
    pg_url: str, tmp_path: Path, dirs: ServingDirs
) -> None:
    settings = _settings(
        pg_url, tmp_path / "data", _extractive_chat(), ReviewSettings(provider="none")
    )
    schema = new_schema_name("none")
    try:
        with _serve(settings, schema) as served:
            for path in ("/api/reviews/generate", "/api/reviews/generate/stream"):
                for body in INVALID_REVIEWS:
                    response = served.client.post(path, json=body)
                    assert response.status_code == 422, (path, body, response.text)
                valid = served.client.post(path, json={"rating": 3})
                assert (valid.status_code, valid.json()["error"]["code"]) == (
                    503,
                    "model_unavailable",
                )
                assert "REVIEW_PROVIDER" in valid.json()["error"]["message"]
            for body in INVALID_LOADS:
                response = served.client.post("/api/models/adapters", json=body)
                assert response.status_code == 422, (body, response.text)
            valid = served.client.post(
                "/api/models/adapters", json={"name": "x", "path": str(dirs.adapters["other"])}
            )
            assert valid.status_code == 503
            status = served.client.get("/api/status").json()["reviews"]
            assert status == {
                "provider": "none",
                "name": None,
                "adapters": [],
                "shares_chat_model": False,
            }
    finally:
        drop_schema(pg_url, schema)


def test_a_review_model_that_cannot_load_adapters_says_so(
    pg_url: str, tmp_path: Path, dirs: ServingDirs
) -> None:
    settings = _settings(
        pg_url, tmp_path / "data", _extractive_chat(), ReviewSettings(provider="fake")
    )
    schema = new_schema_name("fake")
    try:
        with _serve(settings, schema) as served:
            body = {"name": "x", "path": str(dirs.adapters["other"])}
            response = served.client.post("/api/models/adapters", json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (
                409,
                "adapters_fixed",
            )
            assert (
                served.client.post("/api/reviews/generate", json={"rating": 3}).json()["model"]
                == "fake"
            )
    finally:
        drop_schema(pg_url, schema)


def test_old_settings_keep_working_with_a_deprecation_note(
    dirs: ServingDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    legacy = Settings(
        llm=LLMSettings(
            provider="local",
            local=LocalModelSettings(model=str(dirs.model)),
            lora_adapters="a=/x",
        )
    )
    role = legacy.review_role()
    assert (role.provider, role.model, role.adapters) == (
        "local",
        str(dirs.model),
        {"a": Path("/x")},
    )
    assert any("LORA_ADAPTERS is deprecated" in note for note in role.deprecations)
    assert any("REVIEW_PROVIDER is unset" in note for note in role.deprecations)
    current = Settings(review=_tiny_reviews(dirs))
    assert current.review_role().deprecations == ()
    assert Settings().review_role().provider == "none"
