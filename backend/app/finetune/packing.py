"""Batches without wasted compute: no padding, and a shared prompt computed once.

A review example is a prompt (system + "별점 8/10점 리뷰를 써 주세요", about three quarters of
its tokens) followed by a short reply; only the reply carries loss. Three layouts:

``none``   one example per row, padded to the longest row: the ordinary batch.
``pack``   whole examples side by side in rows of ``row_len`` tokens; position ids restart at
           each example. Given position ids and no attention mask, transformers builds a
           block-diagonal causal mask (FlashAttention-2 takes them as variable-length
           boundaries), so no token attends to another example.
``share``  like ``pack``, but examples with the same prompt (same rating and subject) share one
           copy of it: ``prompt, reply₁, reply₂, ...``. Every reply is positioned right after the
           prompt and, through a 4-D mask, sees the prompt and itself only, so each reply's
           logits are exactly those of ``prompt + reply`` alone; the prompt is computed once
           instead of once per example. The only departure from separate examples: dropout on
           the shared prompt's activations is drawn once for the group.

Loss positions are explicit (``loss_rows``, ``loss_cols`` → ``loss_targets``) rather than shifted
labels, because in the ``share`` layout the first token of each reply is predicted from the
prompt's last position, not from the token before it in the row.

The stream is a deterministic function of (seed, epoch): an epoch's order and rows are
recomputed from scratch, so resuming jumps to a saved (epoch, row) position directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from app.finetune.examples import TokenizedExamples
from app.recipes.train_config import Packing

IGNORE_INDEX = -100


@dataclass
class Segment:
    """One prompt and the examples whose replies follow it (one example unless sharing)."""

    examples: list[int]

    def tokens(self, data: TokenizedExamples) -> int:
        """Tokens the segment occupies in a row."""
        first = self.examples[0]
        return int(data.prompt_lengths[first] + data.response_lengths[self.examples].sum())


Row = list[Segment]


@dataclass(frozen=True)
class Batch:
    """Model inputs for one micro-batch, where its loss is taken, and its token counts."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    """None (packed rows), 2-D padding mask (``none``), or 4-D boolean mask (``share``)."""
    loss_rows: torch.Tensor
    loss_cols: torch.Tensor
    """The position whose output predicts each target."""
    loss_targets: torch.Tensor
    tokens: int
    """Tokens of the examples covered, prompts counted once per example (as a padded batch would
    hold them without its padding)."""
    computed_tokens: int
    """Non-padding tokens actually in the batch (fewer than ``tokens`` when prompts are shared)."""

    @classmethod
    def from_labels(
        cls,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> Batch:
        """A batch from causal-LM labels as transformers takes them: aligned with ``input_ids``,
        -100 where there is no loss (the token at column c is predicted from column c - 1)."""
        rows, cols = (labels[:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
        real = input_ids.numel() if attention_mask is None else int(attention_mask.sum())
        return cls(
            input_ids,
            position_ids,
            attention_mask,
            rows,
            cols,
            labels[:, 1:][rows, cols],
            real,
            real,
        )

    @property
    def label_tokens(self) -> int:
        """Tokens that carry loss."""
        return int(self.loss_targets.numel())

    def labels(self) -> torch.Tensor:
        """Shifted labels as a causal LM's own loss expects them (layouts without sharing only)."""
        labels = torch.full_like(self.input_ids, IGNORE_INDEX)
        labels[self.loss_rows, self.loss_cols + 1] = self.loss_targets
        return labels

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            None if self.attention_mask is None else self.attention_mask.to(device),
            self.loss_rows.to(device),
            self.loss_cols.to(device),
            self.loss_targets.to(device),
            self.tokens,
            self.computed_tokens,
        )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of ``n`` examples in ``epoch``: the same for the same seed, always."""
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class _OpenRow:
    segments: Row = field(default_factory=list)
    by_prompt: dict[int, Segment] = field(default_factory=dict)
    free: int = 0

    def add(self, key: int, index: int, cost: int, *, share: bool) -> None:
        if share and key in self.by_prompt:
            self.by_prompt[key].examples.append(index)
        else:
            segment = Segment([index])
            self.segments.append(segment)
            if share:
                self.by_prompt[key] = segment
        self.free -= cost


def pack_rows(
    data: TokenizedExamples,
    order: np.ndarray,
    row_len: int,
    *,
    share: bool,
    open_rows: int = 16,
) -> list[Row]:
    """Group examples into rows of at most ``row_len`` tokens, keeping roughly ``order``.

    Without sharing: first fit over a few open rows, so short examples fill the gaps long ones
    leave. With sharing: each prompt gets an open row of its own (up to ``4 * open_rows`` at
    once), which fills with that prompt's replies; rows close as they fill, so consecutive rows
    still mix ratings. A prompt that finds no room of its own fills a gap in another row.
    """
    rows: list[Row] = []
    open_: list[_OpenRow] = []
    home: dict[int, _OpenRow] = {}  # sharing: the open row each prompt fills
    limit = 4 * open_rows if share else open_rows

    def close(row: _OpenRow) -> None:
        open_.remove(row)
        rows.append(row.segments)
        for key in [k for k, r in home.items() if r is row]:
            del home[key]

    def open_row(key: int) -> _OpenRow:
        if len(open_) == limit:
            close(open_[0])
        row = _OpenRow(free=row_len)
        open_.append(row)
        if share:
            home[key] = row
        return row

    for index in order.tolist():
        prompt, reply = int(data.prompt_lengths[index]), int(data.response_lengths[index])
        key = int(data.prompt_keys[index])
        if prompt + reply > row_len:
            raise ValueError(
                f"example {index} has {prompt + reply} tokens, more than the row ({row_len})"
            )
        if share and key in home:
            row = home[key]
            if row.free < reply:
                close(row)
                row = open_row(key)
                reply += prompt
            elif key not in row.by_prompt:
                reply += prompt
            row.add(key, index, reply, share=True)
            continue
        if share and len(open_) < limit:
            open_row(key).add(key, index, prompt + reply, share=True)
            continue
        row = next((r for r in open_ if r.free >= prompt + reply), None) or open_row(key)
        row.add(key, index, prompt + reply, share=share)
    rows += [r.segments for r in open_]
    return rows


def epoch_rows(
    data: TokenizedExamples, *, seed: int, epoch: int, row_len: int, packing: Packing
) -> list[Row]:
    """The rows of one epoch in the given layout."""
    order = epoch_order(len(data), seed, epoch)
    if packing == "none":
        return [[Segment([int(i)])] for i in order]
    return pack_rows(data, order, row_len, share=packing == "share")


def collate(data: TokenizedExamples, rows: list[Row], pad_id: int) -> Batch:
    """Lay rows out as tensors, padded on the right to the longest row.

    Rows of single-example segments get restarting position ids (and, one segment per row, an
    ordinary padding mask); rows where a prompt is shared get the 4-D mask that lets each reply
    see only the prompt and itself.
    """
    shared = any(len(segment.examples) > 1 for row in rows for segment in row)
    padded = all(len(row) == 1 for row in rows) and not shared
    width = max(sum(segment.tokens(data) for segment in row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    positions = np.zeros((len(rows), width), dtype=np.int64)
    group = np.full((len(rows), width), -1, dtype=np.int64)  # segment number; -1: padding
    branch = np.zeros((len(rows), width), dtype=np.int64)  # 0: prompt, k: k-th reply
    loss_rows: list[int] = []
    loss_cols: list[int] = []
    targets: list[np.ndarray] = []
    tokens = computed = 0
    for r, row in enumerate(rows):
        at = 0
        for s, segment in enumerate(row):
            first_ids, prompt_len = data.example(segment.examples[0])
            input_ids[r, at : at + prompt_len] = first_ids[:prompt_len]
            positions[r, at : at + prompt_len] = np.arange(prompt_len)
            group[r, at : at + prompt_len] = s
            prompt_end = at + prompt_len
            at = prompt_end
            for k, index in enumerate(segment.examples, start=1):
                ids, own_prompt = data.example(index)
                reply = ids[own_prompt:]
                end = at + len(reply)
                input_ids[r, at:end] = reply
                positions[r, at:end] = np.arange(prompt_len, prompt_len + len(reply))
                group[r, at:end] = s
                branch[r, at:end] = k
                # Reply token j is predicted from reply token j-1, the first from the prompt's end.
                loss_cols += [prompt_end - 1, *range(at, end - 1)]
                loss_rows += [r] * len(reply)
                targets.append(reply)
                tokens += len(ids)
                at = end
        computed += at
        # The padding tail is a segment of its own: positions restart, so nothing attends to it.
        positions[r, at:] = np.arange(width - at)

    if shared:
        mask = _shared_prompt_mask(group, branch)
    elif padded:
        mask = torch.from_numpy(group >= 0).long()
    else:
        mask = None
    return Batch(
        torch.from_numpy(input_ids),
        torch.from_numpy(positions),
        mask,
        torch.tensor(loss_rows, dtype=torch.long),
        torch.tensor(loss_cols, dtype=torch.long),
        torch.from_numpy(np.concatenate(targets).astype(np.int64)),
        tokens,
        computed,
    )


def _shared_prompt_mask(group: np.ndarray, branch: np.ndarray) -> torch.Tensor:
    """``[rows, 1, L, L]``: query i sees key j if j ≤ i, same segment, and j is prompt or i's reply."""
    g, b = torch.from_numpy(group), torch.from_numpy(branch)
    length = g.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same_segment = g[:, :, None] == g[:, None, :]
    visible_branch = (b[:, None, :] == 0) | (b[:, :, None] == b[:, None, :])
    return (causal & same_segment & visible_branch).unsqueeze(1)


