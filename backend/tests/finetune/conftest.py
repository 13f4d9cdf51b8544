"""Fixtures of the fine-tuning tests: one tiny pre-trained chat model per session, small data sets."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_shared
from tests.utils.tiny_lm import NSMC_TRAIN, build_tiny_model_dir

# A mapping the adapter can learn in a few dozen steps: each rating has its own sentence.
RATING_SENTENCES = {
    1: "최악의 영화 돈 아깝다",
    3: "기대보다 많이 아쉽다",
    5: "보통이다 무난하다",
    8: "배우들 연기가 좋다",
    10: "인생 영화 최고다",
}


@pytest.fixture(scope="session")
def nsmc_train() -> Path:
    """The shared NSMC training TSV."""
    return require_shared(NSMC_TRAIN)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, nsmc_train: Path) -> Path:
    """A tokenizer + tiny Llama pre-trained on reviews, saved like a hub model (built once)."""
    return build_tiny_model_dir(
        tmp_path_factory.mktemp("tiny-lm") / "model", data=nsmc_train, pretrain_steps=300
    )


@pytest.fixture(scope="session")
def rating_sentences_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JSONL with one fixed sentence for each of five ratings out of 10."""
    path = tmp_path_factory.mktemp("mapping") / "ratings.jsonl"
    path.write_text(
        "".join(
            json.dumps({"review": text, "rating": rating}, ensure_ascii=False) + "\n"
            for rating, text in RATING_SENTENCES.items()
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def nsmc_sample(tmp_path_factory: pytest.TempPathFactory, nsmc_train: Path) -> Path:
    """The first 600 NSMC reviews as an uncompressed TSV (header included)."""
    path = tmp_path_factory.mktemp("nsmc") / "sample.tsv"
    with gzip.open(nsmc_train, "rt", encoding="utf-8") as f:
        path.write_text("".join(next(f) for _ in range(601)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small models run fastest on one thread; on a shared machine more threads spin idle."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """The governor sets torch's thread count process-wide; give other tests theirs back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
