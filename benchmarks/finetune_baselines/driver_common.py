"""What the baseline drivers share: the run's arguments, the examples, and the check-and-time callback.

Each driver runs with the python of its baseline's own virtualenv (torch, transformers, peft and
the baseline; not the project), so this module imports only what every one of them has.

The callback runs when the Hugging Face ``Trainer`` under each baseline starts its loop, on the
very data loader and model the loop uses, before the clock starts:

- it goes once through an epoch of the loop's data loader and checks that the labelled tokens are
  exactly the replies (their count and the sum of their ids equal those of the exported
  examples' replies): the prompt is masked, nothing is truncated, dropped or trained twice;
- on the first micro-batch it compares, in eval mode, the logits of up to 8 packed examples that
  are not first in their row with those of the same examples run alone: a difference means
  tokens attend across examples.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

IGNORE_INDEX = -100
# fp32 logits of the same example computed in another layout agree to ~1e-6; attention
# that leaks across examples moves them by orders of magnitude more.
ISOLATION_TOLERANCE = 1e-3
CHECKED_EXAMPLES = 8


def parse_args(description: str) -> argparse.Namespace:
    """The arguments every driver takes (the benchmark passes the same values to all)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--examples", type=Path, required=True, help="exported JSONL")
    parser.add_argument("--model", type=Path, required=True, help="local model folder")
    parser.add_argument(
        "--output", type=Path, required=True, help="folder for result.json"
    )
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--row-tokens", type=int, required=True)
    parser.add_argument("--rows-per-batch", type=int, required=True)
    parser.add_argument("--lora-r", type=int, required=True)
    parser.add_argument("--lora-alpha", type=int, required=True)
    parser.add_argument("--lora-dropout", type=float, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--warmup-ratio", type=float, required=True)
    parser.add_argument(
        "--steps", type=int, required=True, help="optimizer steps timed"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def lora_config(args: argparse.Namespace) -> Any:  # -> peft.LoraConfig
    """The adapter every baseline trains: the benchmark's rank, alpha and dropout on every
    linear projection, as `rag finetune train` puts it."""
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def read_examples(path: Path) -> list[dict[str, Any]]:
    """The exported examples: ``input_ids`` and ``prompt_len`` (the reply follows the prompt)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages``."""
    return {name: importlib.metadata.version(name) for name in packages}


class CheckAndTime(TrainerCallback):
    """Checks the loop's data and attention as it starts (see the module), then times the loop.

    ``collate`` wraps the trainer's collator: the micro-batches it lays out once the clock runs
    are counted (positions, useful tokens, reviews), as many as the loop trained on, since the data
    loader may lay out one batch ahead of it.
    """

    def __init__(self, examples: list[dict[str, Any]], *, packed: bool = True) -> None:
        self.packed = packed
        replies = [e["input_ids"][e["prompt_len"] :] for e in examples]
        self.expected_labels = sum(len(r) for r in replies)
        self.expected_label_sum = sum(sum(r) for r in replies)
        self.checks: dict[str, Any] = {}
        self.timed: list[dict[str, int]] = []
        self.batches = 0
        self.start = self.end = 0.0

    def collate(self, collator: Callable[[list], dict]) -> Callable[[list], dict]:
        """``collator``, counting what it lays out while the clock runs."""

        def counted(features: list) -> dict:
            batch = collator(features)
            if self.start and not self.end:
                self.timed.append(batch_counts(batch))
            return batch

        return counted

    def on_train_begin(
        self, args, state, control, model=None, train_dataloader=None, **kwargs
    ):
        labels = label_sum = 0
        first: dict[str, torch.Tensor] | None = None
        for batch in train_dataloader:
            first = first or batch
            target = batch["labels"]
            labels += int((target != IGNORE_INDEX).sum())
            label_sum += int(target[target != IGNORE_INDEX].sum())
        if labels != self.expected_labels or label_sum != self.expected_label_sum:
            raise SystemExit(
                f"an epoch trains on {labels} tokens (id sum {label_sum}), not on the replies' "
                f"{self.expected_labels} (id sum {self.expected_label_sum})"
            )
        self.checks = {
            "epoch_label_tokens": labels,
            "labels_are_replies": True,
            **(
                isolation(model, first)
                if self.packed
                else {"packed_examples_checked": 0}
            ),
        }
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()
        self.batches = state.global_step * args.gradient_accumulation_steps


def batch_counts(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """Positions computed, the examples' own tokens among them, and the examples."""
    found = segments(batch)
    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        tokens = int((mask != 0).sum())
    else:
        tokens = sum(length for _, _, length in found)
    return {
        "positions": batch["input_ids"].numel(),
        "tokens": tokens,
        "reviews": len(found),
    }


def segments(batch: dict[str, torch.Tensor]) -> list[tuple[int, int, int]]:
    """``(row, start, length)`` of each example in the batch that carries labels.

    Examples start where position ids restart at 0 (one example per row without them).
    """
    ids, labels = batch["input_ids"], batch["labels"]
    if "position_ids" in batch:
        positions = batch["position_ids"]
    else:
        positions = torch.zeros_like(ids)
        positions[:, 1:] = 1
    found = []
    for row in range(ids.shape[0]):
        starts = (positions[row] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
        for start, end in itertools.pairwise(starts):
            if (labels[row, start:end] != IGNORE_INDEX).any():
                found.append((row, start, end - start))
    return found


def isolation(model: Any, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How far packed examples' logits are from the same examples run alone (first batch)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    packed = [s for s in segments(batch) if s[1] > 0][:CHECKED_EXAMPLES]
    if not packed:
        raise SystemExit(
            "the first batch packs no example after another: nothing to check"
        )
    model.eval()
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits
        worst = 0.0
        for row, start, length in packed:
            alone = batch["input_ids"][row, start : start + length][None]
            own = model(input_ids=alone, use_cache=False).logits[0]
            worst = max(
                worst, float((logits[row, start : start + length] - own).abs().max())
            )
    model.train()
    if worst > ISOLATION_TOLERANCE:
        raise SystemExit(
            f"packed examples' logits differ from the examples alone by {worst:.3g}: "
            "tokens attend across examples"
        )
    return {"packed_examples_checked": len(packed), "max_logit_diff": worst}


def write_result(output: Path, timer: CheckAndTime, info: dict[str, Any]) -> None:
    """``result.json``: throughput of the timed steps, the checks, and ``info``."""
    seconds = timer.end - timer.start
    counts = {
        key: sum(batch[key] for batch in timer.timed[: timer.batches])
        for key in ("positions", "tokens", "reviews")
    }
    result = {
        "useful_tokens_per_s": counts["tokens"] / seconds,
        "reviews_per_s": counts["reviews"] / seconds,
        "positions_per_review": counts["positions"] / counts["reviews"],
        "seconds": seconds,
        "micro_batches": timer.batches,
        "checks": timer.checks,
        **info,
    }
    (output / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
