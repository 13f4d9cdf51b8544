"""The LoRA / QLoRA training recipe: ``setup()`` → ``train()`` → ``save()``.

Read top to bottom: ``setup`` in its steps (data, model, optimizer, resumed progress, the run's
record), then the loop, then saving. The model and the reply-only loss are ``model.py``; the
knobs, each with its default and what it does, are ``TrainConfig`` in ``train_config.py``.
``run_training(config)`` is what ``rag finetune train`` and a fine-tuning job's process call.

What it does beyond a plain PEFT loop, and why:

- packs short reviews into full rows without cross-attention, and lets reviews with the same
  prompt share one copy of it (``packing.py``): no padding, and the prompt (most of each
  example) computed once per group;
- computes logits only where a label is (the assistant's reply), not over the whole vocabulary at
  every prompt and padding position;
- paces itself with the load governor (``governor.py``) so a month-long run leaves the machine
  usable: it trains only in its hours, yields to other work, pauses on request (``control.json``)
  and says where it stands in ``status.json`` (``run_status.py``); a stop request ends it at a
  checkpoint;
- checkpoints atomically with optimizer, scheduler, RNG and data position (``checkpoint.py``), so
  ``--resume`` after ``kill -9`` continues the exact same loss curve, jumping to the saved row;
- records itself: ``run.json`` (base model, data hash, arguments, versions) and
  ``train_log.jsonl`` (one line per logged step).

Several GPUs: ``accelerate launch -m app.cli finetune train ...``. Every process computes the same
row plan and takes its share of each step's rows; gradients of the (small) adapter are summed
across processes before the optimizer step, so the result matches a single process. With the
FSDP config (``deploy/accelerate/fsdp.yaml``) the base is also split across the processes
(``sharding.py``), for bases that do not fit on one GPU.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.core.errors import NotFound
from app.core.logger import get_logger
from app.finetune.checkpoint import (
    adapter_state,
    latest_resumable,
    load_adapter,
    load_training_state,
)
from app.finetune.examples import PreparedData, prepare_examples
from app.finetune.governor import GovernorState, LoadGovernor
from app.finetune.model import (
    ReplyLoss,
    check_loss_matches_model,
    load_model,
    load_tokenizer,
)
from app.finetune.packing import DataPosition, RowStream, collate
from app.finetune.run_checkpoint import assembles, save_run_checkpoint
from app.finetune.run_checks import check_shardable, check_single_process_governor
from app.finetune.run_files import (
    LOG_FILE,
    append_log,
    outcome_record,
    resume_command,
    run_record,
    truncate_log,
    write_json,
)
from app.finetune.run_status import RunStatus
from app.finetune.sharding import fsdp_plugin, shard
from app.hf.chat_template import chat_template_for
from app.hf.tokens import pad_token_id
from app.recipes.job_files import CONTROL_FILE, STATUS_FILE
from app.recipes.train_config import RUN_FILE, TrainConfig

log = get_logger("finetune.train")


@dataclass
class Run:
    """What ``setup`` builds and ``train`` / ``save`` use."""

    config: TrainConfig
    model: Any
    loss_module: ReplyLoss
    sharded: bool
    """Whether FSDP splits the base across the processes."""
    tokenizer: Any
    chat_template: str
    data: PreparedData
    stream: RowStream
    optimizer: torch.optim.Optimizer
    scheduler: Any
    governor: LoadGovernor
    accelerator: Any
    total_steps: int
    step: int = 0
    tokens: int = 0
    """Tokens of the examples trained on (each example's prompt counted, as a padded batch holds)."""
    positions: int = 0
    """Positions actually computed (shared prompts once, padding included)."""
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    """CPU time of this process (all threads) spent in the training loop."""
    checkpoint_step: int | None = None
    """Step of the newest checkpoint (``None``: none yet)."""
    status: RunStatus | None = None
    record: dict[str, Any] = field(default_factory=dict)


def run_training(
    config: TrainConfig, *, resume: bool = False, stop: threading.Event | None = None
) -> Path | None:
    """Train an adapter as ``config`` says (continuing the saved run when ``resume``); the
    adapter's folder, or ``None`` when ``stop`` ended the run early at a checkpoint."""
    control = Path(config.output) / CONTROL_FILE
    run = setup(
        config,
        resume=resume,
        governor=LoadGovernor(config.governor, stop=stop, control_path=control),
    )
    if not train(run):
        return None
    return save(run)


def setup(
    config: TrainConfig, *, resume: bool = False, governor: LoadGovernor | None = None
) -> Run:
    """Apply the governor, prepare data, load the model with its adapter, build the optimizer,
    restore a resumed run's progress and record the run. ``governor`` paces the run (default:
    one of ``config.governor`` without a stop event or a control file)."""
    from accelerate import Accelerator

    # First, so every thread and worker started below inherits the limits.
    governor = governor or LoadGovernor(config.governor)
    governor_applied = governor.apply()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:
        check_single_process_governor(config)
    plugin = fsdp_plugin(accelerator)
    if plugin is not None:
        check_shardable(config, accelerator.num_processes)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)

    tokenizer = load_tokenizer(config.model)
    chat_template = chat_template_for(tokenizer)
    data = _setup_data(config, tokenizer, chat_template)
    checkpoint = latest_resumable(output) if resume else None
    if resume and checkpoint is None:
        raise NotFound(f"no checkpoint with optimizer state under {output}; start a new run")
    model, loss_module, dtype = _setup_model(
        config, accelerator, plugin, tokenizer, data, checkpoint
    )
    stream, total_steps = _setup_stream(config, data)
    optimizer, scheduler = _setup_optimizer(config, model, total_steps)
    run = Run(
        config=config,
        model=model,
        loss_module=loss_module,
        sharded=plugin is not None,
        tokenizer=tokenizer,
        chat_template=chat_template,
        data=data,
        stream=stream,
        optimizer=optimizer,
        scheduler=scheduler,
        governor=governor,
        accelerator=accelerator,
        total_steps=total_steps,
    )
    if checkpoint is not None:
        _restore_progress(run, checkpoint)
    elif (output / LOG_FILE).exists() and accelerator.is_main_process:
        (output / LOG_FILE).unlink()
    _record_start(run, dtype, governor_applied)
    return run


