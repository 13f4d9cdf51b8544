"""Memory planning for fine-tuning: what fits on which GPU, from the model's config alone.

The estimate follows what ``train.py`` does and adds up, in bytes:

* ``weights``: the base model on the GPU. LoRA keeps it in bf16. QLoRA stores the decoder's
  linears as 4-bit NF4 (``quant_constants`` holds their block scales), but
  ``prepare_model_for_kbit_training`` turns everything it leaves unquantised (embeddings, an
  untied output head, norms) to fp32, which for a 131k-token vocabulary is most of the model;
* ``trainable``, ``gradients``, ``optimizer``: adapters are kept in fp32 as PEFT does, with fp32
  gradients and AdamW's two fp32 moments (16 bytes an adapter parameter). Full fine-tuning, for
  comparison, keeps fp32 master weights and gradients beside the bf16 weights it computes with;
* ``activations``: what autograd keeps for the backward pass, counted tensor by tensor for a
  Llama decoder layer (``_layer_activation_bytes``); with gradient checkpointing only each
  layer's input is kept, plus one layer recomputed at a time;
* ``logits``: reply tokens x vocabulary, in fp32, several times over (``LOGIT_BYTES``): simpler
  estimators forget them, and Mi:dm's 131k-token vocabulary makes them large;
* ``dequantize``: QLoRA's full-precision copy of the largest 4-bit weight during backward.

What the card loses on top (CUDA context, allocator fragmentation) is added as a reserve before
comparing with its memory. ``--probe`` runs real training steps and prints the measured peak
beside the estimate, so the estimate can be checked rather than trusted.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from app.core.errors import InvalidInput, NotFound, Unsupported
from app.finetune.known_configs import KNOWN_SHAPES, ModelShape, find_known_shape

Method = Literal["full", "lora", "qlora"]
METHODS: tuple[Method, ...] = ("full", "lora", "qlora")
ALL_LINEARS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
DEFAULT_MODEL = "K-intelligence/Midm-2.0-Mini-Instruct"

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
# attention with grouped KV heads, a gated MLP of three matrices).
_DECODER_TYPES = {"llama", "mistral", "qwen2", "exaone"}
# Models whose q/k/v projections carry a bias although their config does not say so.
_QKV_BIAS_TYPES = {"qwen2"}


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
            "parts_gib": {name: _gib(value) for name, value in self.parts.items()},
            "allocated_gib": _gib(self.allocated),
            "required_gib": _gib(self.required),
        }


@dataclass(frozen=True)
class MethodPlan:
    """One method at the requested micro-batch, with and without checkpointing."""

    method: Method
    trainable_params: int
    without_checkpointing: MemoryEstimate
    with_checkpointing: MemoryEstimate
    max_micro_batch_without_checkpointing: int
    max_micro_batch_with_checkpointing: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "method": self.method,
            "trainable_params": self.trainable_params,
            "without_checkpointing": self.without_checkpointing.to_dict(),
            "with_checkpointing": self.with_checkpointing.to_dict(),
            "max_micro_batch_without_checkpointing": self.max_micro_batch_without_checkpointing,
            "max_micro_batch_with_checkpointing": self.max_micro_batch_with_checkpointing,
        }


@dataclass(frozen=True)
class Recommendation:
    """The setting to train with on this GPU."""

    method: Method
    gradient_checkpointing: bool
    micro_batch: int
    gradient_accumulation: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """Everything ``rag finetune plan`` reports."""

    model: str
    source: str
    shape: ModelShape
    gpu_mem_gb: float
    settings: PlanSettings
    methods: dict[str, MethodPlan]
    recommendation: Recommendation | None
    notes: list[str] = field(default_factory=list)

    @property
    def parameter_count(self) -> int:
        """Parameters of the base model."""
        return self.shape.parameter_count()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "model": self.model,
            "source": self.source,
            "parameter_count": self.parameter_count,
            "shape": asdict(self.shape),
            "gpu_mem_gb": self.gpu_mem_gb,
            "settings": asdict(self.settings),
            "methods": {name: plan.to_dict() for name, plan in self.methods.items()},
            "recommendation": asdict(self.recommendation) if self.recommendation else None,
            "notes": self.notes,
            "assumptions": {
                "cuda_context_gib": _gib(CUDA_CONTEXT_BYTES),
                "allocator_fragmentation": FRAGMENTATION,
                "compute_dtype": "bfloat16",
                "optimizer": "AdamW (fp32 moments)",
                "attention": "fused SDPA (no seq x seq matrix kept)",
            },
        }


# --------------------------------------------------------------------------- model shapes


def resolve_shape(model: str) -> tuple[ModelShape, str]:
    """The shape of ``model`` (a local directory, a known hub id or a cached one) and where it came from."""
    path = Path(model).expanduser()
    if path.exists():
        config = path / "config.json" if path.is_dir() else path
        if not config.is_file():
            raise NotFound(f"{path} has no config.json")
        return shape_from_config(_read_json(config), name=model), f"config.json in {path}"
    known = find_known_shape(model)
    if known is not None:
        return known, "known-config table"
    cached = _cached_config(model)
    if cached is not None:
        return shape_from_config(_read_json(cached), name=model), f"Hugging Face cache ({cached})"
    names = ", ".join(shape.name for shape in KNOWN_SHAPES)
    raise NotFound(
        f"no config for {model!r}: not a local directory, not in the known-config table ({names}) "
        "and not in the Hugging Face cache; download the model or pass its directory"
    )


def shape_from_config(config: dict[str, Any], *, name: str) -> ModelShape:
    """Read a Llama-family ``config.json`` into a shape (raises Unsupported for other families)."""
    model_type = str(config.get("model_type", ""))
    if model_type not in _DECODER_TYPES:
        raise Unsupported(
            f"planning reads Llama-style decoders ({', '.join(sorted(_DECODER_TYPES))}); "
            f"{name} is {model_type or 'of unknown type'}"
        )
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        layers = int(config.get("num_hidden_layers") or config["num_layers"])
        shape = ModelShape(
            name=name,
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            # Untied is the larger case, so a config that does not say is planned conservatively.
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", model_type in _QKV_BIAS_TYPES)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"config of {name} lacks a usable field: {exc}") from exc
    return shape


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not a JSON object")
    # Multimodal checkpoints nest the language model's config.
    text = data.get("text_config")
    return text if isinstance(text, dict) and "model_type" in text else data


def _cached_config(model_id: str) -> Path | None:
    if model_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model_id, "config.json")
    return Path(found) if isinstance(found, str) else None


# --------------------------------------------------------------------------- the estimate


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
    per_layer = _layer_activation_bytes(shape, method, settings)
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


def _layer_activation_bytes(shape: ModelShape, method: Method, settings: PlanSettings) -> int:
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


def make_plan(model: str, gpu_mem_gb: float, settings: PlanSettings | None = None) -> Plan:
    """Estimate every method for ``model`` on a GPU with ``gpu_mem_gb`` GiB and recommend one."""
    if not gpu_mem_gb > 0:
        raise InvalidInput(f"GPU memory must be positive, got {gpu_mem_gb}")
    settings = settings or PlanSettings()
    shape, source = resolve_shape(model)
    gpu_bytes = int(gpu_mem_gb * GIB)
    methods: dict[str, MethodPlan] = {}
    for method in METHODS:
        estimates = {
            ckpt: estimate_memory(shape, method, settings, gradient_checkpointing=ckpt)
            for ckpt in (False, True)
        }
        fits = {
            ckpt: max_micro_batch(shape, method, settings, gpu_bytes, gradient_checkpointing=ckpt)
            for ckpt in (False, True)
        }
        trained = (
            shape.parameter_count()
            if method == "full"
            else lora_params(shape, settings.lora_rank, settings.lora_targets)
        )
        methods[method] = MethodPlan(
            method, trained, estimates[False], estimates[True], fits[False], fits[True]
        )
    return Plan(
        model=model,
        source=source,
        shape=shape,
        gpu_mem_gb=gpu_mem_gb,
        settings=settings,
        methods=methods,
        recommendation=recommend(methods, settings),
        notes=_notes(shape, methods, gpu_mem_gb, settings),
    )


def recommend(methods: dict[str, MethodPlan], settings: PlanSettings) -> Recommendation | None:
    """The first setting that fits, in order of preference.

    LoRA before QLoRA (no quantisation loss, no dequantising in every matmul); at the requested
    micro-batch without recomputation, then with it; then a smaller micro-batch with gradient
    accumulation, which reaches the same effective batch. Full fine-tuning is reported but never
    recommended: the product serves adapters on a shared base model.
    """
    wanted = settings.micro_batch
    for method in ("lora", "qlora"):
        plan = methods[method]
        prefix = (
            "" if method == "lora" else "LoRA's full-precision base does not fit; the 4-bit base "
        )
        if plan.max_micro_batch_without_checkpointing >= wanted:
            reason = f"{prefix}fits without recomputing activations: fastest steps"
            return Recommendation(method, False, wanted, 1, reason)
        fit = plan.max_micro_batch_with_checkpointing
        if fit >= 1:
            # The largest micro-batch that divides the requested one, so accumulation reaches it.
            batch = max(d for d in range(1, min(fit, wanted) + 1) if wanted % d == 0)
            reason = (
                f"{prefix}fits with activations recomputed in the backward pass (~1/3 more compute)"
            )
            return Recommendation(method, True, batch, wanted // batch, reason)
    return None


def _notes(
    shape: ModelShape, methods: dict[str, MethodPlan], gpu_mem_gb: float, settings: PlanSettings
) -> list[str]:
    notes = [
        f"GPU memory is read as GiB; {_gib(CUDA_CONTEXT_BYTES)} GiB goes to the CUDA context and "
        f"{FRAGMENTATION:.0%} to allocator slack. A GPU that also drives a display has less free.",
    ]
    if settings.shards > 1:
        notes.append(
            f"LoRA and full rows are per GPU with the base split {settings.shards} ways; QLoRA's "
            "row is one GPU's, as its 4-bit base is not split. Every process first loads the "
            f"whole base into CPU memory ({_gib(BF16 * shape.parameter_count())} GiB in bf16)"
        )
    logits = methods["lora"].with_checkpointing.parts["logits"]
    checkpointed = methods["lora"].with_checkpointing.parts
    activations = checkpointed["activations"] + checkpointed["recompute"]
    if logits > activations:
        notes.append(
            f"the {shape.vocab_size:,}-word vocabulary makes the logits ({_gib(logits)} GiB) larger "
            "than the checkpointed activations; shorter sequences or a smaller micro-batch shrink both"
        )
    if methods["full"].max_micro_batch_with_checkpointing >= 1:
        notes.append(
            "full fine-tuning would fit too, but yields a whole model instead of an adapter"
        )
    return notes


def _gib(value: int | float) -> float:
    return round(value / GIB, 2)


# --------------------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``plan`` to the ``rag finetune`` subcommands."""
    parser = subparsers.add_parser(
        "plan",
        help="estimate GPU memory for full fine-tuning, LoRA and QLoRA from the model config",
        description="Estimate from the model's config alone (no weights) what fits on a GPU.",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id or local model directory (default {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--gpu-mem-gb", type=float, required=True, help="GPU memory in GiB, e.g. 4, 8, 12, 24, 80"
    )
    parser.add_argument(
        "--seq-len", type=int, default=PlanSettings.seq_len, help="tokens per sequence"
    )
    parser.add_argument(
        "--micro-batch", type=int, default=PlanSettings.micro_batch, help="sequences per step"
    )
    parser.add_argument(
        "--lora-rank", type=int, default=PlanSettings.lora_rank, help="adapter rank"
    )
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=PlanSettings.label_fraction,
        help="share of tokens that are the reply, where logits are computed",
    )
    parser.add_argument(
        "--fsdp",
        type=int,
        default=PlanSettings.shards,
        metavar="N",
        help="plan per GPU for a base split across N GPUs with FSDP (deploy/accelerate/fsdp.yaml)",
    )
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="the GPU lacks bf16 (T4, V100, RTX 20xx and older): the trainer computes in fp32",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also train a few steps of the recommended setting on this machine and print the "
        "measured peak memory beside the estimate (needs the model's weights locally)",
    )
    parser.add_argument(
        "--probe-steps",
        type=int,
        default=2,
        help="training steps of the probe (from 2 on, the optimizer's states are in the peak)",
    )
    parser.set_defaults(func=run_plan_cli)


