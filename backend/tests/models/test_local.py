"""The local Hugging Face adapter on a tiny Llama with two LoRA adapters: loading, adapters,
dynamic batching, streaming, seeds, and the errors that must surface at start-up."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import InvalidInput, ModelUnavailable
from app.models.base import ChatMessage, GenerationOptions, LLMClient
from app.models.batching import DynamicBatcher
from app.models.factory import build_llm_client
from app.models.local import LocalLLM
from app.pipelines.prompts import PromptSource, build_messages
from app.pipelines.rag import DoneEvent, RAGPipeline, RetrievalOptions, SourcesEvent, TokenEvent
from app.retriever.types import SearchHit
from tests.utils.local_llm import (
    ServingDirs,
    arriving_together,
    build_adapter,
    build_narrow_model,
    record_endless_generations,
    set_adapter_base,
    tiny_serving,
    wait_for_generation,
)

GREEDY = GenerationOptions(temperature=0.0, max_tokens=12)


def _messages(rating: int) -> list[ChatMessage]:
    return [
        ChatMessage("system", "너는 리뷰 작가다."),
        ChatMessage("user", f"별점 {rating}/10점 리뷰를 써 주세요"),
    ]


def _options(**changes: object) -> GenerationOptions:
    values = {"temperature": 0.0, "max_tokens": 12, **changes}
    return GenerationOptions(**values)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> ServingDirs:
    return tiny_serving(tmp_path_factory)


@pytest.fixture(scope="module")
def llm(dirs: ServingDirs) -> Iterator[LocalLLM]:
    model = LocalLLM(dirs.settings())
    yield model
    asyncio.run(model.aclose())


def test_loads_on_cpu_in_float32_with_both_adapters(llm: LocalLLM, dirs: ServingDirs) -> None:
    assert isinstance(llm, LLMClient)
    assert llm.name == f"local:{dirs.model}"
    assert llm.adapters == ("reviews", "other")
    assert (llm.device.type, str(llm.dtype), llm.quantization) == ("cpu", "torch.float32", None)


def test_factory_builds_the_local_model(dirs: ServingDirs) -> None:
    client = build_llm_client(dirs.settings(lora_adapters={}))
    try:
        assert isinstance(client, LocalLLM)
        assert client.adapters == ()
    finally:
        asyncio.run(client.aclose())


def test_each_adapter_changes_the_output_and_none_is_the_base(
    llm: LocalLLM, dirs: ServingDirs
) -> None:
    async def run(model: LocalLLM, adapter: str | None) -> str:
        return await model.complete(_messages(9), _options(adapter=adapter))

    base_only = LocalLLM(dirs.settings(lora_adapters={}))
    try:
        plain = asyncio.run(run(base_only, None))
    finally:
        asyncio.run(base_only.aclose())
    outputs = {adapter: asyncio.run(run(llm, adapter)) for adapter in (None, "reviews", "other")}
    assert outputs[None] == plain
    assert len(set(outputs.values())) == 3
    # Switching back and forth leaves no adapter state behind.
    assert asyncio.run(run(llm, "reviews")) == outputs["reviews"]
    assert asyncio.run(run(llm, None)) == plain


def test_concurrent_requests_run_as_one_batch_with_the_same_results(llm: LocalLLM) -> None:
    ratings = [1, 3, 5, 7, 9, 10, 2, 8]
    alone = [asyncio.run(llm.complete(_messages(r), GREEDY)) for r in ratings]
    seen = len(llm.batch_sizes)

    async def together() -> list[str]:
        return await asyncio.gather(*(llm.complete(_messages(r), GREEDY) for r in ratings))

    with arriving_together(llm, len(ratings)):
        assert asyncio.run(together()) == alone
    assert llm.batch_sizes[seen:] == [8]


def test_requests_with_different_adapters_are_batched_apart(llm: LocalLLM) -> None:
    seen = len(llm.batch_sizes)

    async def mixed() -> list[str]:
        adapters = ["reviews", "other", "reviews", None, "other", "reviews"]
        return await asyncio.gather(
            *(llm.complete(_messages(5), _options(adapter=a)) for a in adapters)
        )

    with arriving_together(llm, 6):
        results = asyncio.run(mixed())
    assert sorted(llm.batch_sizes[seen:]) == [1, 2, 3]
    assert results[0] == results[2] == results[5]
    assert results[1] == results[4]


def test_stream_yields_the_same_text_as_complete(llm: LocalLLM) -> None:
    async def pieces() -> list[str]:
        return [p async for p in llm.stream(_messages(4), _options(adapter="reviews"))]

    streamed = asyncio.run(pieces())
    whole = asyncio.run(llm.complete(_messages(4), _options(adapter="reviews")))
    assert len(streamed) > 1
    assert "".join(streamed).strip() == whole


def test_a_stream_left_early_stops_generating(
    llm: LocalLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced = record_endless_generations(llm, monkeypatch)

    async def read_one_piece_then_leave() -> str:
        pieces = llm.stream(_messages(2), _options(max_tokens=400))
        first = await anext(pieces)
        await pieces.aclose()
        return first

    def length(text: str) -> int:
        return len(llm.tokenizer(text, add_special_tokens=False)["input_ids"])

    first = asyncio.run(read_one_piece_then_leave())
    wait_for_generation(produced)
    assert first and length(produced[0]) < 50, length(produced[0])
    # The same request read to the end (decoded text re-encodes into fewer tokens than 400).
    assert length(asyncio.run(llm.complete(_messages(2), _options(max_tokens=400)))) > 200


def test_running_out_of_memory_mid_stream_is_a_clear_error(
    llm: LocalLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    generate = llm.model.generate

    def fails_after_a_few_tokens(*args: Any, **kwargs: Any) -> Any:
        kwargs["stopping_criteria"].append(_OutOfMemoryAfter(3))
        return generate(*args, **kwargs)

    class _OutOfMemoryAfter:
        def __init__(self, steps: int) -> None:
            self.steps = steps

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            self.steps -= 1
            if self.steps == 0:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    monkeypatch.setattr(llm.model, "generate", fails_after_a_few_tokens)

    async def read() -> list[str]:
        return [p async for p in llm.stream(_messages(3), _options(max_tokens=40))]

    with pytest.raises(ModelUnavailable, match="ran out of memory"):
        asyncio.run(read())
    monkeypatch.undo()
    # The model and its batcher go on serving.
    assert asyncio.run(llm.complete(_messages(3), _options()))


def test_streams_that_arrive_together_are_batched(llm: LocalLLM) -> None:
    seen = len(llm.batch_sizes)

    async def read(rating: int) -> str:
        return "".join([p async for p in llm.stream(_messages(rating), _options(max_tokens=24))])

    async def together() -> list[str]:
        return await asyncio.gather(*(read(r) for r in (2, 5, 8, 10)))

    with arriving_together(llm, 4):
        streamed = asyncio.run(together())
    assert llm.batch_sizes[seen:] == [4]
    for rating, text in zip((2, 5, 8, 10), streamed, strict=True):
        alone = asyncio.run(llm.complete(_messages(rating), _options(max_tokens=24)))
        assert text.strip() == alone


def test_a_seed_makes_sampling_repeatable(llm: LocalLLM) -> None:
    def sample(seed: int) -> str:
        options = GenerationOptions(temperature=1.0, top_p=0.95, max_tokens=16, seed=seed)
        return asyncio.run(llm.complete(_messages(6), options))

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(4)}) > 1


def test_a_seeded_request_writes_the_same_text_alone_and_in_a_batch(llm: LocalLLM) -> None:
    seeded = GenerationOptions(temperature=1.0, top_p=0.95, max_tokens=16, seed=11)
    alone = asyncio.run(llm.complete(_messages(6), seeded))
    seen = len(llm.batch_sizes)

    async def crowded() -> list[str]:
        others = [
            llm.complete(
                _messages(r), GenerationOptions(temperature=1.0, top_p=0.95, max_tokens=16)
            )
            for r in (1, 3, 9)
        ]
        return await asyncio.gather(llm.complete(_messages(6), seeded), *others)

    with arriving_together(llm, 4):
        texts = asyncio.run(crowded())
    assert llm.batch_sizes[seen:] == [4]
    assert texts[0] == alone


def test_a_tiny_nucleus_leaves_only_the_most_likely_token(llm: LocalLLM) -> None:
    greedy = asyncio.run(llm.complete(_messages(7), _options(max_tokens=16)))
    nucleus = GenerationOptions(temperature=1.0, top_p=1e-6, max_tokens=16, seed=3)
    assert asyncio.run(llm.complete(_messages(7), nucleus)) == greedy


class _FixedPassages:
    """A retriever over two fixed passages: the chain's other half, kept local and exact."""

    def search(self, query: str, *, top_k: int, mode: str, **_: Any) -> list[SearchHit]:
        passages = ["미드나잇 인 파리는 2011년 영화다.", "주연은 오웬 윌슨이다."]
        return [
            SearchHit(f"doc-{i}", f"chunk-{i}", text, 1.0 / i, {"title": f"영화 {i}"})
            for i, text in enumerate(passages[:top_k], start=1)
        ]