def _setup_data(config: TrainConfig, tokenizer: Any, chat_template: str) -> PreparedData:
    """Read, filter and tokenise the reviews (from the cache when it holds them)."""
    output = Path(config.output)
    data = prepare_examples(
        Path(config.data),
        config.data_options,
        tokenizer,
        chat_template=chat_template,
        max_seq_len=config.max_seq_len,
        cache_dir=Path(config.cache_dir) if config.cache_dir else output / "cache",
    )
    log.info("data %s", data.report.summary())
    return data


def _setup_model(
    config: TrainConfig,
    accelerator: Any,
    plugin: Any,
    tokenizer: Any,
    data: PreparedData,
    checkpoint: Path | None,
) -> tuple[Any, ReplyLoss, torch.dtype]:
    """The base with its adapter (the checkpoint's, when resuming), wrapped in the loss, sharded
    when FSDP is on, and checked against the model's own loss."""
    model, dtype = load_model(config, accelerator.device, sharded=plugin is not None)
    if checkpoint is not None:
        load_adapter(checkpoint, model)
    loss_module = ReplyLoss(model)
    if plugin is not None:
        shard(loss_module, model, plugin, device=accelerator.device, compute_dtype=dtype)
    check_loss_matches_model(loss_module, config, tokenizer, data, accelerator.device)
    return model, loss_module, dtype


def _setup_stream(config: TrainConfig, data: PreparedData) -> tuple[RowStream, int]:
    """The rows in training order, and how many optimizer steps the run takes."""
    stream = RowStream(
        data.examples, seed=config.seed, row_len=config.max_seq_len, packing=config.packing
    )
    rows_per_step = config.micro_batch_size * config.grad_accum
    total_steps = config.max_steps or math.ceil(
        config.epochs * stream.rows_per_epoch / rows_per_step
    )
    return stream, total_steps