@dataclass
class DataPosition:
    """Where the stream stands: the next row to read in the given epoch."""

    epoch: int = 0
    row: int = 0


class RowStream:
    """An endless, resumable stream of rows over epochs."""

    def __init__(
        self,
        data: TokenizedExamples,
        *,
        seed: int,
        row_len: int,
        packing: Packing,
        position: DataPosition | None = None,
    ) -> None:
        self.data = data
        self.seed = seed
        self.row_len = row_len
        self.packing: Packing = packing
        self.position = position or DataPosition()
        self._rows = self._plan(self.position.epoch)

    def _plan(self, epoch: int) -> list[Row]:
        return epoch_rows(
            self.data, seed=self.seed, epoch=epoch, row_len=self.row_len, packing=self.packing
        )

    @property
    def rows_per_epoch(self) -> int:
        """Rows in the current epoch (every epoch has about as many)."""
        return len(self._rows)

    def seek(self, position: DataPosition) -> None:
        """Jump to ``position``: the epoch's rows are recomputed, none are replayed."""
        self.position = position
        self._rows = self._plan(position.epoch)

    def take(self, count: int) -> list[Row]:
        """The next ``count`` rows, moving into the next epoch when this one ends."""
        taken: list[Row] = []
        while len(taken) < count:
            if self.position.row >= len(self._rows):
                self.position = DataPosition(self.position.epoch + 1, 0)
                self._rows = self._plan(self.position.epoch)
            end = min(len(self._rows), self.position.row + count - len(taken))
            taken += self._rows[self.position.row : end]
            self.position = DataPosition(self.position.epoch, end)
        return taken
