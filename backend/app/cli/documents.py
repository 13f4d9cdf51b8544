"""``rag ingest`` and ``rag docs list|delete``: put files in the index, list and delete documents."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import open_components, print_json

if TYPE_CHECKING:
    from app.retriever.types import IngestResult


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = []
    files: list[list[IngestResult]] = []
    with (
        open_components() as components,
        tqdm(unit="file", desc="files", position=0, disable=args.quiet) as file_bar,
        tqdm(unit="doc", desc="documents", position=1, leave=False, disable=args.quiet) as doc_bar,
    ):

        def progress(done: int, total: int, name: str) -> None:
            file_bar.total = total
            file_bar.n = done
            file_bar.set_postfix_str(name[-40:])
            file_bar.refresh()

        def document_progress(done: int, total: int) -> None:
            # A new file starts its own count.
            if done < doc_bar.n:
                doc_bar.reset()
            doc_bar.total = total
            doc_bar.n = done
            doc_bar.refresh()

        for path in paths:
            path_results = components.indexer.ingest_path(
                path,
                collection=args.collection,
                progress=progress,
                document_progress=document_progress,
                replace=args.sync,
            )
            results += path_results
            files += _by_file(path_results)
    if args.json:
        print_json([dataclasses.asdict(r) for r in results])
    else:
        _print_ingest_summary(files)
        counts = {
            o: sum(r.outcome == o for r in results)
            for o in ("indexed", "unchanged", "removed", "failed")
        }
        documents = ", ".join(f"{n} {o}" for o, n in counts.items())
        failed = sum(_file_outcome(f) == "failed" for f in files)
        print(f"{len(files)} files, {failed} failed; documents: {documents}", file=sys.stderr)
    return 1 if any(r.outcome == "failed" for r in results) else 0


def _by_file(results: Sequence[IngestResult]) -> list[list[IngestResult]]:
    """The ingest results of one path, one list per file (a ``.jsonl`` has one per line)."""
    files: dict[str, list[IngestResult]] = {}
    for result in results:
        files.setdefault(result.source, []).append(result)
    return list(files.values())


def _file_outcome(results: Sequence[IngestResult]) -> str:
    outcomes = {r.outcome for r in results}
    if "failed" in outcomes:
        return "failed"
    return "indexed" if outcomes & {"indexed", "removed"} else "unchanged"


def _print_ingest_summary(files: Sequence[Sequence[IngestResult]]) -> None:
    """One row per file: outcome, documents it holds now, chunks written, file and reason."""
    print(f"{'outcome':9}  {'documents':>9}  {'chunks':>6}  file")
    for results in files:
        outcome = _file_outcome(results)
        documents = sum(r.outcome in ("indexed", "unchanged") for r in results)
        chunks = str(sum(r.chunks for r in results)) if outcome == "indexed" else "-"
        reasons = "; ".join(r.error for r in results if r.error)
        row = f"{outcome:9}  {documents:>9}  {chunks:>6}  {results[0].source}"
        print(f"{row}  {reasons}" if reasons else row)


def cmd_docs_list(args: argparse.Namespace) -> int:
    from app.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
    from app.retriever.vector_store import DocumentKey

    after = DocumentKey(*decode_cursor(args.cursor)) if args.cursor else None
    limit = MAX_LIMIT if args.all else args.limit or DEFAULT_LIMIT
    records = []
    with open_components() as components:
        while True:
            page = components.store.page_documents(args.collection, limit=limit, after=after)
            records += page.documents
            after = page.next_after
            if after is None or not args.all:
                break
    next_cursor = encode_cursor(*after) if after is not None else None
    if args.json:
        print_json(
            {
                "documents": [dataclasses.asdict(r) for r in records],
                "total": page.total,
                "next_cursor": next_cursor,
            }
        )
        return 0
    if not records:
        print("no documents")
    for r in records:
        reason = f"  ({r.error})" if r.error else ""
        print(f"{r.id}  {r.status:8} {r.chunk_count:5} chunks  {r.collection}/{r.source}{reason}")
    if next_cursor is not None:
        print(
            f"{len(records)} of {page.total} documents; the next page: --cursor {next_cursor}, "
            "every one: --all",
            file=sys.stderr,
        )
    return 0


def _page_size(text: str) -> int:
    from app.api.pagination import MAX_LIMIT

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_LIMIT}")
    return value


def cmd_docs_delete(args: argparse.Namespace) -> int:
    with open_components() as components:
        components.indexer.delete(args.document_id, collection=args.collection)
    print(f"deleted {args.document_id}")
    return 0


def add_ingest(commands: Any) -> None:
    """Add ``ingest`` to the ``rag`` command."""
    ingest = commands.add_parser("ingest", help="index files or folders")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--collection", default=None)
    ingest.add_argument("--json", action="store_true", help="print results as JSON")
    ingest.add_argument("--quiet", action="store_true", help="no progress bars")
    ingest.add_argument(
        "--sync",
        action="store_true",
        help="remove the documents a file held before and no longer holds (default: keep them)",
    )
    ingest.set_defaults(func=cmd_ingest)


def add_docs(commands: Any) -> None:
    """Add ``docs`` to the ``rag`` command."""
    docs = commands.add_parser("docs", help="list or delete documents")
    docs_commands = docs.add_subparsers(dest="docs_command", required=True, metavar="ACTION")
    docs_list = docs_commands.add_parser("list", help="list documents and their status")
    docs_list.add_argument("--collection", default=None)
    pages = docs_list.add_mutually_exclusive_group()
    pages.add_argument(
        "--limit", type=_page_size, default=None, help="documents per page (default 100, max 500)"
    )
    pages.add_argument("--all", action="store_true", help="every document, page after page")
    docs_list.add_argument("--cursor", default=None, help="start where a previous page ended")
    docs_list.add_argument("--json", action="store_true")
    docs_list.set_defaults(func=cmd_docs_list)
    docs_delete = docs_commands.add_parser("delete", help="delete a document by id")
    docs_delete.add_argument("document_id", metavar="ID")
    docs_delete.add_argument(
        "--collection",
        default=None,
        help="the document's collection (needed when several collections hold the id)",
    )
    docs_delete.set_defaults(func=cmd_docs_delete)