def test_the_rag_chain_answers_through_the_local_model(llm: LocalLLM) -> None:
    options = RetrievalOptions(top_k=2, mode="hybrid")
    pipeline = RAGPipeline(llm, _FixedPassages(), generation=_options(adapter="reviews"))
    question = "미드나잇 인 파리의 주연은?"
    answer = asyncio.run(pipeline.answer(question, options))
    assert [s.text for s in answer.sources] == [
        "미드나잇 인 파리는 2011년 영화다.",
        "주연은 오웬 윌슨이다.",
    ]
    messages = build_messages(
        question, [PromptSource(s.number, s.title, s.text) for s in answer.sources]
    )
    direct = asyncio.run(llm.complete(messages, _options(adapter="reviews")))
    assert answer.answer == direct and direct

    async def events() -> list[object]:
        return [event async for event in pipeline.stream(question, options)]

    streamed = asyncio.run(events())
    assert isinstance(streamed[0], SourcesEvent)
    assert any(isinstance(e, TokenEvent) for e in streamed)
    assert streamed[-1] == DoneEvent(direct)


def test_unknown_adapter_is_invalid_input(llm: LocalLLM) -> None:
    with pytest.raises(InvalidInput, match=r"Unknown adapter 'nope'.*reviews, other"):
        asyncio.run(llm.complete(_messages(5), _options(adapter="nope")))


