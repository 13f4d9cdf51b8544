"""A small Llama pre-trained from scratch on NSMC review text: the base model of `make bench-reviews`.

Plain causal language modelling: each review is ``<bos> text <eos>`` in one long token stream cut
into fixed blocks; no ratings, no chat turns. The tokenizer is byte-level BPE trained here on the
same reviews (as ``tests/utils/tiny_lm.py`` builds it, with the Llama-3 chat tokens), and the
folder carries the compact Llama-3 chat template, so `rag finetune train` and the review writer
load it like any chat model from the hub.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PretrainRecipe:
    """Model shape and optimisation of the pre-training run."""

    vocab_size: int = 4000
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 6
    num_kv_heads: int = 2
    intermediate_size: int = 512
    tokenizer_reviews: int = 50_000
    block_tokens: int = 128
    # Small batches learn more per token this early in training than large ones.
    batch_rows: int = 8
    steps: int = 1000
    lr: float = 5e-3
    warmup_steps: int = 50
    threads: int = 1
    bf16: bool = True
    """Matrix products in bfloat16 (weights and optimizer stay fp32): on CPUs with AMX or
    AVX-512 bf16 units this is about 1.6 times faster."""
    seed: int = 0


def read_review_texts(path: Path, limit: int | None = None) -> list[str]:
    """Review texts of an NSMC TSV in file order (ratings are not read)."""
    texts: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            if len(row) == 4 and row[3].strip():
                texts.append(row[3].strip())
                if limit is not None and len(texts) >= limit:
                    break
    return texts


def pretrain_base(
    texts: list[str], output: Path, recipe: PretrainRecipe
) -> dict[str, Any]:
    """Train tokenizer and model on ``texts``, save both into ``output``; the run's figures."""
    import torch
    from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE
    from tests.utils.tiny_lm import EOT, _train_tokenizer
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    shuffled = random.Random(recipe.seed).sample(texts, len(texts))
    tokenizer = _train_tokenizer(
        shuffled[: recipe.tokenizer_reviews], recipe.vocab_size
    )
    tokenizer.chat_template = COMPACT_LLAMA3_TEMPLATE
    tokenizer_s = time.perf_counter() - started

    stream = _token_blocks(tokenizer, shuffled, recipe.block_tokens)
    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    losses = _train(model, stream, recipe)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOT), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    tokens_seen = recipe.steps * recipe.batch_rows * recipe.block_tokens
    return {
        "recipe": asdict(recipe),
        "params": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "reviews": len(texts),
        "stream_tokens": stream.numel(),
        "tokens_seen": tokens_seen,
        "epochs_seen": tokens_seen / stream.numel(),
        "first_loss": losses[0],
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
        "tokenizer_s": tokenizer_s,
        "seconds": time.perf_counter() - started,
    }


def _token_blocks(
    tokenizer: Any, texts: list[str], block: int
) -> Any:  # -> torch.Tensor
    import torch

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    ids = [token for review in encoded for token in (bos, *review, eos)]
    return torch.tensor(ids[: len(ids) // block * block]).view(-1, block)


def _train(model: Any, stream: Any, recipe: PretrainRecipe) -> list[float]:
    """AdamW with linear warm-up and cosine decay over random blocks of the stream."""
    import torch

    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.1
    )

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return recipe.lr * (step + 1) / recipe.warmup_steps
        done = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))

    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    losses: list[float] = []
    model.train()
    try:
        for step in range(recipe.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            rows = stream[
                torch.randint(len(stream), (recipe.batch_rows,), generator=generator)
            ]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
                loss = model(input_ids=rows, labels=rows).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step % 100 == 0 or step == recipe.steps - 1:
                print(
                    f"pre-train step {step + 1}/{recipe.steps}: loss {losses[-1]:.3f}",
                    flush=True,
                )
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses
