"""Runs the trainer refuses before anything loads, because several processes cannot do them."""

from __future__ import annotations

from app.core.errors import InvalidInput
from app.recipes.train_config import TrainConfig


def check_single_process_governor(config: TrainConfig) -> None:
    """Refuse pauses that several processes cannot take together."""
    g = config.governor
    if g.schedule is not None or g.max_cpu_load is not None or g.max_other_gpu_mib is not None:
        # A process pausing alone would leave the others in a collective that times out.
        raise InvalidInput(
            "--schedule, --max-cpu-load and --max-other-gpu-mib pause a single-process run only"
        )


def check_shardable(config: TrainConfig, processes: int) -> None:
    """Refuse, before anything loads, a run that FSDP cannot split over ``processes``."""
    if config.method == "qlora":
        raise InvalidInput(
            "QLoRA cannot be sharded with FSDP here; QLoRA fits Mi:dm Mini on one 4 GiB GPU "
            "(see rag finetune plan), or use --method lora with FSDP for bases too big for one GPU"
        )
    rows = config.micro_batch_size * config.grad_accum
    if rows % processes:
        # Sharded layers gather their weights in every forward, so all processes must run the
        # same number of micro-batches.
        raise InvalidInput(
            f"with FSDP, --micro-batch-size x --grad-accum ({rows}) must be a multiple of the "
            f"number of processes ({processes})"
        )