def test_missing_model_fails_at_start_up(tmp_path: Path, dirs: ServingDirs) -> None:
    with pytest.raises(ModelUnavailable, match="Cannot load the tokenizer of LOCAL_MODEL"):
        LocalLLM(dirs.settings(model=str(tmp_path / "absent"), lora_adapters={}))


def test_missing_adapter_dir_fails_at_start_up(tmp_path: Path, dirs: ServingDirs) -> None:
    with pytest.raises(ModelUnavailable, match="is not a directory"):
        LocalLLM(dirs.settings(lora_adapters={"gone": tmp_path / "gone"}))
    with pytest.raises(ModelUnavailable, match=r"no adapter_config\.json"):
        LocalLLM(dirs.settings(lora_adapters={"empty": tmp_path}))


def test_adapter_for_another_base_fails_at_start_up(tmp_path: Path, dirs: ServingDirs) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(dirs.adapters["reviews"], renamed)
    set_adapter_base(renamed, "someone/another-model")
    with pytest.raises(ModelUnavailable, match="was trained on someone/another-model"):
        LocalLLM(dirs.settings(lora_adapters={"renamed": renamed}))

    # Same recorded base, but built on a narrower model: the weight shapes do not fit.
    narrow = build_narrow_model(tmp_path / "narrow-model")
    misfit = build_adapter(narrow, tmp_path / "misfit", seed=3)
    set_adapter_base(misfit, str(dirs.model))
    with pytest.raises(ModelUnavailable, match="does not fit"):
        LocalLLM(dirs.settings(lora_adapters={"misfit": misfit}))


def test_quantisation_without_cuda_is_refused(dirs: ServingDirs) -> None:
    with pytest.raises(ModelUnavailable, match="LOCAL_LOAD_IN_4BIT needs a CUDA GPU"):
        LocalLLM(dirs.settings(load_in_4bit=True))


def test_batcher_groups_by_key_and_reports_failures_to_every_caller() -> None:
    calls: list[list[int]] = []

    def run(batch: Sequence[int]) -> list[int]:
        calls.append(list(batch))
        if 6 in batch:
            raise ValueError("bad item")
        return [x * 10 for x in batch]

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        run, key=lambda x: x % 2, max_batch_size=3, window_s=0.05
    )

    async def go() -> list[int | BaseException]:
        submits = (batcher.submit(x) for x in (1, 2, 3, 4, 6))
        return await asyncio.gather(*submits, return_exceptions=True)

    try:
        with batcher.held_until(5):
            results = asyncio.run(go())
    finally:
        batcher.close()
    assert results[:3] == [10, 20, 30]
    assert all(isinstance(r, ValueError) for r in results[3:])
    # Three per batch at most, split by key: [1, 3] and [2], then [4, 6] (which fails).
    assert sorted(calls) == [[1, 3], [2], [4, 6]]
    assert sorted(batcher.batch_sizes) == [1, 2, 2]


def test_a_hold_that_does_not_fill_up_lets_its_requests_run() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        lambda batch: [x * 10 for x in batch], key=lambda x: 0, max_batch_size=4, window_s=0.0
    )
    try:
        with batcher.held_until(3, timeout_s=0.0):
            assert asyncio.run(asyncio.wait_for(batcher.submit(1), timeout=30)) == 10
    finally:
        batcher.close()
    assert batcher.batch_sizes == [1]


def test_batcher_outlives_a_caller_whose_event_loop_has_closed() -> None:
    release = threading.Event()

    def run(batch: Sequence[int]) -> list[int]:
        release.wait(timeout=30)
        return [x * 10 for x in batch]

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        run, key=lambda x: 0, max_batch_size=4, window_s=0.0
    )

    async def leave_early() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(1), timeout=0.2)

    try:
        asyncio.run(leave_early())  # its loop is closed before the result comes back
        release.set()
        assert asyncio.run(asyncio.wait_for(batcher.submit(2), timeout=30)) == 20
    finally:
        batcher.close()
