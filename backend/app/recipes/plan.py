"""Memory planning for fine-tuning: what fits on which GPU, from the model's config alone.

Each method (full fine-tuning, LoRA, QLoRA) is estimated with and without gradient checkpointing
(``plan_estimate.py``), the largest micro-batch that fits is searched, and one setting is
recommended. ``rag finetune plan`` (``plan_cli.py``) prints the plan, and with ``--probe``
measures the recommended setting (``plan_probe.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.core.errors import InvalidInput
from app.recipes.known_configs import ModelShape
from app.recipes.plan_estimate import (
    BF16,
    CUDA_CONTEXT_BYTES,
    FRAGMENTATION,
    GIB,
    MemoryEstimate,
    PlanSettings,
    estimate_memory,
    gib,
    lora_params,
    max_micro_batch,
)
from app.recipes.plan_shapes import resolve_shape
from app.recipes.train_config import ADAPTER_METHODS, METHODS, AdapterMethod, Method


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
    """The setting to train with on this GPU (always an adapter: the trainer trains no other)."""

    method: AdapterMethod
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
                "cuda_context_gib": gib(CUDA_CONTEXT_BYTES),
                "allocator_fragmentation": FRAGMENTATION,
                "compute_dtype": "bfloat16",
                "optimizer": "AdamW (fp32 moments)",
                "attention": "fused SDPA (no seq x seq matrix kept)",
            },
        }


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
    for method in ADAPTER_METHODS:
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
        f"GPU memory is read as GiB; {gib(CUDA_CONTEXT_BYTES)} GiB goes to the CUDA context and "
        f"{FRAGMENTATION:.0%} to allocator slack. A GPU that also drives a display has less free.",
    ]
    if settings.shards > 1:
        notes.append(
            f"LoRA and full rows are per GPU with the base split {settings.shards} ways; QLoRA's "
            "row is one GPU's, as its 4-bit base is not split. Every process first loads the "
            f"whole base into CPU memory ({gib(BF16 * shape.parameter_count())} GiB in bf16)"
        )
    logits = methods["lora"].with_checkpointing.parts["logits"]
    checkpointed = methods["lora"].with_checkpointing.parts
    activations = checkpointed["activations"] + checkpointed["recompute"]
    if logits > activations:
        notes.append(
            f"the {shape.vocab_size:,}-word vocabulary makes the logits ({gib(logits)} GiB) larger "
            "than the checkpointed activations; shorter sequences or a smaller micro-batch shrink both"
        )
    if methods["full"].max_micro_batch_with_checkpointing >= 1:
        notes.append(
            "full fine-tuning would fit too, but yields a whole model instead of an adapter"
        )
    return notes
