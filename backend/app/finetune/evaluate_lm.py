"""The language-model side of evaluation: load base (+ adapter), generate reviews, score replies.

Prompts come from ``prompts.render_review_prompt`` and replies are scored with the trainer's own
example builder and loss (``examples.tokenize_reviews``, ``train.token_loss_sum``), so the
numbers describe the format the adapter was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import NotFound
from app.finetune.data import Review
from app.finetune.peft_compat import peft_deprecations_silenced
from app.finetune.prompts import chat_template_for, render_review_prompt


@dataclass
class LoadedModel:
    """A base model on its device, with the adapter attached when one was given."""

    model: Any
    tokenizer: Any
    has_adapter: bool

    @contextmanager
    def variant(self, name: str) -> Iterator[None]:
        """Run the block as ``"base"`` (adapter switched off) or ``"adapter"``."""
        if name == "base" and self.has_adapter:
            with self.model.disable_adapter():
                yield
        else:
            yield


def load_model(model: str, adapter: Path | None = None) -> LoadedModel:
    """Load ``model`` for inference (bf16 on a capable GPU, fp32 elsewhere) and attach ``adapter``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = (
        torch.bfloat16
        if device.type == "cuda" and torch.cuda.is_bf16_supported()
        else torch.float32
    )
    # The adapter folder holds the tokenizer saved with the chat template it was trained on.
    tokenizer_source = (
        str(adapter) if adapter and (adapter / "tokenizer_config.json").exists() else model
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        net = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except OSError as exc:
        raise NotFound(f"cannot load model {model!r}: {exc}") from exc
    net.to(device)
    if adapter is not None:
        from peft import PeftModel

        if not (adapter / "adapter_config.json").exists():
            raise NotFound(f"{adapter} is not an adapter folder (no adapter_config.json)")
        with peft_deprecations_silenced():
            net = PeftModel.from_pretrained(net, str(adapter))
    net.eval()
    return LoadedModel(net, tokenizer, adapter is not None)


def generate_reviews(
    loaded: LoadedModel,
    ratings: Sequence[int],
    scale: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
) -> list[str]:
    """One sampled review per entry of ``ratings``, generated in left-padded batches."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.padding_side = "left"
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    device = next(model.parameters()).device
    stop_ids = _stop_token_ids(model, tokenizer)
    # Seeded per call, so base and adapter sample with the same random stream.
    torch.manual_seed(seed)
    texts: list[str] = []
    for start in range(0, len(ratings), batch_size):
        prompts = [
            render_review_prompt(tokenizer, r, scale) for r in ratings[start : start + batch_size]
        ]
        encoded = tokenizer(
            prompts, add_special_tokens=False, padding=True, return_tensors="pt"
        ).to(device)
        with torch.no_grad():
            output = model.generate(
                **encoded,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=stop_ids,
            )
        replies = output[:, encoded["input_ids"].shape[1] :]
        decoded = tokenizer.batch_decode(replies, skip_special_tokens=True)
        # A reply cut at max_new_tokens can end inside a multi-byte character.
        texts += [t.strip().rstrip("\ufffd").strip() for t in decoded]
    return texts


def reply_perplexity(
    loaded: LoadedModel, reviews: Sequence[Review], scale: int, *, batch_size: int
) -> tuple[float, int]:
    """Perplexity of real replies given their rating prompt, and how many tokens it covers."""
    import torch

    from app.finetune.examples import tokenize_reviews
    from app.finetune.packing import Segment, collate
    from app.finetune.train import token_loss_sum

    tokenizer, model = loaded.tokenizer, loaded.model
    examples = tokenize_reviews(
        list(reviews),
        tokenizer,
        rating_scale=scale,
        chat_template=chat_template_for(tokenizer),
        max_seq_len=4096,
    )
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    device = next(model.parameters()).device
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        rows = [[Segment([i])] for i in range(start, min(start + batch_size, len(examples)))]
        batch = collate(examples, rows, pad_id).to(device)
        with torch.no_grad():
            total_loss += float(token_loss_sum(model, batch))
        total_tokens += batch.label_tokens
    return math.exp(total_loss / total_tokens), total_tokens


def _stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-text and end-of-turn ids: a reply ends at whichever the model emits first."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    if "<|eot_id|>" in vocab:
        ids.add(vocab["<|eot_id|>"])
    return sorted(i for i in ids if i is not None)
