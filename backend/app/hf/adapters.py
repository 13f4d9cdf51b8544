"""A base model with a saved LoRA adapter on it, as evaluation and merging load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.errors import NotFound
from app.hf.peft_compat import peft_deprecations_silenced

ADAPTER_CONFIG = "adapter_config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"


def tokenizer_source(adapter: Path | None, base: str) -> str:
    """The adapter folder when it holds a tokenizer (saved with the chat template the adapter
    was trained with), else the base model."""
    if adapter is not None and (adapter / TOKENIZER_CONFIG).exists():
        return str(adapter)
    return base


def attach_saved_adapter(model: Any, adapter: Path) -> Any:
    """``model`` wrapped by PEFT with the adapter saved in folder ``adapter``."""
    from peft import PeftModel

    if not (adapter / ADAPTER_CONFIG).exists():
        raise NotFound(f"{adapter} is not an adapter folder (no {ADAPTER_CONFIG})")
    with peft_deprecations_silenced():
        return PeftModel.from_pretrained(model, str(adapter))
