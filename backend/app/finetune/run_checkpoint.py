"""Saving a run's checkpoint from the trainer's state (the format is ``checkpoint.py``'s)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from app.finetune.checkpoint import adapter_state, optimizer_state, save_checkpoint

if TYPE_CHECKING:
    from app.finetune.train import Run


def assembles(run: Run) -> bool:
    """Whether this process assembles whole tensors to save: every process when the model is
    sharded (gathering a shard is collective), otherwise only the main one, which writes."""
    return run.sharded or run.accelerator.is_main_process


def save_run_checkpoint(run: Run) -> None:
    """Checkpoint ``run`` at its current step (collective when several processes train)."""
    run.checkpoint_step = run.step
    if assembles(run):
        adapter = adapter_state(run.model)
        optimizer = optimizer_state(run.model, run.optimizer)
    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:
        return
    save_checkpoint(
        Path(run.config.output),
        model=run.model,
        adapter=adapter,
        optimizer=optimizer,
        scheduler=run.scheduler,
        state={
            "step": run.step,
            "tokens": run.tokens,
            "positions": run.positions,
            "elapsed_s": run.elapsed_s,
            "cpu_s": run.cpu_s,
            "position": asdict(run.stream.position),
        },
        keep_adapters=run.config.keep_checkpoints,
        keep_optimizer=run.config.keep_optimizer_states,
    )
