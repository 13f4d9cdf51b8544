"""Packing: full rows, shared prompts, resumable positions, and the same loss as padded batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.finetune.examples import TokenizedExamples, tokenize_reviews
from app.finetune.model import ReplyLoss, token_loss_sum
from app.finetune.packing import (
    Batch,
    DataPosition,
    RowStream,
    Segment,
    collate,
    epoch_rows,
    pack_rows,
)
from app.hf.chat_template import chat_template_for
from app.recipes.data import DataOptions, load_reviews


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


def row_tokens(data: TokenizedExamples, row: list[Segment]) -> int:
    return sum(segment.tokens(data) for segment in row)


@pytest.mark.parametrize("packing", ["pack", "share", "none"])
def test_rows_hold_every_example_once(examples: TokenizedExamples, packing: str) -> None:
    rows = epoch_rows(examples, seed=3, epoch=0, row_len=512, packing=packing)  # type: ignore[arg-type]
    flat = [i for row in rows for segment in row for i in segment.examples]
    assert sorted(flat) == list(range(len(examples)))
    assert max(row_tokens(examples, row) for row in rows) <= 512
    for row in rows:
        for segment in row:
            assert len({int(examples.prompt_keys[i]) for i in segment.examples}) == 1
    same = epoch_rows(examples, seed=3, epoch=0, row_len=512, packing=packing)  # type: ignore[arg-type]
    assert [[s.examples for s in row] for row in rows] == [
        [s.examples for s in row] for row in same
    ]


def test_packed_rows_are_nearly_full_and_shared_rows_hold_far_fewer_tokens(
    examples: TokenizedExamples,
) -> None:
    packed = epoch_rows(examples, seed=0, epoch=0, row_len=512, packing="pack")
    shared = epoch_rows(examples, seed=0, epoch=0, row_len=512, packing="share")
    total = int(examples.lengths.sum())
    assert total / (512 * len(packed)) > 0.9
    assert sum(row_tokens(examples, row) for row in shared) < 0.6 * total
    assert all(len(segment.examples) == 1 for row in packed for segment in row)


def test_pack_rows_rejects_an_example_longer_than_a_row(examples: TokenizedExamples) -> None:
    longest = int(np.argmax(examples.lengths))
    with pytest.raises(ValueError, match="more than the row"):
        pack_rows(examples, np.array([longest]), int(examples.lengths[longest]) - 1, share=True)


def test_seek_lands_where_continuous_reading_would(examples: TokenizedExamples) -> None:
    continuous = RowStream(examples, seed=1, row_len=256, packing="share")
    first = continuous.take(7)
    continuous.take(continuous.rows_per_epoch - 7 - 3)
    saved = DataPosition(continuous.position.epoch, continuous.position.row)
    expected = continuous.take(10)  # crosses into epoch 1

    resumed = RowStream(examples, seed=1, row_len=256, packing="share")
    resumed.seek(saved)
    assert resumed.take(10) == expected
    assert first == RowStream(examples, seed=1, row_len=256, packing="share").take(7)


def test_shared_prompt_layout(examples: TokenizedExamples) -> None:
    key = int(examples.prompt_keys[0])
    a, b = (int(i) for i in np.flatnonzero(examples.prompt_keys == key)[:2])
    batch = collate(examples, [[Segment([a, b])]], pad_id=2)
    (ids_a, prompt), (ids_b, _) = examples.example(a), examples.example(b)
    reply_a, reply_b = ids_a[prompt:], ids_b[prompt:]
    start_b = prompt + len(reply_a)
    assert batch.input_ids[0].tolist() == [*ids_a[:prompt], *reply_a, *reply_b]
    assert batch.position_ids[0, start_b].item() == prompt
    assert batch.tokens == len(ids_a) + len(ids_b)
    assert batch.computed_tokens == prompt + len(reply_a) + len(reply_b)
    # The first token of each reply is predicted from the end of the prompt.
    assert batch.loss_cols[0].item() == batch.loss_cols[len(reply_a)].item() == prompt - 1
    assert batch.loss_targets.tolist() == [*reply_a, *reply_b]
    mask = batch.attention_mask
    assert mask is not None and mask.shape == (1, 1, start_b + len(reply_b), start_b + len(reply_b))
    assert mask[0, 0, start_b, :prompt].all()  # reply b sees the prompt,
    assert not mask[0, 0, start_b, prompt:start_b].any()  # not reply a,
    assert mask[0, 0, start_b, start_b]  # and itself.


def loss_and_grads(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss = token_loss_sum(model, batch) / batch.label_tokens
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_and_shared_losses_and_gradients_equal_padded_ones(
    examples: TokenizedExamples, tiny_model_dir: Path, attention: str
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    model.eval()  # no dropout: the layouts must agree exactly
    key = int(examples.prompt_keys[0])
    chosen = [*np.flatnonzero(examples.prompt_keys == key)[:5], *range(1, 9)]
    order = np.array(sorted(set(int(i) for i in chosen)))
    padded = collate(examples, [[Segment([int(i)])] for i in order], pad_id=2)
    packed = collate(examples, pack_rows(examples, order, 512, share=False), pad_id=2)
    shared_rows = pack_rows(examples, order, 512, share=True)
    shared = collate(examples, shared_rows, pad_id=2)
    assert any(len(segment.examples) >= 3 for row in shared_rows for segment in row)
    assert packed.attention_mask is None and shared.attention_mask is not None
    assert padded.tokens == packed.tokens == shared.tokens
    assert shared.computed_tokens < packed.computed_tokens == packed.tokens

    expected_loss, expected_grads = loss_and_grads(model, padded)
    for batch in (packed, shared):
        loss, grads = loss_and_grads(model, batch)
        torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_reply_only_loss_equals_the_models_own_loss(
    examples: TokenizedExamples, tiny_model_dir: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = collate(examples, pack_rows(examples, np.arange(12), 512, share=False), pad_id=2)
    with torch.no_grad():
        ours = token_loss_sum(model, batch) / batch.label_tokens
        own = model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            labels=batch.labels(),
            use_cache=False,
        ).loss
    torch.testing.assert_close(ours, own, rtol=1e-5, atol=1e-6)
    again = Batch.from_labels(batch.input_ids, batch.labels(), batch.position_ids)
    assert torch.equal(again.loss_cols, batch.loss_cols)
    assert torch.equal(again.loss_targets, batch.loss_targets)


def test_reply_loss_is_a_sum_over_reply_tokens_with_either_loss(
    examples: TokenizedExamples, tiny_model_dir: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = collate(examples, pack_rows(examples, np.arange(12), 512, share=False), pad_id=2)
    loss = ReplyLoss(model)
    with torch.no_grad():
        ours, own = loss(batch), loss(batch, model_loss=True)
    assert batch.label_tokens > 1
    torch.testing.assert_close(ours, token_loss_sum(model, batch))
    torch.testing.assert_close(own, ours, rtol=1e-5, atol=1e-4)
