"""The memory estimate of one fine-tuning setting, from the model's shape alone.

The estimate follows what ``train.py`` does and adds up, in bytes:

* ``weights``: the base model on the GPU. LoRA keeps it in bf16. QLoRA stores the decoder's
  linears as 4-bit NF4 (``quant_constants`` holds their block scales), but
  ``prepare_model_for_kbit_training`` turns everything it leaves unquantised (embeddings, an
  untied output head, norms) to fp32, which for a 131k-token vocabulary is most of the model;
* ``trainable``, ``gradients``, ``optimizer``: adapters are kept in fp32 as PEFT does, with fp32
  gradients and AdamW's two fp32 moments (16 bytes an adapter parameter). Full fine-tuning, for
  comparison, keeps fp32 master weights and gradients beside the bf16 weights it computes with;
* ``activations``: what autograd keeps for the backward pass, counted tensor by tensor for a
  Llama decoder layer (``layer_activation_bytes``); with gradient checkpointing only each
  layer's input is kept, plus one layer recomputed at a time;
* ``logits``: reply tokens x vocabulary, in fp32, several times over (``LOGIT_BYTES``): simpler
  estimators forget them, and Mi:dm's 131k-token vocabulary makes them large;
* ``dequantize``: QLoRA's full-precision copy of the largest 4-bit weight during backward.

What the card loses on top (CUDA context, allocator fragmentation) is added as a reserve before
comparing with its memory. ``--probe`` runs real training steps and prints the measured peak
beside the estimate, so the estimate can be checked rather than trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidInput
from app.recipes.known_configs import ModelShape
from app.recipes.train_config import Method

ALL_LINEARS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
GIB = 1024**3
# CUDA context, cuBLAS workspaces and kernels: memory the card loses before the first tensor.
CUDA_CONTEXT_BYTES = int(0.5 * GIB)
# PyTorch's caching allocator reserves more than it hands out; 10% is a typical steady state.
FRAGMENTATION = 0.10

BF16 = 2
FP32 = 4
# NF4 with double quantisation (bitsandbytes' QLoRA default): 4 bits a weight, one 8-bit absmax
# per 64-weight block, and one fp32 constant per 256 of those blocks.
NF4_BYTES_PER_PARAM = 0.5
NF4_CONSTANT_BYTES_PER_PARAM = 1 / 64 + FP32 / (64 * 256)
# AdamW's first and second moments, in fp32.
ADAM_BYTES_PER_PARAM = 2 * FP32
# Per reply token and vocabulary word at the loss: the fp32 log-probabilities kept for backward,
# the gradient flowing into them and the gradient they produce (the bf16 logits and their fp32
# upcast, alive during the forward pass, come to less).
LOGIT_BYTES = 3 * FP32

# Layer types whose config.json this module reads: Llama-style decoders (RMSNorm, rotary


@dataclass(frozen=True)
class PlanSettings:
    """The training shape the plan is made for; defaults are ``rag finetune train``'s."""

    seq_len: int = 512
    micro_batch: int = 4
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ALL_LINEARS
    lora_dropout: float = 0.05
    label_fraction: float = 0.6
    """Share of a row's tokens that carry loss (the trainer computes logits only for replies).
    On NSMC rows of 512 tokens it was 0.54 with shared prompts (the trainer's default layout),
    0.35 packed and 0.28 padded; 0.6 leaves headroom."""
    bf16: bool = True
    """Whether the GPU computes in bf16 (Ampere and newer); older GPUs train in fp32 here."""
    dropout_mask_bytes: int = 1
    """Bytes a dropout mask keeps per element: a bool on CUDA, a float (4) on CPU."""
    shards: int = 1
    """GPUs the base is split across with FSDP (``deploy/accelerate/fsdp.yaml``); 1: not split.
    The estimates are then per GPU. QLoRA's 4-bit base is never split."""

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise InvalidInput(f"sequence length must be at least 1, got {self.seq_len}")
        if self.micro_batch < 1:
            raise InvalidInput(f"micro-batch must be at least 1, got {self.micro_batch}")
        if self.lora_rank < 1:
            raise InvalidInput(f"LoRA rank must be at least 1, got {self.lora_rank}")
        if self.shards < 1:
            raise InvalidInput(
                f"the number of FSDP processes must be at least 1, got {self.shards}"
            )
        if not 0 <= self.lora_dropout < 1:
            raise InvalidInput(f"LoRA dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0 < self.label_fraction <= 1:
            raise InvalidInput(f"label fraction must be in (0, 1], got {self.label_fraction}")
        unknown = sorted(set(self.lora_targets) - set(ALL_LINEARS))
        if unknown or not self.lora_targets:
            raise InvalidInput(
                f"LoRA targets must be among {', '.join(ALL_LINEARS)}; got {', '.join(unknown) or 'none'}"
            )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training step needs, part by part."""

    method: Method
    gradient_checkpointing: bool
    micro_batch: int
    parts: dict[str, int]

    @property
    def allocated(self) -> int:
        """Peak bytes held by tensors (what ``torch.cuda.max_memory_allocated`` reports).

        The loss's logits and a recomputed layer are never alive together: the backward pass
        frees the logits before it reaches the first layer to recompute.
        """
        transient = max(self.parts.get("logits", 0), self.parts.get("recompute", 0))
        rest = sum(v for k, v in self.parts.items() if k not in ("logits", "recompute"))
        return rest + transient

    @property
    def required(self) -> int:
        """What the card must have: tensors, allocator slack and the CUDA context."""
        return int(self.allocated * (1 + FRAGMENTATION)) + CUDA_CONTEXT_BYTES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in GiB."""
        return {
            "method": self.method,
            "gradient_checkpointing": self.gradient_checkpointing,
            "micro_batch": self.micro_batch,
            "parts_gib": {name: gib(value) for name, value in self.parts.items()},
            "allocated_gib": gib(self.allocated),
            "required_gib": gib(self.required),
        }


def lora_params(shape: ModelShape, rank: int, targets: tuple[str, ...] = ALL_LINEARS) -> int:
    """Adapter parameters: ``rank x (in + out)`` for each targeted linear of every layer."""
    linears = shape.linear_shapes()
    return shape.num_layers * sum(rank * (linears[t][0] + linears[t][1]) for t in targets)


def estimate_memory(
    shape: ModelShape,
    method: Method,
    settings: PlanSettings,
    *,
    gradient_checkpointing: bool,
    micro_batch: int | None = None,
) -> MemoryEstimate:
    """Peak bytes of one optimizer step of ``method`` at ``micro_batch`` sequences of ``seq_len``."""
    batch = settings.micro_batch if micro_batch is None else micro_batch
    tokens = batch * settings.seq_len
    params = shape.parameter_count()
    quantizable = shape.num_layers * shape.layer_linear_params()
    compute = BF16 if settings.bf16 else FP32
    parts: dict[str, int] = {}

    if method == "full":
        trained = params
        parts["weights"] = compute * params
        # With bf16 compute the optimizer updates an fp32 master copy; in fp32 the weights are it.
        parts["trainable"] = FP32 * params if settings.bf16 else 0
    else:
        trained = lora_params(shape, settings.lora_rank, settings.lora_targets)
        if method == "qlora":
            parts["weights"] = int(NF4_BYTES_PER_PARAM * quantizable) + FP32 * (
                params - quantizable
            )
            parts["quant_constants"] = int(NF4_CONSTANT_BYTES_PER_PARAM * quantizable)
            largest = max(a * b for a, b in shape.linear_shapes().values())
            parts["dequantize"] = compute * largest
        else:
            parts["weights"] = compute * params
        parts["trainable"] = FP32 * trained
    parts["gradients"] = FP32 * trained
    parts["optimizer"] = ADAM_BYTES_PER_PARAM * trained
    if settings.shards > 1 and method != "qlora":
        _shard_parts(parts, shape, settings.shards, compute)

    stream = residual_bytes(method, settings)
    per_layer = layer_activation_bytes(shape, method, settings)
    if gradient_checkpointing:
        # Each layer's input is kept; one layer at a time is recomputed in full during backward,
        # with the gradients of its MLP and of the hidden states in flight.
        parts["activations"] = tokens * shape.num_layers * stream * shape.hidden_size
        in_flight = stream * (shape.intermediate_size + 2 * shape.hidden_size)
        parts["recompute"] = tokens * (per_layer + in_flight)
    else:
        parts["activations"] = tokens * shape.num_layers * per_layer
    reply_tokens = math.ceil(tokens * settings.label_fraction)
    parts["logits"] = reply_tokens * LOGIT_BYTES * shape.vocab_size
    return MemoryEstimate(method, gradient_checkpointing, batch, parts)


def _shard_parts(parts: dict[str, int], shape: ModelShape, shards: int, compute: int) -> None:
    """Per-GPU weights and training state when FSDP splits them ``shards`` ways (``sharding.py``).

    Every weight, the trainable copy, its gradient and AdamW's moments keep 1/N per GPU. On top,
    the root's weights (embeddings, final norm, output layer) stay gathered for the whole step,
    and two decoder layers are gathered at a time: the one computing and the next, prefetched.
    """
    layer = shape.layer_linear_params() + 2 * shape.hidden_size
    root = shape.parameter_count() - shape.num_layers * layer
    for name in ("weights", "trainable", "gradients", "optimizer"):
        parts[name] = math.ceil(parts[name] / shards)
    parts["gathered"] = compute * (root + 2 * layer)


def residual_bytes(method: Method, settings: PlanSettings) -> int:
    """Bytes per element of the hidden states between layers.

    QLoRA's fp32 embeddings and norms (from ``prepare_model_for_kbit_training``) make the whole
    residual stream fp32, whatever the compute dtype of the 4-bit matmuls.
    """
    return BF16 if settings.bf16 and method != "qlora" else FP32


def layer_activation_bytes(shape: ModelShape, method: Method, settings: PlanSettings) -> int:
    """Bytes autograd keeps per token for one decoder layer.

    Counted from the tensors PyTorch saves in a Hugging Face Llama layer: both RMSNorms keep an
    fp32 copy of their input (and an fp32 scale); fused attention keeps q, k, v, its output (which
    o_proj reads in place) and an fp32 log-sum-exp per head; the gated MLP keeps the gate, its
    SiLU and the up projection. Full fine-tuning also keeps every linear's input (for its weight
    gradient) and each norm's output (for its scale's gradient). A frozen base keeps neither, but
    each LoRA adapter works in fp32 on its input: with dropout it keeps the dropped-out fp32 copy
    and its mask; without, it keeps the fp32 input, a copy of its own unless the stream is fp32
    already (then adapters reading the same tensor share it).
    """
    h, q, kv, inter = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.intermediate_size
    stream = residual_bytes(method, settings)
    norms = 2 * (FP32 * h + FP32)
    attention = stream * (2 * q + 2 * kv) + FP32 * shape.num_heads
    mlp = stream * 3 * inter
    common = norms + attention + mlp
    if method == "full":
        norm_outputs = 2 * stream * h
        linear_inputs = stream * (2 * h + inter)
        return common + norm_outputs + linear_inputs

    linears = shape.linear_shapes()
    targets = settings.lora_targets
    adapter_ranks = len(targets) * FP32 * settings.lora_rank
    if settings.lora_dropout > 0:
        per_input = FP32 + settings.dropout_mask_bytes
        return common + adapter_ranks + sum(per_input * linears[t][0] for t in targets)
    if stream == BF16:
        return common + adapter_ranks + sum(FP32 * linears[t][0] for t in targets)
    # fp32 stream, no dropout: adapters keep the tensors they read. o_proj reads the attention
    # output, already counted; q/k/v share one norm output, gate/up the other.
    shared_inputs = {
        "attn": h if {"q_proj", "k_proj", "v_proj"} & set(targets) else 0,
        "mlp": h if {"gate_proj", "up_proj"} & set(targets) else 0,
        "down": inter if "down_proj" in targets else 0,
    }
    return common + adapter_ranks + FP32 * sum(shared_inputs.values())


def max_micro_batch(
    shape: ModelShape,
    method: Method,
    settings: PlanSettings,
    gpu_bytes: int,
    *,
    gradient_checkpointing: bool,
    limit: int = 4096,
) -> int:
    """The largest micro-batch whose estimate fits in ``gpu_bytes`` (0 when not even one does)."""

    def required(batch: int) -> int:
        return estimate_memory(
            shape,
            method,
            settings,
            gradient_checkpointing=gradient_checkpointing,
            micro_batch=batch,
        ).required

    one, two = required(1), required(2)
    if one > gpu_bytes:
        return 0
    per_sequence = max(two - one, 1)
    # Memory grows linearly in the batch; the check below absorbs rounding in the division.
    batch = min(limit, 1 + (gpu_bytes - one) // per_sequence)
    while batch > 1 and required(batch) > gpu_bytes:
        batch -= 1
    return batch


def gib(value: int | float) -> float:
    """Bytes as GiB, rounded for reports."""
    return round(value / GIB, 2)
