"""QLoRA gradients stay right on CPUs whose bitsandbytes repacks 4-bit weights for inference.

On a CPU with AVX-512 BF16, a ``Linear4bit`` that runs once in eval mode without gradients is
repacked for good into a layout whose matmul has no backward. These tests force that path on
whatever CPU runs them, the way such a CPU takes it, and check the trainer's gradients against a
reference computed through the dequantized weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from app.finetune.model import token_loss_sum
from app.finetune.packing import collate
from app.finetune.train import setup
from app.hf.quantization import packed_4bit_layers, set_4bit_layout
from app.recipes.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def packing_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``Linear4bit`` built from now on repacks itself for inference as it would on a CPU
    with AVX-512 BF16."""
    import bitsandbytes.nn.modules

    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: True)


def nf4_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as the 4-bit base holds it: NF4 with double quantisation, dequantized."""
    from bitsandbytes.functional import dequantize_4bit, quantize_4bit

    packed, state = quantize_4bit(weight, quant_type="nf4", compress_statistics=True)
    return dequantize_4bit(packed, state)


def lora_grads(model: Any) -> dict[str, torch.Tensor]:
    return {
        name: param.grad.detach().clone()
        for name, param in model.named_parameters()
        if param.requires_grad and param.grad is not None
    }


def test_qlora_gradients_equal_the_dequantized_reference_with_packing_forced(
    packing_forced: None, tmp_path: Path, tiny_model_dir: Path, rating_sentences_file: Path
) -> None:
    from bitsandbytes.nn import Linear4bit

    config = TrainConfig(
        data=str(rating_sentences_file),
        output=str(tmp_path / "run"),
        model=str(tiny_model_dir),
        method="qlora",
        micro_batch_size=2,
        grad_accum=1,
        max_steps=1,
        lora_dropout=0.0,
        gradient_checkpointing=False,
        progress=False,
    )
    # ``setup`` runs the model once in eval mode without gradients (its loss check).
    run = setup(config)
    model = run.model
    layers = {n: m for n, m in model.named_modules() if isinstance(m, Linear4bit)}
    assert layers and packed_4bit_layers(model) == []

    rows = run.stream.take(config.micro_batch_size)
    pad_id = run.tokenizer.pad_token_id
    batch = collate(run.data.examples, rows, pad_id if pad_id is not None else 0)
    model.train()
    token_loss_sum(model, batch).backward()
    trained = lora_grads(model)
    assert trained
    model.zero_grad(set_to_none=True)

    # The reference: the same adapter over plain matmuls with the NF4-rounded source weights.
    source = load_file(str(tiny_model_dir / "model.safetensors"))
    for name, layer in layers.items():
        key = name.removeprefix("base_model.model.").removesuffix(".base_layer") + ".weight"
        weight = nf4_round_trip(source[key])
        layer.forward = lambda x, weight=weight, bias=layer.bias: F.linear(x, weight, bias)
    token_loss_sum(model, batch).backward()
    reference = lora_grads(model)

    assert trained.keys() == reference.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(trained[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_a_packed_layer_is_restored_for_training(packing_forced: None) -> None:
    from bitsandbytes.nn import Linear4bit

    torch.manual_seed(0)
    layer = Linear4bit(64, 64, bias=False, compute_dtype=torch.float32)
    layer.weight.data = layer.weight.data.normal_()
    layer = layer.to("cpu")
    x = torch.randn(3, 64)
    with torch.no_grad():
        before = layer(x.requires_grad_(True))
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(3, 64))
    assert packed_4bit_layers(layer) == [""]

    assert set_4bit_layout(layer, "training") == 1
    assert packed_4bit_layers(layer) == []
    assert not layer.support_avx512bf16_for_cpu
    layer.train()
    after = layer(x)
    # The restored scales went through bf16 while packed: equal up to that rounding.
    torch.testing.assert_close(after, before, rtol=2e-2, atol=2e-2)

    layer.eval()
    with torch.no_grad():
        layer(torch.randn(3, 64))
    assert packed_4bit_layers(layer) == []
