"""``rag finetune plan --probe``: run a few real training steps and measure their peak memory.

The model is loaded and given its adapter by the trainer's own code (``model.py``), and each step is the
trainer's loss, backward pass and AdamW update, on random token ids shaped like the planned
batch (memory does not depend on which tokens they are). The peak is read where it is exact:

* CUDA: ``torch.cuda.max_memory_allocated`` from before loading, the figure the estimate's
  ``allocated`` predicts;
* CPU: the loaded model's tensors plus the peak of live tensor memory over the steps, from the
  allocation records of the PyTorch profiler (resident memory would mostly show the allocator's
  and the libraries' own habits).
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, replace
from typing import Any

from app.recipes.plan_estimate import ALL_LINEARS, PlanSettings, estimate_memory
from app.recipes.plan_shapes import resolve_shape
from app.recipes.train_config import AdapterMethod, TrainConfig


@dataclass(frozen=True)
class ProbeResult:
    """A measured peak beside the estimate for the same setting."""

    method: AdapterMethod
    gradient_checkpointing: bool
    micro_batch: int
    seq_len: int
    steps: int
    device: str
    measured_bytes: int
    estimated_bytes: int
    measure: str

    @property
    def ratio(self) -> float:
        """Measured over estimated."""
        return self.measured_bytes / self.estimated_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in MiB."""
        return {
            "method": self.method,
            "gradient_checkpointing": self.gradient_checkpointing,
            "micro_batch": self.micro_batch,
            "seq_len": self.seq_len,
            "steps": self.steps,
            "device": self.device,
            "measured_mib": round(self.measured_bytes / 2**20, 1),
            "estimated_mib": round(self.estimated_bytes / 2**20, 1),
            "ratio": round(self.ratio, 3),
            "measure": self.measure,
        }


def probe(
    model: str,
    method: AdapterMethod,
    settings: PlanSettings,
    *,
    gradient_checkpointing: bool,
    steps: int = 2,
) -> ProbeResult:
    """Train ``steps`` steps of ``method`` on ``model`` (a local model) and measure the peak."""
    import torch

    from app.finetune.model import load_model, token_loss_sum
    from app.hf.device import default_device, training_dtype

    shape, _ = resolve_shape(model)
    device = default_device()
    bf16 = training_dtype(device) == torch.bfloat16
    settings = replace(settings, bf16=bf16, dropout_mask_bytes=1 if device.type == "cuda" else 4)
    estimate = estimate_memory(
        shape, method, settings, gradient_checkpointing=gradient_checkpointing
    )
    config = TrainConfig(
        data="",
        output="",
        model=model,
        method=method,
        micro_batch_size=settings.micro_batch,
        lora_r=settings.lora_rank,
        lora_dropout=settings.lora_dropout,
        target_modules=None if settings.lora_targets == ALL_LINEARS else settings.lora_targets,
        max_seq_len=settings.seq_len,
        gradient_checkpointing=gradient_checkpointing,
    )
    cuda = device.type == "cuda"
    meter = _CudaPeak(device) if cuda else _CpuPeak()
    if cuda:
        meter.start()
    net, _ = load_model(config, device)
    net.train()
    if not cuda:
        # Loading runs on worker threads the CPU profiler follows poorly: measure the loaded
        # model by its tensors, and the training steps by the profiler.
        meter.start(model_bytes=tensor_bytes(net))
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = random_batch(shape.vocab_size, settings, generator).to(device)
        loss = token_loss_sum(net, batch) / batch.label_tokens
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = meter.peak()
    del net, optimizer, trainable, loss
    gc.collect()
    return ProbeResult(
        method=method,
        gradient_checkpointing=gradient_checkpointing,
        micro_batch=settings.micro_batch,
        seq_len=settings.seq_len,
        steps=steps,
        device=str(device),
        measured_bytes=measured,
        estimated_bytes=estimate.allocated,
        measure=meter.name,
    )


def random_batch(vocab_size: int, settings: PlanSettings, generator: Any) -> Any:
    """One micro-batch of full rows of random ids, the reply (the loss) at the end of each row."""
    import torch

    from app.finetune.packing import Batch

    rows, width = settings.micro_batch, settings.seq_len
    input_ids = torch.randint(0, vocab_size, (rows, width), generator=generator)
    reply = min(math.ceil(width * settings.label_fraction), width - 1)
    # Position c predicts token c + 1: the last ``reply`` tokens of every row are targets.
    cols = torch.arange(width - reply - 1, width - 1)
    loss_rows = torch.arange(rows).repeat_interleave(reply)
    loss_cols = cols.repeat(rows)
    positions = torch.arange(width).expand(rows, width).contiguous()
    return Batch(
        input_ids,
        positions,
        None,
        loss_rows,
        loss_cols,
        input_ids[loss_rows, loss_cols + 1],
        rows * width,
        rows * width,
    )


class _CudaPeak:
    name = "torch.cuda.max_memory_allocated"

    def __init__(self, device: Any) -> None:
        self.device = device
        self.base = 0

    def start(self) -> None:
        import torch

        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        self.base = torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        import torch

        return torch.cuda.max_memory_allocated(self.device) - self.base


class _CpuPeak:
    """The loaded model's tensors plus the peak of live CPU tensor memory over the steps."""

    name = "model tensors + peak CPU tensor memory of the steps (PyTorch profiler)"

    def __init__(self) -> None:
        self._profiler: Any = None
        self._base = 0

    def start(self, model_bytes: int = 0) -> None:
        from torch.profiler import ProfilerActivity, profile

        gc.collect()
        self._base = model_bytes
        self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._profiler.__enter__()

    def peak(self) -> int:
        self._profiler.__exit__(None, None, None)
        # Allocations are positive and frees negative; their running sum is the live total.
        events = [
            e for e in self._profiler.profiler.kineto_results.events() if e.name() == "[memory]"
        ]
        live = highest = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            live += event.nbytes()
            highest = max(highest, live)
        return self._base + highest


def tensor_bytes(model: Any) -> int:
    """Bytes of a model's parameters, buffers and 4-bit quantisation constants (shared counted once)."""
    import torch

    storages: dict[int, int] = {}

    def add(tensor: Any) -> None:
        if isinstance(tensor, torch.Tensor):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()

    def add_quant_state(state: Any) -> None:
        for value in vars(state).values():
            add(value)
            if hasattr(value, "absmax"):
                add_quant_state(value)

    for tensor in [*model.parameters(), *model.buffers()]:
        add(tensor)
        if getattr(tensor, "quant_state", None) is not None:
            add_quant_state(tensor.quant_state)
    return sum(storages.values())
