"""``rag finetune``: train, merge, plan and evaluate adapters.

Only argument parsing lives here; torch, transformers and peft are imported inside the commands,
so ``rag serve`` starts without them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.finetune.data import DATA_FORMATS, DataOptions
from app.finetune.evaluate import add_parser as add_eval_parser
from app.finetune.governor import GovernorSettings
from app.finetune.plan import DEFAULT_MODEL
from app.finetune.plan import add_parser as add_plan_parser
from app.finetune.train_config import PACKING_MODES, TrainConfig

_TRAIN_DEFAULTS = TrainConfig(data="", output="")
_DATA_DEFAULTS = DataOptions()
_GOVERNOR_DEFAULTS = GovernorSettings()

# CLI flag → TrainConfig field; every default is None so that "not given" is visible on --resume.
_TRAIN_FIELDS = (
    "model",
    "method",
    "data",
    "max_steps",
    "epochs",
    "micro_batch_size",
    "grad_accum",
    "lr",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "max_seq_len",
    "packing",
    "gradient_checkpointing",
    "save_every",
    "keep_checkpoints",
    "keep_optimizer_states",
    "log_every",
    "seed",
    "cache_dir",
    "progress",
)
_DATA_FIELDS = {
    "data_format": "data_format",
    "text_column": "text_column",
    "rating_column": "rating_column",
    "subject_column": "subject_column",
    "rating_scale": "rating_scale",
    "balance": "balance",
    "max_per_rating": "max_per_rating",
    "max_review_chars": "max_chars",
    "max_examples": "max_examples",
}
_GOVERNOR_FIELDS = {
    "max_threads": "max_threads",
    "nice": "niceness",
    "duty_cycle": "duty_cycle",
    "gpu_memory_fraction": "gpu_memory_fraction",
    "max_gpu_temp": "max_gpu_temp_c",
    "max_gpu_power": "max_gpu_power_w",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``finetune`` and its subcommands to the ``rag`` command line."""
    finetune = subparsers.add_parser(
        "finetune", help="LoRA / QLoRA fine-tuning on star-rated reviews"
    )
    commands = finetune.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    _add_train_parser(commands)
    _add_merge_parser(commands)
    add_plan_parser(commands)
    add_eval_parser(commands)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train a LoRA / QLoRA adapter that writes a review for a given rating",
        description="Train an adapter on star-rated reviews. Interrupted runs continue with "
        "`rag finetune train --output DIR --resume`.",
    )
    p.add_argument("--model", help=f"hub id or local folder (default {DEFAULT_MODEL})")
    p.add_argument("--data", help="review file or folder (see --data-format)")
    p.add_argument("--method", choices=("lora", "qlora"), help="lora (default) or qlora (4-bit)")
    p.add_argument("--output", required=True, type=Path, help="folder for the adapter and logs")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --output")

    data = p.add_argument_group("data")
    data.add_argument("--data-format", choices=DATA_FORMATS, help="default auto")
    data.add_argument("--text-column", help="jsonl/csv: review column (default review)")
    data.add_argument("--rating-column", help="jsonl/csv: rating column (default rating)")
    data.add_argument("--subject-column", help="jsonl/csv: movie or product name column")
    data.add_argument("--rating-scale", type=int, choices=(5, 10), help="default: detected")
    data.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        help="down-sample every rating to the rarest one's count",
    )
    data.add_argument("--max-per-rating", type=int, help="keep at most N reviews per rating")
    data.add_argument(
        "--max-review-chars",
        type=int,
        help=f"drop longer reviews (default {_DATA_DEFAULTS.max_chars})",
    )
    data.add_argument("--max-examples", type=int, help="use at most N reviews")
    data.add_argument("--cache-dir", help="tokenised data cache (default OUTPUT/cache)")

    train = p.add_argument_group("training")
    train.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    train.add_argument(
        "--epochs", type=float, help=f"passes over the data (default {_TRAIN_DEFAULTS.epochs:g})"
    )
    train.add_argument(
        "--micro-batch-size",
        type=int,
        help=f"rows per forward pass (default {_TRAIN_DEFAULTS.micro_batch_size})",
    )
    train.add_argument(
        "--grad-accum",
        type=int,
        help=f"micro-batches per step (default {_TRAIN_DEFAULTS.grad_accum})",
    )
    train.add_argument(
        "--lr", type=float, help=f"peak learning rate (default {_TRAIN_DEFAULTS.lr:g})"
    )
    train.add_argument(
        "--warmup-ratio",
        type=float,
        help=f"share of warm-up steps (default {_TRAIN_DEFAULTS.warmup_ratio:g})",
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        help=f"AdamW weight decay (default {_TRAIN_DEFAULTS.weight_decay:g})",
    )
    train.add_argument(
        "--max-grad-norm",
        type=float,
        help=f"gradient clipping (default {_TRAIN_DEFAULTS.max_grad_norm:g})",
    )
    train.add_argument(
        "--lora-r", type=int, help=f"adapter rank (default {_TRAIN_DEFAULTS.lora_r})"
    )
    train.add_argument(
        "--lora-alpha",
        type=int,
        help=f"adapter scale numerator (default {_TRAIN_DEFAULTS.lora_alpha})",
    )
    train.add_argument(
        "--lora-dropout",
        type=float,
        help=f"dropout on adapter input (default {_TRAIN_DEFAULTS.lora_dropout:g})",
    )
    train.add_argument(
        "--target-modules",
        type=lambda value: tuple(v.strip() for v in value.split(",") if v.strip()),
        help="comma-separated module names (default: all linear projections)",
    )
    train.add_argument(
        "--max-seq-len",
        type=int,
        help=f"tokens per packed row (default {_TRAIN_DEFAULTS.max_seq_len})",
    )
    train.add_argument(
        "--packing",
        choices=PACKING_MODES,
        help=f"share: reviews with the same prompt share one copy of it; pack: reviews side by "
        f"side; none: padded batches (default {_TRAIN_DEFAULTS.packing})",
    )
    train.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        help="recompute activations to save memory (default on)",
    )
    train.add_argument(
        "--seed",
        type=int,
        help=f"data order, adapter init, dropout (default {_TRAIN_DEFAULTS.seed})",
    )

    saving = p.add_argument_group("checkpoints and logs")
    saving.add_argument(
        "--save-every",
        type=int,
        help=f"checkpoint every N steps (default {_TRAIN_DEFAULTS.save_every})",
    )
    saving.add_argument(
        "--keep-checkpoints",
        type=int,
        help=f"adapter snapshots kept (default {_TRAIN_DEFAULTS.keep_checkpoints})",
    )
    saving.add_argument(
        "--keep-optimizer-states",
        type=int,
        choices=(1, 2),
        help=f"optimizer states kept (default {_TRAIN_DEFAULTS.keep_optimizer_states})",
    )
    saving.add_argument(
        "--log-every", type=int, help=f"log every N steps (default {_TRAIN_DEFAULTS.log_every})"
    )
    saving.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar (default on)",
    )

    load = p.add_argument_group("load governor (may change on --resume)")
    load.add_argument("--max-threads", type=int, help="CPU threads for compute (default: all)")
    load.add_argument(
        "--nice",
        type=int,
        help=f"raise the process niceness by N, 0-19 (default {_GOVERNOR_DEFAULTS.niceness})",
    )
    load.add_argument(
        "--duty-cycle", type=float, help="compute at most this share of wall time (default 1.0)"
    )
    load.add_argument("--gpu-memory-fraction", type=float, help="cap on this GPU's memory (0-1]")
    load.add_argument("--max-gpu-temp", type=float, help="pause above this GPU temperature (°C)")
    load.add_argument("--max-gpu-power", type=float, help="pause above this GPU power draw (W)")
    p.set_defaults(func=cmd_train)


