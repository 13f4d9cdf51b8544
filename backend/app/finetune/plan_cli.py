"""``rag finetune plan``: the plan as a table or JSON, and with ``--probe`` a measured peak."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from app.core.errors import InvalidInput
from app.recipes.plan import Plan, make_plan
from app.recipes.plan_estimate import GIB, PlanSettings, gib
from app.recipes.train_config import DEFAULT_MODEL


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
                f"{gib(weights):>9.2f}{gib(train):>9.2f}{gib(activations):>9.2f}"
                f"{gib(p['logits']):>9.2f}{gib(estimate.required):>9.2f}  "
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
