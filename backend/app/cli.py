"""The ``rag`` command line: serve, ingest, search, ask, manage documents, fine-tune."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.core.errors import RagError
from app.core.logger import setup_logging
from app.finetune.cli import register as register_finetune


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command sets ``func(args) -> exit code``."""
    parser = argparse.ArgumentParser(
        prog="rag", description="Korean-first RAG on PostgreSQL + pgvector, and LoRA fine-tuning."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG | INFO | WARNING | ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_finetune(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "WARNING")
    try:
        return int(args.func(args) or 0)
    except RagError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
