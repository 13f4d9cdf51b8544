"""The language-model side of evaluation: load base (+ adapter), generate reviews, score replies.

Prompts come from ``prompts.render_review_prompt`` and replies are scored with the trainer's own
example builder and loss (``examples.tokenize_reviews``, ``model.token_loss_sum``), so the
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
from app.finetune.prompts import render_review_prompt
from app.hf.adapters import attach_saved_adapter, tokenizer_source
from app.hf.chat_template import chat_template_for
from app.hf.device import default_device, training_dtype
from app.hf.tokens import pad_token_id, stop_token_ids
from app.recipes.data import Review
from app.text import normalize_text


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
    """Load ``model`` for inference in the dtype it was trained in and attach ``adapter``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = default_device()
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(adapter, model))
        net = AutoModelForCausalLM.from_pretrained(model, dtype=training_dtype(device))
    except OSError as exc:
        raise NotFound(f"cannot load model {model!r}: {exc}") from exc
    net.to(device)
    if adapter is not None:
        net = attach_saved_adapter(net, adapter)
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
    pad_id = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    stop_ids = stop_token_ids(tokenizer, model)
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
        # A tiny or badly trained model may write control characters (NUL among them), which
        # neither a report in PostgreSQL nor a reader wants.
        texts += [normalize_text(t).strip().rstrip("\ufffd").strip() for t in decoded]
    return texts


def reply_perplexity(
    loaded: LoadedModel, reviews: Sequence[Review], scale: int, *, batch_size: int
) -> tuple[float, int]:
    """Perplexity of real replies given their rating prompt, and how many tokens it covers."""
    import torch

    from app.finetune.examples import tokenize_reviews
    from app.finetune.model import token_loss_sum
    from app.finetune.packing import Segment, collate

    tokenizer, model = loaded.tokenizer, loaded.model
    examples = tokenize_reviews(
        list(reviews),
        tokenizer,
        rating_scale=scale,
        chat_template=chat_template_for(tokenizer),
        max_seq_len=4096,
    )
    pad_id = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        rows = [[Segment([i])] for i in range(start, min(start + batch_size, len(examples)))]
        batch = collate(examples, rows, pad_id).to(device)
        with torch.no_grad():
            total_loss += float(token_loss_sum(model, batch))
        total_tokens += batch.label_tokens
    return math.exp(total_loss / total_tokens), total_tokens