def run_plan_cli(args: argparse.Namespace) -> int:
    """``rag finetune plan``: print the plan; exit 0 when a recommended setting fits, else 1."""
    settings = PlanSettings(
        seq_len=args.seq_len,
        micro_batch=args.micro_batch,
        lora_rank=args.lora_rank,
        label_fraction=args.label_fraction,
        bf16=not args.fp32,
        shards=args.fsdp,
    )
    plan = make_plan(args.model, args.gpu_mem_gb, settings)
    measured = None
    if args.probe:
        from app.finetune.plan_probe import probe

        if args.probe_steps < 1:
            raise InvalidInput(f"--probe-steps must be at least 1, got {args.probe_steps}")
        rec = plan.recommendation
        # With nothing fitting, measure the smallest setting, so the estimate is still checked.
        method, ckpt, batch = (
            (rec.method, rec.gradient_checkpointing, rec.micro_batch) if rec else ("qlora", True, 1)
        )
        measured = probe(
            args.model,
            method,
            replace(settings, micro_batch=batch),
            gradient_checkpointing=ckpt,
            steps=args.probe_steps,
        )
    if args.json:
        data = plan.to_dict()
        if measured is not None:
            data["probe"] = measured.to_dict()
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(format_plan(plan))
        if measured is not None:
            print(format_probe(measured))
    return 0 if plan.recommendation else 1


