"""Reviews → tokenised chat examples with a loss mask, cached on disk.

Each example is ``prompt tokens + response tokens``: the prompt (system, user, opened assistant
turn) is tokenised exactly as generation will tokenise it, and the response (the review and the
turn's closing token) separately, so a BPE merge never straddles the boundary. Only response tokens
carry loss.

The tokenised arrays are saved under a key made of the data's hash, the cleaning options, the
tokenizer, the chat template and the length limit, so a restart (or a second run on the same
data) loads them instead of tokenising 200,000 reviews again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import InvalidInput
from app.core.logger import get_logger
from app.hf.chat_template import render_chat
from app.models.review_prompt import REVIEW_SYSTEM_PROMPT, review_messages
from app.recipes.data import DataOptions, DataReport, Review, data_fingerprint, load_reviews

log = get_logger("finetune.examples")

_PLACEHOLDER = "\u241fRESPONSE\u241f"
_CACHE_VERSION = "2"


@dataclass(frozen=True)
class TokenizedExamples:
    """Examples stored flat: ``input_ids[offsets[i]:offsets[i+1]]``, loss after ``prompt_lengths[i]``.

    ``prompt_keys[i]`` numbers the distinct prompts: examples with the same key start with the
    same prompt tokens (same rating, scale and subject), which packing can share.
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    prompt_lengths: np.ndarray
    prompt_keys: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per example."""
        return np.diff(self.offsets)

    @property
    def response_lengths(self) -> np.ndarray:
        """Tokens per example that carry loss."""
        return self.lengths - self.prompt_lengths

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields by name, for saving."""
        return {
            "input_ids": self.input_ids,
            "offsets": self.offsets,
            "prompt_lengths": self.prompt_lengths,
            "prompt_keys": self.prompt_keys,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> TokenizedExamples:
        """Rebuild from what ``arrays`` returned (or an opened ``.npz``)."""
        return cls(
            np.asarray(arrays["input_ids"]),
            np.asarray(arrays["offsets"]),
            np.asarray(arrays["prompt_lengths"]),
            np.asarray(arrays["prompt_keys"]),
        )

    def example(self, index: int) -> tuple[np.ndarray, int]:
        """Token ids of one example and the length of its prompt."""
        return (
            self.input_ids[self.offsets[index] : self.offsets[index + 1]],
            int(self.prompt_lengths[index]),
        )


@dataclass(frozen=True)
class PreparedData:
    """Tokenised examples, the cleaning report, and the hashes that identify them."""

    examples: TokenizedExamples
    report: DataReport
    data_hash: str
    cache_key: str


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's vocabulary and rules (not of where it was loaded from)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = (
        backend.to_str()
        if backend is not None
        else json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def tokenize_reviews(
    reviews: list[Review],
    tokenizer: Any,
    *,
    rating_scale: int,
    chat_template: str,
    max_seq_len: int,
    report: DataReport | None = None,
) -> TokenizedExamples:
    """Render each review as a chat and tokenise it; examples over ``max_seq_len`` are dropped."""
    prompts: dict[tuple[int, str | None], list[int]] = {}
    tails: dict[tuple[int, str | None], str] = {}
    for review in reviews:
        key = (review.rating, review.subject)
        if key not in prompts:
            prompt_ids, tail = _prompt_and_tail(tokenizer, chat_template, rating_scale, *key)
            prompts[key], tails[key] = prompt_ids, tail
    responses = tokenizer(
        [r.text + tails[(r.rating, r.subject)] for r in reviews], add_special_tokens=False
    )["input_ids"]

    ids: list[np.ndarray] = []
    prompt_lengths: list[int] = []
    keys: list[int] = []
    key_numbers = {key: number for number, key in enumerate(prompts)}
    too_long = 0
    for review, response in zip(reviews, responses, strict=True):
        prompt = prompts[(review.rating, review.subject)]
        if len(prompt) + len(response) > max_seq_len:
            too_long += 1
            continue
        ids.append(np.asarray(prompt + response, dtype=np.int32))
        prompt_lengths.append(len(prompt))
        keys.append(key_numbers[(review.rating, review.subject)])
    if report is not None and too_long:
        report.dropped["over_max_seq_len"] += too_long
        report.kept -= too_long
    if not ids:
        raise InvalidInput(f"every example is longer than --max-seq-len {max_seq_len} tokens")
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in ids], out=offsets[1:])
    return TokenizedExamples(
        np.concatenate(ids),
        offsets,
        np.asarray(prompt_lengths, dtype=np.int32),
        np.asarray(keys, dtype=np.int32),
    )


def prepare_examples(
    path: Path,
    options: DataOptions,
    tokenizer: Any,
    *,
    chat_template: str,
    max_seq_len: int,
    cache_dir: Path | None,
) -> PreparedData:
    """Load tokenised examples from the cache, or read, clean and tokenise the data and cache them."""
    data_hash = data_fingerprint(path)
    key_material = {
        "version": _CACHE_VERSION,
        "data": data_hash,
        "options": asdict(options),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "template": chat_template,
        "system_prompt": REVIEW_SYSTEM_PROMPT,
        "max_seq_len": max_seq_len,
    }
    cache_key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:24]
    cached = cache_dir / f"examples-{cache_key}.npz" if cache_dir else None
    if cached is not None and cached.exists():
        with np.load(cached) as arrays:
            examples = TokenizedExamples.from_arrays(arrays)
            report = _report_from_json(str(arrays["report"]))
        log.info("loaded %d tokenised examples from %s", len(examples), cached)
        return PreparedData(examples, report, data_hash, cache_key)

    reviews, report = load_reviews(path, options)
    examples = tokenize_reviews(
        reviews,
        tokenizer,
        rating_scale=report.rating_scale,
        chat_template=chat_template,
        max_seq_len=max_seq_len,
        report=report,
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        with partial.open("wb") as f:
            np.savez(f, **examples.arrays(), report=np.asarray(json.dumps(report.to_dict())))
        os.replace(partial, cached)
    return PreparedData(examples, report, data_hash, cache_key)


def _prompt_and_tail(
    tokenizer: Any, chat_template: str, scale: int, rating: int, subject: str | None
) -> tuple[list[int], str]:
    """Prompt token ids, and the text the template puts after the response (e.g. ``<|eot_id|>``)."""
    messages = review_messages(rating, scale, subject)
    prompt = render_chat(
        tokenizer, messages, add_generation_prompt=True, chat_template=chat_template
    )
    full = render_chat(
        tokenizer,
        [*messages, {"role": "assistant", "content": _PLACEHOLDER}],
        add_generation_prompt=False,
        chat_template=chat_template,
    )
    if not full.startswith(prompt + _PLACEHOLDER):
        raise InvalidInput(
            "the chat template renders a conversation differently from its generation prompt; "
            "it cannot be used to train only on the assistant's reply"
        )
    tail = full[len(prompt) + len(_PLACEHOLDER) :]
    return tokenizer(prompt, add_special_tokens=False)["input_ids"], tail


def _report_from_json(text: str) -> DataReport:
    data = json.loads(text)
    report = DataReport(
        data_format=data["data_format"],
        rating_scale=data["rating_scale"],
        read=data["read"],
        kept=data["kept"],
        ratings={int(k): v for k, v in data["ratings"].items()},
    )
    report.dropped.update(data["dropped"])
    return report
