"""Batches without wasted padding: several examples share one sequence, and never see each other.

Reviews average ~35 characters, so a padded batch is mostly padding. Packing puts whole examples
side by side in rows of ``row_len`` tokens; each example's position ids restart at 0. Given
position ids and no 2-D attention mask, transformers builds a block-diagonal causal mask from the
restarts (and FlashAttention-2 uses them as variable-length boundaries), so no token attends to
another example. Labels are -100 outside the assistant's reply, which also covers each example's
first token, so no loss term ever crosses from one example into the next.

The data stream is a deterministic function of (seed, epoch): an epoch's order and rows are
recomputed from scratch, so resuming jumps to a saved (epoch, row) position directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.finetune.examples import TokenizedExamples

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Batch:
    """Model inputs for one micro-batch, and its token counts."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    tokens: int
    """Real (non-padding) tokens."""
    label_tokens: int
    """Tokens that carry loss."""

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return Batch(
            self.input_ids.to(device),
            self.labels.to(device),
            self.position_ids.to(device),
            mask,
            self.tokens,
            self.label_tokens,
        )


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of ``n`` examples in ``epoch``: the same for the same seed, always."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def pack_rows(
    lengths: np.ndarray, order: np.ndarray, row_len: int, open_rows: int = 16
) -> list[list[int]]:
    """Group example indices into rows of at most ``row_len`` tokens (first fit over a few open rows).

    Keeping a handful of rows open lets short examples fill the gaps long ones leave, which brings
    rows close to full while keeping the order roughly that of ``order``.
    """
    rows: list[list[int]] = []
    members: list[list[int]] = []
    free: list[int] = []
    for index in order.tolist():
        length = int(lengths[index])
        if length > row_len:
            raise ValueError(f"example {index} has {length} tokens, more than the row ({row_len})")
        for slot, space in enumerate(free):
            if space >= length:
                members[slot].append(index)
                free[slot] -= length
                break
        else:
            if len(members) == open_rows:
                rows.append(members.pop(0))
                free.pop(0)
            members.append([index])
            free.append(row_len - length)
    rows += members
    return rows


def epoch_rows(
    examples: TokenizedExamples, *, seed: int, epoch: int, row_len: int, packing: bool
) -> list[list[int]]:
    """The rows of one epoch: packed groups, or one example per row without packing."""
    order = epoch_order(len(examples), seed, epoch)
    if not packing:
        return [[int(i)] for i in order]
    return pack_rows(examples.lengths, order, row_len)


def collate(
    examples: TokenizedExamples, rows: list[list[int]], pad_id: int, *, packed: bool
) -> Batch:
    """Stack rows into tensors, padding on the right to the longest row.

    Packed rows carry restarting position ids and no attention mask; unpacked rows (one example
    each) carry an ordinary padding mask.
    """
    width = max(sum(int(examples.lengths[i]) for i in row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
    positions = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    tokens = label_tokens = 0
    for r, row in enumerate(rows):
        start = 0
        for index in row:
            ids, prompt_len = examples.example(index)
            end = start + len(ids)
            input_ids[r, start:end] = ids
            labels[r, start + prompt_len : end] = ids[prompt_len:]
            positions[r, start:end] = np.arange(len(ids))
            mask[r, start:end] = 1
            label_tokens += len(ids) - prompt_len
            start = end
        tokens += start
        # The padding tail is a segment of its own: positions restart, so nothing attends to it.
        positions[r, start:] = np.arange(width - start)
    if not packed and any(len(row) > 1 for row in rows):
        raise ValueError("unpacked batches hold one example per row")
    return Batch(
        torch.from_numpy(input_ids),
        torch.from_numpy(labels),
        torch.from_numpy(positions),
        None if packed else torch.from_numpy(mask),
        tokens,
        label_tokens,
    )


@dataclass
class DataPosition:
    """Where the stream stands: the next row to read in the given epoch."""

    epoch: int = 0
    row: int = 0


class RowStream:
    """An endless, resumable stream of rows over epochs."""

    def __init__(
        self,
        examples: TokenizedExamples,
        *,
        seed: int,
        row_len: int,
        packing: bool,
        position: DataPosition | None = None,
    ) -> None:
        self.examples = examples
        self.seed = seed
        self.row_len = row_len
        self.packing = packing
        self.position = position or DataPosition()
        self._rows = self._plan(self.position.epoch)

    def _plan(self, epoch: int) -> list[list[int]]:
        return epoch_rows(
            self.examples, seed=self.seed, epoch=epoch, row_len=self.row_len, packing=self.packing
        )

    @property
    def rows_per_epoch(self) -> int:
        """Rows in the current epoch (every epoch has about as many)."""
        return len(self._rows)

    def seek(self, position: DataPosition) -> None:
        """Jump to ``position``: the epoch's rows are recomputed, none are replayed."""
        self.position = position
        self._rows = self._plan(position.epoch)

    def take(self, count: int) -> list[list[int]]:
        """The next ``count`` rows, moving into the next epoch when this one ends."""
        taken: list[list[int]] = []
        while len(taken) < count:
            if self.position.row >= len(self._rows):
                self.position = DataPosition(self.position.epoch + 1, 0)
                self._rows = self._plan(self.position.epoch)
            end = min(len(self._rows), self.position.row + count - len(taken))
            taken += self._rows[self.position.row : end]
            self.position = DataPosition(self.position.epoch, end)
        return taken
