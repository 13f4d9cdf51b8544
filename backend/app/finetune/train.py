"""The LoRA / QLoRA training recipe: ``setup()`` → ``train()`` → ``save()``.

Read top to bottom: the loss, then the three steps; the knobs, each with its default and what it
does, are ``TrainConfig`` in ``train_config.py``. ``run_training(config)`` is what
``rag finetune train`` calls.

What it does beyond a plain PEFT loop, and why:

- packs short reviews into full rows without cross-attention, and lets reviews with the same
  prompt share one copy of it (``packing.py``): no padding, and the prompt (most of each
  example) computed once per group;
- computes logits only where a label is (the assistant's reply), not over the whole vocabulary at
  every prompt and padding position;
- paces itself with the load governor (``governor.py``) so a month-long run leaves the machine
  usable;
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

import json
import math
import platform
import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from app.core.errors import InvalidInput, NotFound
from app.core.logger import get_logger
from app.finetune.checkpoint import (
    adapter_state,
    latest_resumable,
    load_adapter,
    load_training_state,
    optimizer_state,
    save_checkpoint,
)
from app.finetune.examples import PreparedData, prepare_examples
from app.finetune.governor import LoadGovernor
from app.finetune.packing import (
    Batch,
    DataPosition,
    RowStream,
    collate,
    epoch_order,
    pack_rows,
)
from app.finetune.peft_compat import peft_deprecations_silenced
from app.finetune.prompts import COMPACT_LLAMA3_TEMPLATE, chat_template_for
from app.finetune.sharding import fsdp_plugin, shard
from app.finetune.train_config import RUN_FILE, TrainConfig
from app.hf.quantization import set_4bit_layout

log = get_logger("finetune.train")

LOG_FILE = "train_log.jsonl"


def token_loss_sum(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of next-token cross-entropy over the reply tokens.

    Logits are computed only at the positions that predict a reply token: with a large
    vocabulary the output layer is a big share of the compute, and most positions are prompt.
    """
    hidden = model.get_decoder()(
        input_ids=batch.input_ids,
        attention_mask=_attention_mask(model, batch.attention_mask),
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state
    logits = model.get_output_embeddings()(hidden[batch.loss_rows, batch.loss_cols])
    return F.cross_entropy(logits.float(), batch.loss_targets, reduction="sum")


class ReplyLoss(torch.nn.Module):
    """``token_loss_sum`` as a module: the one call the loop makes, and the root that FSDP shards
    (its forward is where the embeddings and output layer are gathered)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, *, model_loss: bool = False) -> torch.Tensor:
        """The summed reply-token loss; with ``model_loss``, the model's own mean loss instead."""
        if not model_loss:
            return token_loss_sum(self.model, batch)
        return self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            labels=batch.labels(),
            use_cache=False,
        ).loss


