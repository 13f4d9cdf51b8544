"""Checkpoints: atomic writes, retention split by kind, exact restore of weights and RNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

from app.finetune.checkpoint import (
    checkpoint_dirs,
    latest_resumable,
    load_checkpoint,
    save_checkpoint,
)
from app.finetune.peft_compat import peft_deprecations_silenced


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
        optimizer=optimizer,
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
            optimizer=optimizer,
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
    lr = scheduler.get_last_lr()
    expected_draw = torch.rand(3)

    for p in model.parameters():
        if p.requires_grad:
            p.data.add_(1.0)
    scheduler.step()
    torch.rand(5)

    state = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
    assert state["step"] == 10 and state["position"] == {"epoch": 0, "row": 10}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, weights[name]), name
    assert scheduler.get_last_lr() == lr
    assert optimizer.state_dict()["state"]
    assert torch.equal(torch.rand(3), expected_draw)
