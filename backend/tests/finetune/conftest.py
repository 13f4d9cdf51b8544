"""Fixtures of the fine-tuning tests: one tiny pre-trained chat model per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.tiny_lm import NSMC_TRAIN, build_tiny_model_dir


@pytest.fixture(scope="session")
def nsmc_train() -> Path:
    """The shared NSMC training TSV (skips when the shared data folder is absent)."""
    if not NSMC_TRAIN.exists():
        pytest.skip(f"shared data not found at {NSMC_TRAIN}")
    return NSMC_TRAIN


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, nsmc_train: Path) -> Path:
    """A tokenizer + tiny Llama pre-trained on reviews, saved like a hub model (built once)."""
    return build_tiny_model_dir(
        tmp_path_factory.mktemp("tiny-lm") / "model", data=nsmc_train, pretrain_steps=300
    )
