"""Packing: rows are full and deterministic, resuming jumps to a position, loss equals padded loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.finetune.data import DataOptions, load_reviews
from app.finetune.examples import TokenizedExamples, tokenize_reviews
from app.finetune.packing import DataPosition, RowStream, collate, epoch_rows, pack_rows
from app.finetune.prompts import chat_template_for
from app.finetune.train import token_loss_sum


@pytest.fixture(scope="module")
def examples(tiny_model_dir: Path, nsmc_sample: Path) -> TokenizedExamples:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reviews, report = load_reviews(nsmc_sample, DataOptions())
    return tokenize_reviews(
        reviews,
        tokenizer,
        rating_scale=report.rating_scale,
        chat_template=chat_template_for(tokenizer),
        max_seq_len=256,
    )


def test_rows_hold_every_example_once_and_are_nearly_full(examples: TokenizedExamples) -> None:
    rows = epoch_rows(examples, seed=3, epoch=0, row_len=512, packing=True)
    flat = [i for row in rows for i in row]
    assert sorted(flat) == list(range(len(examples)))
    sizes = [int(examples.lengths[row].sum()) for row in rows]
    assert max(sizes) <= 512
    assert sum(sizes) / (512 * len(rows)) > 0.9
    assert rows == epoch_rows(examples, seed=3, epoch=0, row_len=512, packing=True)
    assert rows != epoch_rows(examples, seed=3, epoch=1, row_len=512, packing=True)


def test_pack_rows_rejects_an_example_longer_than_a_row() -> None:
    with pytest.raises(ValueError, match="more than the row"):
        pack_rows(np.array([10, 70]), np.array([0, 1]), row_len=64)


def test_seek_lands_where_continuous_reading_would(examples: TokenizedExamples) -> None:
    continuous = RowStream(examples, seed=1, row_len=256, packing=True)
    first = continuous.take(7)
    per_epoch = continuous.rows_per_epoch
    continuous.take(per_epoch - 7 - 3)
    saved = DataPosition(continuous.position.epoch, continuous.position.row)
    expected = continuous.take(10)  # crosses into epoch 1

    resumed = RowStream(examples, seed=1, row_len=256, packing=True)
    resumed.seek(saved)
    assert resumed.take(10) == expected
    assert first == RowStream(examples, seed=1, row_len=256, packing=True).take(7)


def test_packed_loss_equals_padded_loss(examples: TokenizedExamples, tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    chosen = list(range(12))
    packed_rows = pack_rows(examples.lengths, np.array(chosen), row_len=512)
    assert any(len(row) > 2 for row in packed_rows), "rows must actually share examples"
    packed = collate(examples, packed_rows, pad_id=2, packed=True)
    padded = collate(examples, [[i] for i in chosen], pad_id=2, packed=False)
    assert packed.label_tokens == padded.label_tokens
    assert packed.input_ids.numel() < padded.input_ids.numel()
    with torch.no_grad():
        packed_loss = token_loss_sum(model, packed) / packed.label_tokens
        padded_loss = token_loss_sum(model, padded) / padded.label_tokens
        # The model's own forward (full logits) agrees on the packed batch too.
        own = model(
            input_ids=packed.input_ids,
            position_ids=packed.position_ids,
            labels=packed.labels,
            use_cache=False,
        ).loss
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(packed_loss, own, rtol=1e-5, atol=1e-6)


def test_collate_marks_labels_and_restarts_positions(examples: TokenizedExamples) -> None:
    batch = collate(examples, [[0, 1]], pad_id=2, packed=True)
    first, second = (examples.example(i) for i in (0, 1))
    n0 = len(first[0])
    assert batch.position_ids[0, n0].item() == 0
    assert batch.position_ids[0, n0 - 1].item() == n0 - 1
    assert (batch.labels[0, : first[1]] == -100).all()
    assert torch.equal(
        batch.labels[0, first[1] : n0], torch.from_numpy(first[0][first[1] :]).long()
    )
    assert batch.tokens == n0 + len(second[0])
    assert batch.attention_mask is None
