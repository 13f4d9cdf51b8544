"""Checkpoints: atomic writes, retention split by kind, exact restore of weights, optimizer and RNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

from app.core.errors import Conflict
from app.finetune.checkpoint import (
    adapter_state,
    checkpoint_dirs,
    latest_resumable,
    load_adapter,
    load_training_state,
    optimizer_state,
    save_checkpoint,
)
from app.hf.peft_compat import peft_deprecations_silenced


@pytest.fixture
def parts(tiny_model_dir: Path):
    torch.manual_seed(0)
    with peft_deprecations_silenced():
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 2, 20)
    ids = torch.arange(3, 40).unsqueeze(0)
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def save(output: Path, step: int, parts, **keep: int) -> Path:
    model, optimizer, scheduler = parts
    return save_checkpoint(
        output,
        model=model,
        adapter=adapter_state(model),
        optimizer=optimizer_state(model, optimizer),
        scheduler=scheduler,
        state={"step": step, "position": {"epoch": 0, "row": step}},
        keep_adapters=keep.get("adapters", 3),
        keep_optimizer=keep.get("optimizer", 1),
    )


def test_retention_keeps_adapters_longer_than_optimizer_state(tmp_path: Path, parts) -> None:
    for step in (10, 20, 30, 40):
        save(tmp_path, step, parts, adapters=3, optimizer=2)
    names = [p.name for p in checkpoint_dirs(tmp_path)]
    assert names == ["step-000020", "step-000030", "step-000040"]
    with_optimizer = [n for n in names if (tmp_path / "checkpoints" / n / "optimizer.pt").exists()]
    assert with_optimizer == ["step-000030", "step-000040"]
    assert all((tmp_path / "checkpoints" / n / "adapter_model.safetensors").exists() for n in names)
    assert latest_resumable(tmp_path) == tmp_path / "checkpoints" / "step-000040"


def test_a_failed_save_leaves_the_last_good_checkpoint(tmp_path: Path, parts) -> None:
    good = save(tmp_path, 10, parts)
    model, optimizer, _ = parts
    with pytest.raises(AttributeError):
        # Dies half-way: adapter and optimizer are written, the scheduler is not.
        save_checkpoint(
            tmp_path,
            model=model,
            adapter=adapter_state(model),
            optimizer=optimizer_state(model, optimizer),
            scheduler=None,
            state={"step": 20},
            keep_adapters=3,
            keep_optimizer=1,
        )
    assert checkpoint_dirs(tmp_path) == [good]
    assert latest_resumable(tmp_path) == good
    assert (tmp_path / "checkpoints" / ".partial-step-000020").exists()
    # The next save of that step clears the leftover and completes.
    assert save(tmp_path, 20, parts).name == "step-000020"
    assert not (tmp_path / "checkpoints" / ".partial-step-000020").exists()


def test_load_restores_weights_optimizer_scheduler_and_rng(tmp_path: Path, parts) -> None:
    model, optimizer, scheduler = parts
    path = save(tmp_path, 10, parts)
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    moments = {
        i: {k: v.clone() for k, v in state.items()}
        for i, state in optimizer.state_dict()["state"].items()
    }
    lr = scheduler.get_last_lr()
    expected_draw = torch.rand(3)

    for p in model.parameters():
        if p.requires_grad:
            p.data.add_(1.0)
    scheduler.step()
    torch.rand(5)
    # A fresh optimizer, as a resumed process builds it: no state until the checkpoint's.
    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scheduler = get_cosine_schedule_with_warmup(fresh, 2, 20)

    load_adapter(path, model)
    state = load_training_state(path, model=model, optimizer=fresh, scheduler=scheduler)
    assert state["step"] == 10 and state["position"] == {"epoch": 0, "row": 10}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, weights[name]), name
    assert scheduler.get_last_lr() == lr
    restored = fresh.state_dict()["state"]
    assert restored.keys() == moments.keys()
    for i, values in moments.items():
        for key, value in values.items():
            assert torch.equal(restored[i][key], value), (i, key)
    assert torch.equal(torch.rand(3), expected_draw)


def test_optimizer_state_of_other_parameters_is_refused(tmp_path: Path, parts) -> None:
    model, _, scheduler = parts
    path = save(tmp_path, 10, parts)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # An adapter on fewer modules than the checkpoint's: the states cannot be matched up.
    other = torch.optim.AdamW(trainable[:-2], lr=1e-2)
    with pytest.raises(Conflict, match="other parameters"):
        load_training_state(path, model=model, optimizer=other, scheduler=scheduler)