def _add_merge_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "merge",
        help="merge an adapter into its full-precision base model (serving without PEFT)",
    )
    p.add_argument("--model", help="base model (default: the one named in the adapter)")
    p.add_argument("--adapter", required=True, type=Path, help="adapter folder")
    p.add_argument("--output", required=True, type=Path, help="folder for the merged model")
    p.add_argument(
        "--dtype",
        choices=("auto", "bf16", "fp16", "fp32"),
        default="auto",
        help="weights of the merged model (default: the base's own)",
    )
    p.set_defaults(func=cmd_merge)


def cmd_train(args: argparse.Namespace) -> int:
    """``rag finetune train``."""
    from app.finetune.train import run_training
    from app.finetune.train_config import resolve_config

    config = resolve_config(
        args.output,
        _given(args, {name: name for name in _TRAIN_FIELDS}),
        data_overrides=_given(args, _DATA_FIELDS),
        governor_overrides=_given(args, _GOVERNOR_FIELDS),
        resume=args.resume,
    )
    output = run_training(config, resume=args.resume)
    print(f"adapter saved to {output}", file=sys.stderr)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """``rag finetune merge``."""
    from app.finetune.merge import merge_adapter

    output = merge_adapter(args.adapter, args.output, model=args.model, dtype=args.dtype)
    print(f"merged model saved to {output}", file=sys.stderr)
    return 0


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    """The flags the user actually passed, renamed to config fields."""
    return {
        field: getattr(args, flag)
        for flag, field in names.items()
        if getattr(args, flag) is not None
    }
