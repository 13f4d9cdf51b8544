"""Fold a LoRA adapter into its base model, for serving without PEFT.

The merge always goes into the full-precision (bf16 / fp32) base, also for an adapter trained with
QLoRA: adding the low-rank update to 4-bit weights would re-quantise it away and degrade output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from app.core.errors import InvalidInput, NotFound
from app.core.logger import get_logger
from app.hf.adapters import ADAPTER_CONFIG, attach_saved_adapter, tokenizer_source

log = get_logger("finetune.merge")

MergeDtype = Literal["auto", "bf16", "fp16", "fp32"]


def adapter_base_model(adapter: Path) -> str:
    """The base model an adapter folder was trained on, from its ``adapter_config.json``."""
    config_file = adapter / ADAPTER_CONFIG
    if not config_file.exists():
        raise NotFound(f"{adapter} is not an adapter folder (no {ADAPTER_CONFIG})")
    base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise InvalidInput(f"{config_file} does not name its base model; pass --model")
    return str(base)


def merge_adapter(
    adapter: Path, output: Path, *, model: str | None = None, dtype: MergeDtype = "auto"
) -> Path:
    """Load ``model`` (default: the adapter's base) unquantised, merge ``adapter``, save to ``output``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base_id = model or adapter_base_model(adapter)
    try:
        base_config = AutoConfig.from_pretrained(base_id)
    except OSError as exc:
        raise NotFound(f"cannot load base model {base_id!r}: {exc}") from exc
    if getattr(base_config, "quantization_config", None):
        raise InvalidInput(
            f"{base_id} is a quantised checkpoint; merge into the original bf16/fp32 base "
            "(merging into 4-bit weights degrades the output)"
        )
    torch_dtype: Any = {
        "auto": "auto",
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "fp32": torch.float32,
    }[dtype]
    base = AutoModelForCausalLM.from_pretrained(base_id, dtype=torch_dtype)
    merged = attach_saved_adapter(base, adapter).merge_and_unload()
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output)
    # The adapter folder's tokenizer carries the chat template the adapter was trained with.
    AutoTokenizer.from_pretrained(tokenizer_source(adapter, base_id)).save_pretrained(output)
    log.info("merged %s into %s → %s", adapter, base_id, output)
    return output
