"""The ``rag`` command line: serve, work jobs, ingest, search, ask, manage documents and jobs, fine-tune."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.auth.cli import register as register_keys
from app.cli import documents, jobs, reviews, search, server
from app.cli.common import open_key_store
from app.core.errors import RagError
from app.core.logger import setup_logging
from app.finetune.cli import register as register_finetune

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command sets ``func(args) -> exit code``."""
    parser = argparse.ArgumentParser(
        prog="rag", description="Korean-first RAG on PostgreSQL + pgvector, and LoRA fine-tuning."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG | INFO | WARNING | ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order here is the order of `rag --help`.
    server.add_serve(commands)
    documents.add_ingest(commands)
    server.add_worker(commands)
    jobs.add_jobs(commands)
    search.add_search(commands)
    search.add_ask(commands)
    documents.add_docs(commands)
    reviews.add_generate(commands)
    reviews.add_models(commands)
    register_keys(commands, open_key_store)
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
