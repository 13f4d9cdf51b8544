"""Padding and stop ids, on a real tokenizer and model saved like a hub checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.hf.tokens import END_OF_TURN, pad_token_id, stop_token_ids
from tests.conftest import require_shared
from tests.utils.tiny_lm import NSMC_TRAIN, build_tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(
        tmp_path_factory.mktemp("tiny") / "model", data=require_shared(NSMC_TRAIN)
    )


def test_a_reply_stops_at_eos_or_at_the_end_of_its_turn(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert eot != tokenizer.eos_token_id
    assert stop_token_ids(tokenizer, model) == sorted({eot, tokenizer.eos_token_id})
    # A generation config that names no EOS still stops at the tokenizer's.
    model.generation_config.eos_token_id = None
    assert stop_token_ids(tokenizer, model) == sorted({eot, tokenizer.eos_token_id})


def test_pad_id_falls_back_to_eos(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.pad_token_id is not None
    assert pad_token_id(tokenizer) == tokenizer.pad_token_id
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    assert pad_token_id(tokenizer) == tokenizer.eos_token_id
