"""A tiny local chat model with two LoRA adapters on it, built once per test session.

The adapters start from random (not zero) LoRA B matrices with different seeds, so each one
measurably moves the base model's output, and differently from the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from app.core.config import LLMSettings, LocalModelSettings
from tests.conftest import require_shared
from tests.utils.tiny_lm import NSMC_TRAIN, build_tiny_model_dir

ADAPTER_SEEDS = {"reviews": 1, "other": 2}


@dataclass(frozen=True)
class ServingDirs:
    """Where the tiny base model and its adapters were written."""

    model: Path
    adapters: dict[str, Path]

    def settings(
        self, *, lora_adapters: Mapping[str, Path] | None = None, **local: object
    ) -> LLMSettings:
        """``LLM_PROVIDER=local`` settings serving this model with ``lora_adapters`` (unset: both
        adapters); ``local`` overrides ``LocalModelSettings`` fields."""
        values: dict[str, Any] = {
            "model": str(self.model),
            "device": "cpu",
            "batch_window_ms": 50.0,
            **local,
        }
        return LLMSettings(
            provider="local",
            lora_adapters=dict(self.adapters if lora_adapters is None else lora_adapters),
            local=LocalModelSettings(**values),
        )


@cache
def serving_dirs(root: Path) -> ServingDirs:
    """Build (once per ``root``) the tiny model and the ``reviews`` / ``other`` adapters."""
    model = build_tiny_model_dir(root / "model", data=NSMC_TRAIN, pretrain_steps=50)
    return ServingDirs(
        model,
        {name: build_adapter(model, root / name, seed) for name, seed in ADAPTER_SEEDS.items()},
    )


def build_adapter(model_dir: Path, output: Path, seed: int, *, rank: int = 4) -> Path:
    """Save a LoRA adapter for ``model_dir`` whose weights are drawn from ``seed``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from app.hf.peft_compat import peft_deprecations_silenced

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(
        r=rank,
        lora_alpha=4 * rank,
        target_modules=["q_proj", "v_proj", "o_proj"],
        # Random B (instead of zeros) so the untrained adapter already changes the output.
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    with peft_deprecations_silenced():
        get_peft_model(base, config).save_pretrained(output)
    return output


def set_adapter_base(adapter: Path, base: str) -> None:
    """Rewrite the base model an adapter folder says it was trained on."""
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    config_file.write_text(json.dumps(config), encoding="utf-8")


def build_narrow_model(path: Path) -> Path:
    """A random Llama of another width than the tiny base: adapters of one do not fit the other."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def tiny_serving(tmp_path_factory: pytest.TempPathFactory) -> ServingDirs:
    """The session's tiny model and adapters, built on the shared review data."""
    require_shared(NSMC_TRAIN)
    return serving_dirs(tmp_path_factory.getbasetemp() / "local-serving")


def arriving_together(llm: Any, count: int) -> AbstractContextManager[None]:
    """Hold ``llm``'s batcher until ``count`` requests are queued, as if they came at once.

    Otherwise which requests meet in one batch depends on how quickly a busy machine gets them
    to the batcher within its window.
    """
    return llm._batcher.held_until(count)


def record_endless_generations(llm: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make ``llm`` write until its token limit, and collect every text it generates.

    Only the padding token then ends an answer, and greedy decoding never picks it, so a
    generation that is cut short shows as a text far shorter than the limit.
    """
    monkeypatch.setattr(llm, "_stop_ids", [llm.tokenizer.pad_token_id])
    produced: list[str] = []
    generate = llm._generate

    def recording(*args: Any, **kwargs: Any) -> list[str]:
        texts = generate(*args, **kwargs)
        produced.extend(texts)
        return texts

    monkeypatch.setattr(llm, "_generate", recording)
    return produced


def wait_for_generation(produced: list[str], timeout_s: float = 120.0) -> None:
    """Block until the recorded model has finished a ``generate`` call (its texts are in)."""
    deadline = time.monotonic() + timeout_s
    while not produced:
        assert time.monotonic() < deadline, "the generation did not end"
        time.sleep(0.05)
