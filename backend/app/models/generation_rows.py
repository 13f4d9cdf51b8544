"""Per-row control of one batched ``generate`` call: sampling, streaming and stopping.

``generate`` treats a batch as one unit: it samples every row from the global random state,
streams only batches of one, and stops rows on end-of-sequence alone. Requests that share a batch
are independent, so each row here has its own random generator, its own text sink and its own
"the reader has gone" flag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.streamers import BaseStreamer


class RowSampler(LogitsProcessor):
    """Temperature and nucleus (top-p) sampling, each row drawing from its own generator.

    Each row draws one uniform number from its generator and picks its token by inverse
    transform; the returned scores leave only that token, which greedy decoding then takes. A
    request with a seed therefore writes the same text alone or batched with others.
    """

    def __init__(self, generators: list[torch.Generator], temperature: float, top_p: float) -> None:
        self._generators = generators
        self._temperature = temperature
        self._top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float() / self._temperature, dim=-1)
        ordered, order = probs.sort(dim=-1, descending=True)
        # Keep the most probable tokens until their mass reaches top_p (always the first one).
        before = ordered.cumsum(dim=-1) - ordered
        ordered = ordered.masked_fill(before >= self._top_p, 0.0)
        cumulative = ordered.cumsum(dim=-1)
        draws = torch.stack(
            [torch.rand((), generator=g, device=g.device) for g in self._generators]
        ).to(probs.device)
        targets = (draws * cumulative[:, -1]).unsqueeze(-1)
        picked = torch.searchsorted(cumulative, targets).clamp_(max=probs.shape[-1] - 1)
        tokens = order.gather(-1, picked)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(-1, tokens, 0.0)


def row_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A random generator for one row: from ``seed``, or fresh entropy when there is none."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class StopAbandoned(StoppingCriteria):
    """Ends each row whose flag is set (its reader went away); the other rows go on."""

    def __init__(self, flags: Sequence[threading.Event | None]) -> None:
        self._flags = flags

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        done = [flag is not None and flag.is_set() for flag in self._flags]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class RowStreamer(BaseStreamer):
    """Hands each row's new text to that row's sink as tokens arrive (rows without one are skipped).

    Text is released as it decodes, except a trailing replacement character: a token that ends
    inside a multi-byte character (a Hangul syllable is three bytes) waits for the next. The decoded
    run is restarted after each line break, so decoding stays cheap on long answers. ``put``
    receives the prompt first, then one token per row per step.
    """

    def __init__(self, tokenizer: Any, sinks: Sequence[Callable[[str], None] | None]) -> None:
        self._tokenizer = tokenizer
        self._sinks = sinks
        self._tokens: list[list[int]] = [[] for _ in sinks]
        self._released = [0] * len(sinks)
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self._sinks), -1)[:, -1].tolist()):
            if self._sinks[row] is not None:
                self._tokens[row].append(token)
                self._release(row, final=False)

    def end(self) -> None:
        for row, sink in enumerate(self._sinks):
            if sink is not None:
                self._release(row, final=True)

    def _release(self, row: int, *, final: bool) -> None:
        text = self._tokenizer.decode(self._tokens[row], skip_special_tokens=True)
        if not final:
            text = text.rstrip("\ufffd")
        piece = text[self._released[row] :]
        if text.endswith("\n"):
            self._tokens[row].clear()
            self._released[row] = 0
        else:
            self._released[row] = len(text)
        sink = self._sinks[row]
        if piece and sink is not None:
            sink(piece)
