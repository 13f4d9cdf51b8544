"""The memory layout of bitsandbytes 4-bit layers, chosen by what the model is for.

On CPUs with AVX-512 BF16, bitsandbytes repacks a ``Linear4bit`` weight for good into a faster
inference layout the first time the layer runs in eval mode on an input that needs no gradient.
From then on every matmul of that layer goes through ``gemv_4bit``, which has no backward: a model
that is evaluated once (a loss check, a probe, a perplexity pass) and then trained would
backpropagate through a kernel without autograd and get wrong gradients. So a model loaded for
training is pinned to the trainable layout, and only a model loaded for inference may repack.
"""

from __future__ import annotations

from typing import Any, Literal

Purpose = Literal["training", "inference"]


def set_4bit_layout(model: Any, purpose: Purpose) -> int:
    """Allow the packed CPU inference layout only for ``"inference"``; for ``"training"``, turn
    it off and restore any layer already packed. Returns how many 4-bit layers there are."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    from bitsandbytes.functional import has_avx512bf16 as cpu_can_pack

    layers = _linear_4bit_layers(model)
    for layer in layers:
        layer.support_avx512bf16_for_cpu = purpose == "inference" and cpu_can_pack()
        weight = layer.weight
        if purpose == "training" and _is_packed(weight):
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                weight.data, weight.quant_state
            )
    return len(layers)


def packed_4bit_layers(model: Any) -> list[str]:
    """Names of the 4-bit layers held in the packed inference layout (no backward)."""
    from bitsandbytes.nn import Linear4bit

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, Linear4bit) and _is_packed(module.weight)
    ]


def _linear_4bit_layers(model: Any) -> list[Any]:
    from bitsandbytes.nn import Linear4bit

    return [module for module in model.modules() if isinstance(module, Linear4bit)]


def _is_packed(weight: Any) -> bool:
    return bool(getattr(getattr(weight, "quant_state", None), "packing_format_for_cpu", False))