def _attention_mask(model: Any, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The batch's mask in the form the model's attention takes: SDPA reads a boolean 4-D mask
    as is; eager attention adds it, so it needs 0 / -inf."""
    if mask is None or mask.dim() != 4:
        return mask
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        return mask
    if implementation == "eager":
        dtype = model.get_input_embeddings().weight.dtype
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return additive.masked_fill(~mask, torch.finfo(dtype).min)
    raise InvalidInput(
        f"--packing share needs sdpa or eager attention, not {implementation}; "
        "use --packing pack (FlashAttention reads packed rows from the position ids)"
    )


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
    record: dict[str, Any] = field(default_factory=dict)


def run_training(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train an adapter as ``config`` says (continuing the saved run when ``resume``)."""
    run = setup(config, resume=resume)
    train(run)
    return save(run)


def setup(config: TrainConfig, *, resume: bool = False) -> Run:
    """Apply the governor, prepare data, load the model with its adapter, build the optimizer."""
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    # First, so every thread and worker started below inherits the limits.
    governor = LoadGovernor(config.governor)
    applied = governor.apply()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    plugin = fsdp_plugin(accelerator)
    if plugin is not None:
        check_shardable(config, accelerator.num_processes)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)

    tokenizer = _load_tokenizer(config.model)
    chat_template = chat_template_for(tokenizer)
    data = prepare_examples(
        Path(config.data),
        config.data_options,
        tokenizer,
        chat_template=chat_template,
        max_seq_len=config.max_seq_len,
        cache_dir=Path(config.cache_dir) if config.cache_dir else output / "cache",
    )
    log.info("data %s", data.report.summary())

    model, dtype = _load_model(config, accelerator.device, sharded=plugin is not None)
    stream = RowStream(
        data.examples, seed=config.seed, row_len=config.max_seq_len, packing=config.packing
    )
    rows_per_step = config.micro_batch_size * config.grad_accum
    total_steps = config.max_steps or math.ceil(
        config.epochs * stream.rows_per_epoch / rows_per_step
    )
    checkpoint = latest_resumable(output) if resume else None
    if resume and checkpoint is None:
        raise NotFound(f"no checkpoint with optimizer state under {output}; start a new run")
    if checkpoint is not None:
        load_adapter(checkpoint, model)
    loss_module = ReplyLoss(model)
    if plugin is not None:
        shard(loss_module, model, plugin, device=accelerator.device, compute_dtype=dtype)
    _check_loss_matches_model(loss_module, config, tokenizer, data, accelerator.device)

    # Built after sharding: FSDP replaces the parameters with their shards.
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total_steps), total_steps
    )
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
        state = load_training_state(
            checkpoint, model=model, optimizer=optimizer, scheduler=scheduler
        )
        run.step, run.tokens, run.positions = state["step"], state["tokens"], state["positions"]
        run.elapsed_s, run.cpu_s = state["elapsed_s"], state["cpu_s"]
        stream.seek(DataPosition(**state["position"]))
        if accelerator.is_main_process:
            _truncate_log(output / LOG_FILE, run.step)
        log.info("resumed from %s (step %d of %d)", checkpoint.name, run.step, total_steps)
    elif (output / LOG_FILE).exists() and accelerator.is_main_process:
        (output / LOG_FILE).unlink()

    trainable_count = sum(p.numel() for p in trainable)
    total_count = sum(p.numel() for p in model.parameters())
    run.record = {
        "base_model": config.model,
        "method": config.method,
        "data": str(Path(config.data).resolve()),
        "data_hash": data.data_hash,
        "examples_cache_key": data.cache_key,
        "data_report": data.report.to_dict(),
        "chat_template": "compact-llama3" if chat_template == COMPACT_LLAMA3_TEMPLATE else "model",
        "config": _jsonable(asdict(config)),
        "total_steps": total_steps,
        "rows_per_epoch": stream.rows_per_epoch,
        "trainable_params": trainable_count,
        "total_params": total_count,
        "device": str(accelerator.device),
        "processes": accelerator.num_processes,
        "sharding": "fsdp" if plugin is not None else "none",
        "dtype": str(dtype).removeprefix("torch."),
        "governor_applied": applied,
        "versions": _versions(),
        "resume_command": resume_command(output),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if accelerator.is_main_process:
        _write_json(output / RUN_FILE, run.record)
    log.info(
        "training %s params of %s (%.2f%%), %d steps; resume with: %s",
        f"{trainable_count:,}",
        f"{total_count:,}",
        100 * trainable_count / total_count,
        total_steps,
        run.record["resume_command"],
    )
    return run


def train(run: Run) -> None:
    """The loop: accumulate micro-batches, clip, step, log, checkpoint, pace."""
    from tqdm import tqdm

    config, model, accelerator = run.config, run.model, run.accelerator
    output = Path(config.output)
    rank, world = accelerator.process_index, accelerator.num_processes
    pad_id = run.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = run.tokenizer.eos_token_id
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()

    bar = tqdm(
        total=run.total_steps,
        initial=run.step,
        unit="step",
        disable=not (config.progress and accelerator.is_main_process),
        dynamic_ncols=True,
    )
    window_tokens, window_start = 0, time.perf_counter()
    while run.step < run.total_steps:
        step_start, step_cpu = time.perf_counter(), time.process_time()
        with run.governor.step():
            rows = run.stream.take(config.micro_batch_size * config.grad_accum)
            # Every process plans the same rows, so all know the step's label count: dividing
            # by it makes the summed gradients equal those of one process doing all the rows.
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
        run.step += 1
        step_tokens, step_positions = (int(n) for n in step_counts)
        run.tokens += step_tokens
        run.positions += step_positions
        window_tokens += step_tokens
        run.elapsed_s += time.perf_counter() - step_start
        run.cpu_s += time.process_time() - step_cpu

        loss_item = loss_value.item()
        bar.update(1)
        if run.step % config.log_every == 0 or run.step == run.total_steps:
            now = time.perf_counter()
            tokens_per_s = window_tokens / max(now - window_start, 1e-9)
            window_tokens, window_start = 0, now
            bar.set_postfix(loss=f"{loss_item:.4f}", tok_s=f"{tokens_per_s:,.0f}")
            if accelerator.is_main_process:
                _append_log(
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
            _save_checkpoint(run)
    bar.close()


def save(run: Run) -> Path:
    """Write the final adapter, the tokenizer (with the chat template trained on) and ``run.json``."""
    config, accelerator = run.config, run.accelerator
    output = Path(config.output)
    adapter = adapter_state(run.model) if _assembles(run) else None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run.model.save_pretrained(output, state_dict=adapter)
        # Saved with the template used in training, so generation from this folder matches it.
        run.tokenizer.chat_template = run.chat_template
        run.tokenizer.save_pretrained(output)
        stats = run.governor.stats
        run.record.update(
            {
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "steps": run.step,
                "tokens": run.tokens,
                "positions": run.positions,
                "elapsed_s": round(run.elapsed_s, 3),
                "cpu_s": round(run.cpu_s, 3),
                "tokens_per_s": round(run.tokens / max(run.elapsed_s, 1e-9), 1),
                "governor_stats": {
                    "compute_s": round(stats.compute_s, 3),
                    "throttle_s": round(stats.throttle_s, 3),
                    "thermal_pause_s": round(stats.thermal_pause_s, 3),
                    "thermal_pauses": stats.thermal_pauses,
                },
            }
        )
        _write_json(output / RUN_FILE, run.record)
    log.info("adapter saved to %s", output)
    return output


def resume_command(output: Path) -> str:
    """The command that continues this run after an interruption."""
    return f"rag finetune train --output {shlex.quote(str(output))} --resume"


def _assembles(run: Run) -> bool:
    """Whether this process assembles whole tensors to save: every process when the model is
    sharded (gathering a shard is collective), otherwise only the main one, which writes."""
    return run.sharded or run.accelerator.is_main_process


def _save_checkpoint(run: Run) -> None:
    if _assembles(run):
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


def _load_tokenizer(model_id: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_id)
    except OSError as exc:
        raise NotFound(f"cannot load a tokenizer from {model_id!r}: {exc}") from exc


def _load_model(
    config: TrainConfig, device: torch.device, *, sharded: bool = False
) -> tuple[Any, torch.dtype]:
    """The frozen base (full precision or 4-bit) with a fresh LoRA adapter on it.

    A model that will be sharded stays on the CPU: sharding moves each process's part to
    ``device``.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    # bf16 where the GPU computes in it natively; fp32 on CPU, where bf16 matmuls are slow.
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if cuda_bf16 else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    except OSError as exc:
        raise NotFound(f"cannot load model {config.model!r}: {exc}") from exc
    if config.method == "qlora":
        # Checkpointing is enabled below, the same way for both methods (non-reentrant, which
        # needs no input-grad hook).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        # Before the loss check runs the model in eval mode: a 4-bit layer repacked for
        # inference there would have no backward.
        set_4bit_layout(model, "training")
    elif not sharded:
        model.to(device)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.config.use_cache = False
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules) if config.target_modules else "all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        with peft_deprecations_silenced():
            return get_peft_model(model, lora), dtype
    except ValueError as exc:
        raise InvalidInput(f"cannot attach LoRA to {config.model}: {exc}") from exc


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


def _check_loss_matches_model(
    loss_module: ReplyLoss,
    config: TrainConfig,
    tokenizer: Any,
    data: PreparedData,
    device: torch.device,
) -> None:
    """Check once that the reply-only loss equals the model's own loss on real examples.

    ``token_loss_sum`` skips the model's head for unlabelled positions; a model that post-processes
    its logits (soft-capping, scaling) would silently train on a different loss.
    """
    examples = data.examples
    order = epoch_order(len(examples), config.seed, 0)[:8]
    rows = pack_rows(examples, order, config.max_seq_len, share=False)[:1]
    pad_id = tokenizer.pad_token_id
    batch = collate(examples, rows, tokenizer.eos_token_id if pad_id is None else pad_id)
    batch = batch.to(device)
    loss_module.eval()
    with torch.no_grad():
        ours = loss_module(batch).item() / batch.label_tokens
        theirs = loss_module(batch, model_loss=True).item()
    loss_module.train()
    if not math.isclose(ours, theirs, rel_tol=2e-2, abs_tol=1e-3):
        raise InvalidInput(
            f"{config.model} computes its loss differently ({theirs:.4f}) from the "
            f"reply-only loss ({ours:.4f}); this trainer supports Llama-style causal LMs"
        )


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint: the resumed run writes them again."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _append_log(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions
