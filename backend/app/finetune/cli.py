"""``rag finetune``: train, merge, plan and evaluate adapters.

Only argument parsing lives here; torch, transformers and peft are imported inside the commands,
so ``rag serve`` starts without them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from app.finetune.evaluate import add_parser as add_eval_parser
from app.finetune.plan_cli import add_parser as add_plan_parser
from app.recipes.data import DataOptions
from app.recipes.governor_settings import GovernorSettings
from app.recipes.settings_fields import add_arguments, cli_fields, given, group_of
from app.recipes.train_config import TrainConfig

# Every option's default is None so that "not given" is visible on --resume.
_TRAIN_FIELDS = cli_fields(TrainConfig)
_DATA_FIELDS = cli_fields(DataOptions)
_GOVERNOR_FIELDS = cli_fields(GovernorSettings)


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
    """``train``'s options come from the fields of ``TrainConfig``, ``DataOptions`` and
    ``GovernorSettings``; only ``--output`` and ``--resume`` are the command's own."""
    p = commands.add_parser(
        "train",
        help="train a LoRA / QLoRA adapter that writes a review for a given rating",
        description="Train an adapter on star-rated reviews. Interrupted runs continue with "
        "`rag finetune train --output DIR --resume`.",
    )
    groups: dict[str, Any] = {}
    ungrouped = [f for f in _TRAIN_FIELDS if group_of(f) is None]
    add_arguments(p, TrainConfig, ungrouped, groups)
    p.add_argument("--output", required=True, type=Path, help="folder for the adapter and logs")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --output")
    add_arguments(p, DataOptions, _DATA_FIELDS, groups)
    add_arguments(p, TrainConfig, [f for f in _TRAIN_FIELDS if f not in ungrouped], groups)
    add_arguments(p, GovernorSettings, _GOVERNOR_FIELDS, groups)
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
    """``rag finetune train``. SIGTERM or Ctrl-C stop it after the current step, at a
    checkpoint (exit 0); a second Ctrl-C ends it at once."""
    from app.finetune.run_files import resume_command
    from app.finetune.train import run_training

    config = train_config_from_args(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            # The next Ctrl-C gets the default action: the process ends there and then.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            print(
                "stopping after this step at a checkpoint (Ctrl-C again to quit now)",
                file=sys.stderr,
            )
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        output = run_training(config, resume=args.resume, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if output is None:
        print(f"stopped; continue with: {resume_command(args.output)}", file=sys.stderr)
    else:
        print(f"adapter saved to {output}", file=sys.stderr)
    return 0


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from the parsed ``train`` flags: the flags given on a new run, the
    saved config (with any pacing flags given) on ``--resume``."""
    from app.finetune.resume_config import resolve_config

    return resolve_config(
        args.output,
        given(args, _TRAIN_FIELDS),
        data_overrides=given(args, _DATA_FIELDS),
        governor_overrides=given(args, _GOVERNOR_FIELDS),
        resume=args.resume,
    )


def cmd_merge(args: argparse.Namespace) -> int:
    """``rag finetune merge``."""
    from app.finetune.merge import merge_adapter

    output = merge_adapter(args.adapter, args.output, model=args.model, dtype=args.dtype)
    print(f"merged model saved to {output}", file=sys.stderr)
    return 0