def _setup_optimizer(
    config: TrainConfig, model: Any, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the adapter's parameters, with linear warm-up then cosine decay.

    Built after sharding: FSDP replaces the parameters with their shards.
    """
    from transformers import get_cosine_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total_steps), total_steps
    )
    return optimizer, scheduler


def _restore_progress(run: Run, checkpoint: Path) -> None:
    """Optimizer, scheduler, RNG, counters and data position as they were at ``checkpoint``."""
    state = load_training_state(
        checkpoint, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler
    )
    run.step, run.tokens, run.positions = state["step"], state["tokens"], state["positions"]
    run.checkpoint_step = run.step
    run.elapsed_s, run.cpu_s = state["elapsed_s"], state["cpu_s"]
    run.stream.seek(DataPosition(**state["position"]))
    if run.accelerator.is_main_process:
        truncate_log(Path(run.config.output) / LOG_FILE, run.step)
    log.info("resumed from %s (step %d of %d)", checkpoint.name, run.step, run.total_steps)


def _record_start(run: Run, dtype: torch.dtype, governor_applied: list[str]) -> None:
    """Write ``run.json`` as the run starts, and say how to resume it."""
    run.record = run_record(run, dtype, governor_applied)
    if run.accelerator.is_main_process:
        write_json(Path(run.config.output) / RUN_FILE, run.record)
    log.info(
        "training %s params of %s (%.2f%%), %d steps; resume with: %s",
        f"{run.record['trainable_params']:,}",
        f"{run.record['total_params']:,}",
        100 * run.record["trainable_params"] / run.record["total_params"],
        run.total_steps,
        run.record["resume_command"],
    )


def train(run: Run) -> bool:
    """The loop: wait while the governor says so, accumulate micro-batches, clip, step, log,
    checkpoint, pace. ``False`` when a stop request ended it (at a checkpoint)."""
    from tqdm import tqdm

    config, model, accelerator = run.config, run.model, run.accelerator
    output = Path(config.output)
    pad_id = pad_token_id(run.tokenizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()

    bar = tqdm(
        total=run.total_steps,
        initial=run.step,
        unit="step",
        disable=not (config.progress and accelerator.is_main_process),
        dynamic_ncols=True,
    )
    status = run.status = RunStatus(
        output / STATUS_FILE if accelerator.is_main_process else None,
        step=run.step,
        total_steps=run.total_steps,
        state=run.governor.state,
        now=run.governor.now,
    )
    run.governor.on_state = lambda state: _governor_changed(run, status, state)
    status.write()
    # Throughput over the time spent computing and pacing: pauses are not the trainer's pace.
    window_tokens, window_s = 0, 0.0
    while run.step < run.total_steps and _may_step(run):
        step_start, step_cpu = time.perf_counter(), time.process_time()
        with run.governor.step():
            loss_value, step_counts = _optimizer_step(run, trainable, pad_id)
        run.step += 1
        step_tokens, step_positions = (int(n) for n in step_counts)
        run.tokens += step_tokens
        run.positions += step_positions
        window_tokens += step_tokens
        step_s = time.perf_counter() - step_start
        run.elapsed_s += step_s
        window_s += step_s
        run.cpu_s += time.process_time() - step_cpu

        loss_item = loss_value.item()
        bar.update(1)
        if run.step % config.log_every == 0 or run.step == run.total_steps:
            tokens_per_s = window_tokens / max(window_s, 1e-9)
            window_tokens, window_s = 0, 0.0
            bar.set_postfix(loss=f"{loss_item:.4f}", tok_s=f"{tokens_per_s:,.0f}")
            if accelerator.is_main_process:
                append_log(
                    output / LOG_FILE,
                    {
                        "step": run.step,
                        "loss": loss_item,
                        "lr": run.scheduler.get_last_lr()[0],
                        "tokens_per_s": round(tokens_per_s, 1),
                        "elapsed_s": round(run.elapsed_s, 3),
                        "epoch": run.stream.position.epoch,
                    },
                )
        if run.step % config.save_every == 0 and run.step < run.total_steps:
            save_run_checkpoint(run)
        status.step_done(run.step, step_s)
    bar.close()
    if run.step == run.total_steps:
        return True
    if run.checkpoint_step != run.step:
        save_run_checkpoint(run)
    status.close("stopped")
    log.info(
        "stopped at step %d of %d; resume with: %s",
        run.step,
        run.total_steps,
        resume_command(output),
    )
    return False


def _may_step(run: Run) -> bool:
    """Wait out the governor's pauses; whether to take the next step (not when stopped)."""
    go = run.governor.wait_to_run()
    processes = run.accelerator.num_processes
    if processes > 1:
        # All processes take the next step or none does: one that stopped alone would leave
        # the others waiting in a collective.
        votes = torch.tensor([int(go)], device=run.accelerator.device)
        go = int(run.accelerator.reduce(votes, reduction="sum").item()) == processes
    return go


def _governor_changed(run: Run, status: RunStatus, state: GovernorState) -> None:
    """Checkpoint as a pause begins, so that a kill while paused loses nothing; show the state.

    Only in a single process: saving is collective, and the others may not be pausing.
    """
    single = run.accelerator.num_processes == 1
    if state.state == "paused" and single and run.checkpoint_step != run.step:
        save_run_checkpoint(run)
    status.governor_changed(state)


def _optimizer_step(
    run: Run, trainable: list[torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate this process's share of one step's rows, sum across processes, clip, step.

    Returns the step's loss and its (tokens, positions) counts, both summed over the processes.
    """
    config, accelerator = run.config, run.accelerator
    rank, world = accelerator.process_index, accelerator.num_processes
    rows = run.stream.take(config.micro_batch_size * config.grad_accum)
    # Every process plans the same rows, so all know the step's label count: dividing by it
    # makes the summed gradients equal those of one process doing all the rows.
    replies = run.data.examples.response_lengths
    label_tokens = sum(int(replies[seg.examples].sum()) for row in rows for seg in row)
    mine = rows[rank::world]
    loss_value = torch.zeros((), device=accelerator.device)
    step_counts = torch.zeros(2, dtype=torch.long)  # tokens, positions
    for start in range(0, len(mine), config.micro_batch_size):
        batch = collate(
            run.data.examples, mine[start : start + config.micro_batch_size], pad_id
        ).to(accelerator.device)
        loss = run.loss_module(batch) / label_tokens
        loss.backward()
        loss_value += loss.detach()
        step_counts += torch.tensor([batch.tokens, batch.input_ids.numel()])
    if world > 1:
        if not run.sharded:  # FSDP sums a sharded model's gradients during backward
            for param in trainable:
                if param.grad is not None:
                    param.grad = accelerator.reduce(param.grad, reduction="sum")
        loss_value = accelerator.reduce(loss_value, reduction="sum")
        step_counts = accelerator.reduce(step_counts.to(accelerator.device), "sum").cpu()
    torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_value, step_counts


def save(run: Run) -> Path:
    """Write the final adapter, the tokenizer (with the chat template trained on) and ``run.json``."""
    config, accelerator = run.config, run.accelerator
    output = Path(config.output)
    adapter = adapter_state(run.model) if assembles(run) else None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run.model.save_pretrained(output, state_dict=adapter)
        # Saved with the template used in training, so generation from this folder matches it.
        run.tokenizer.chat_template = run.chat_template
        run.tokenizer.save_pretrained(output)
        run.record.update(outcome_record(run))
        write_json(output / RUN_FILE, run.record)
        if run.status is not None:
            run.status.close("finished")
    log.info("adapter saved to %s", output)
    return output
