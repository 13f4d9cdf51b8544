"""Token ids every generation and every batch needs: padding and where a reply stops."""

from __future__ import annotations

from typing import Any

# Llama-3's end-of-turn token: chat models of that family end a reply with it, not with EOS.
END_OF_TURN = "<|eot_id|>"


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, or its EOS id for tokenizers that define no pad token."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id)


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS ids of the generation config and the tokenizer, plus Llama-3's end-of-turn token:
    a reply ends at whichever the model emits first."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    if END_OF_TURN in vocab:
        ids.add(vocab[END_OF_TURN])
    return sorted(i for i in ids if i is not None)