def format_probe(result: Any) -> str:
    """One line: the measured peak beside the estimate."""
    return (
        f"probe: {result.method.upper()} {'with' if result.gradient_checkpointing else 'without'} "
        f"checkpointing, micro-batch {result.micro_batch} x {result.seq_len}, {result.steps} steps "
        f"on {result.device}: measured {result.measured_bytes / 2**20:,.0f} MiB, estimated "
        f"{result.estimated_bytes / 2**20:,.0f} MiB (x{result.ratio:.2f}; {result.measure})"
    )


def format_plan(plan: Plan) -> str:
    """The plan as a short text table."""
    s, shape = plan.settings, plan.shape
    lines = [
        f"{plan.model}  ({plan.source})",
        f"  {plan.parameter_count / 1e9:.2f} B parameters, {shape.num_layers} layers, hidden "
        f"{shape.hidden_size}, vocabulary {shape.vocab_size:,}",
        f"  {s.micro_batch} x {s.seq_len} tokens a step, LoRA rank {s.lora_rank}; "
        f"GPU {plan.gpu_mem_gb:g} GiB, {'bf16' if s.bf16 else 'fp32'}"
        + (f"; base split across {s.shards} GPUs (FSDP), figures per GPU" if s.shards > 1 else ""),
        "",
        f"  {'method':7}{'ckpt':6}{'weights':>9}{'train':>9}{'activ.':>9}{'logits':>9}"
        f"{'needs':>9}  {'fits':5}{'max batch':>10}",
    ]
    for method_plan in plan.methods.values():
        for estimate, fit in (
            (method_plan.without_checkpointing, method_plan.max_micro_batch_without_checkpointing),
            (method_plan.with_checkpointing, method_plan.max_micro_batch_with_checkpointing),
        ):
            p = estimate.parts
            weights = sum(
                p.get(k, 0) for k in ("weights", "gathered", "quant_constants", "dequantize")
            )
            train = p["trainable"] + p["gradients"] + p["optimizer"]
            activations = p["activations"] + p.get("recompute", 0)
            fits = estimate.required <= plan.gpu_mem_gb * GIB
            lines.append(
                f"  {estimate.method:7}{'on' if estimate.gradient_checkpointing else 'off':6}"
                f"{_gib(weights):>9.2f}{_gib(train):>9.2f}{_gib(activations):>9.2f}"
                f"{_gib(p['logits']):>9.2f}{_gib(estimate.required):>9.2f}  "
                f"{'yes' if fits else 'no':5}{fit:>10}"
            )
    lines.append("  (GiB; 'needs' adds the CUDA context and allocator slack)")
    lines.append("")
    rec = plan.recommendation
    if rec is None:
        lines.append(
            "recommendation: nothing fits; use a smaller model, shorter sequences or a larger GPU"
        )
    else:
        accumulation = (
            f" x {rec.gradient_accumulation} accumulation steps"
            if rec.gradient_accumulation > 1
            else ""
        )
        lines.append(
            f"recommendation: {rec.method.upper()} {'with' if rec.gradient_checkpointing else 'without'}"
            f" gradient checkpointing, micro-batch {rec.micro_batch}{accumulation} ({rec.reason})"
        )
    lines.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(lines)
