"""Review writing through any LLM: the training prompt, seeds, batching, streaming, validation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from app.cli import main
from app.core.config import get_settings
from app.core.errors import InvalidInput
from app.models.factory import capabilities_of
from app.models.fake import FakeLLM
from app.models.local import LocalLLM
from app.models.review_model import ReviewModel
from app.models.review_prompt import review_messages
from app.pipelines.reviews import (
    ReviewRequest,
    ReviewsDone,
    ReviewToken,
    ReviewWriter,
    WrittenReview,
    review_writer_for,
)
from tests.utils.local_llm import tiny_serving


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLM]:
    model = LocalLLM(tiny_serving(tmp_path_factory).settings())
    yield model
    asyncio.run(model.aclose())


def test_sends_the_training_prompt_with_derived_seeds() -> None:
    fake = FakeLLM(["좋아요", "최고", "재밌다"])
    request = ReviewRequest(rating=4, scale=5, subject="기생충", n=3, seed=100, temperature=0.7)
    reviews = asyncio.run(ReviewWriter(fake).generate(request))
    assert reviews == [
        WrittenReview("좋아요", 4),
        WrittenReview("최고", 4),
        WrittenReview("재밌다", 4),
    ]
    expected = review_messages(4, 5, "기생충")
    for call in fake.calls:
        assert [(m.role, m.content) for m in call.messages] == [
            (m["role"], m["content"]) for m in expected
        ]
    assert [call.options.seed for call in fake.calls] == [100, 101, 102]
    assert {(c.options.temperature, c.options.max_tokens) for c in fake.calls} == {(0.7, 128)}


def test_the_fake_model_writes_the_same_reviews_every_time() -> None:
    request = ReviewRequest(rating=9, n=2)
    first = asyncio.run(ReviewWriter(FakeLLM()).generate(request))
    second = asyncio.run(ReviewWriter(FakeLLM()).generate(request))
    assert first == second
    assert all(review.text for review in first)


def test_n_reviews_from_the_local_model_are_one_batch_and_repeatable(local: LocalLLM) -> None:
    writer = ReviewWriter(local, adapters=local.adapters)
    request = ReviewRequest(rating=8, n=4, seed=5, max_new_tokens=16, adapter="reviews")
    seen = len(local.batch_sizes)
    reviews = asyncio.run(writer.generate(request))
    assert local.batch_sizes[seen:] == [4]
    assert len(reviews) == 4 and {r.rating for r in reviews} == {8}
    assert len({r.text for r in reviews}) > 1
    assert asyncio.run(writer.generate(request)) == reviews


def test_stream_writes_the_reviews_together_then_yields_all_of_them(local: LocalLLM) -> None:
    writer = ReviewWriter(local, adapters=local.adapters)
    request = ReviewRequest(rating=2, n=3, temperature=0.0, max_new_tokens=10)
    seen = len(local.batch_sizes)

    async def collect() -> list[ReviewToken | ReviewsDone]:
        return [event async for event in writer.stream(request)]

    events = asyncio.run(collect())
    # The three reviews were generated as one batch, their pieces arriving interleaved.
    assert local.batch_sizes[seen:] == [3]
    tokens = [e for e in events[:-1] if isinstance(e, ReviewToken)]
    assert len(tokens) == len(events) - 1
    assert {t.index for t in tokens} == {0, 1, 2}
    done = events[-1]
    assert isinstance(done, ReviewsDone)
    for index, review in enumerate(done.reviews):
        assert "".join(t.text for t in tokens if t.index == index).strip() == review.text
    assert done.reviews == asyncio.run(writer.generate(request))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ReviewRequest(rating=11), "rating must be between 1 and 10, got 11"),
        (ReviewRequest(rating=6, scale=5), "rating must be between 1 and 5, got 6"),
        (ReviewRequest(rating=0), "rating must be between 1 and 10, got 0"),
        (ReviewRequest(rating=3, scale=7), "scale must be 5 or 10"),
        (ReviewRequest(rating=3, n=9), "n must be between 1 and 8, got 9"),
        (ReviewRequest(rating=3, adapter="nope"), "Unknown adapter 'nope'; available: reviews"),
        (ReviewRequest(rating=3, temperature=3.0), "temperature must be between 0 and 2"),
    ],
)
def test_bad_requests_are_invalid_input_before_any_call(
    request_: ReviewRequest, message: str
) -> None:
    fake = FakeLLM()
    writer = ReviewWriter(fake, adapters=["reviews"])
    with pytest.raises(InvalidInput, match=message):
        asyncio.run(writer.generate(request_))
    with pytest.raises(InvalidInput, match=message):
        writer.stream(request_)
    assert fake.calls == []


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    dirs = tiny_serving(tmp_path_factory)
    adapters = ",".join(f"{name}={path}" for name, path in dirs.adapters.items())
    for name, value in {
        "LLM_PROVIDER": "local",
        "LOCAL_MODEL": str(dirs.model),
        "LORA_ADAPTERS": adapters,
        "LOCAL_DEVICE": "cpu",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_rag_generate_writes_reviews_with_an_adapter(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "--local", "--rating", "9", "--n", "3", "--adapter", "reviews"]
    assert main([*argv, "--seed", "4", "--max-new-tokens", "12", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["adapter"] == "reviews" and body["model"].startswith("local:")
    assert [r["rating"] for r in body["reviews"]] == [9, 9, 9]

    assert main(["generate", "--local", "--rating", "9", "--adapter", "missing"]) == 2
    assert "Unknown adapter 'missing'" in capsys.readouterr().err


def test_an_openai_compatible_server_serves_the_named_adapters(tmp_path) -> None:
    llm = FakeLLM()
    model = ReviewModel("openai", llm, capabilities_of("openai"), configured={"reviews": tmp_path})
    request = ReviewRequest(rating=8, adapter="reviews")
    asyncio.run(review_writer_for(model, request).generate(request))
    assert llm.calls[-1].options.adapter == "reviews"
    other = ReviewRequest(rating=8, adapter="other")
    with pytest.raises(InvalidInput):
        asyncio.run(review_writer_for(model, other).generate(other))
