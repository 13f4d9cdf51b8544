"""The ``rag`` command line: serve, ingest, search, ask, manage documents, fine-tune."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.config import Settings, get_settings
from app.core.errors import RagError
from app.core.logger import setup_logging
from app.finetune.cli import register as register_finetune

if TYPE_CHECKING:
    from app.pipelines.rag import Source
    from app.retriever.types import IngestResult

_MODES = ("hybrid", "dense", "sparse")


@contextmanager
def _components() -> Iterator[Any]:
    from app.components import Components

    components = Components(get_settings())
    try:
        yield components
    finally:
        components.close()


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = get_settings()
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    print(f"rag: serving on http://{host}:{port} (API docs at /docs)", file=sys.stderr)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = []
    files: list[list[IngestResult]] = []
    with _components() as components, tqdm(unit="file", disable=args.quiet) as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(name[-40:])
            bar.refresh()

        for path in paths:
            path_results = components.indexer.ingest_path(
                path, collection=args.collection, progress=progress
            )
            results += path_results
            files += _by_file(path_results)
    if args.json:
        _print_json([dataclasses.asdict(r) for r in results])
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


def cmd_search(args: argparse.Namespace) -> int:
    from app.api.routers.search import to_search_result

    with _components() as components:
        hits = components.retriever.search(
            args.query,
            top_k=args.top_k,
            mode=args.mode,
            collection=args.collection,
        )
    if args.json:
        _print_json({"results": [to_search_result(h).model_dump(mode="json") for h in hits]})
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        title = hit.metadata.get("title") or hit.metadata.get("source") or hit.document_id
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank:2}. [{hit.score:.4f}] {title}  ({hit.document_id})\n    {snippet}")
    return 0


_PAGE_WORDS = {"page": "p.", "slide": "slide", "sheet": "sheet"}


def _citation_line(source: Source) -> str:
    """``[1] 휴가규정 — 규정/휴가규정.pdf · p. 3 (doc_…)``: the file and where in it."""
    where = source.source or source.filename
    if source.page is not None and source.page_unit is not None:
        pages = f"{source.page}–{source.page_end}" if source.page_end else str(source.page)
        where += f" · {_PAGE_WORDS[source.page_unit]} {pages}"
    if source.page_label:
        where += f": {source.page_label}" if source.page is not None else f" · {source.page_label}"
    return f"[{source.number}] {source.title} — {where} ({source.document_id})"


def cmd_ask(args: argparse.Namespace) -> int:
    from app.pipelines.rag import DoneEvent, RetrievalOptions, SourcesEvent, TokenEvent

    settings: Settings = get_settings()
    options = RetrievalOptions(
        top_k=args.top_k or settings.retrieval.top_k,
        mode=args.mode or settings.retrieval.mode,
        collection=args.collection,
    )
    with _components() as components:
        pipeline = components.rag_pipeline()
        if args.json:
            result = asyncio.run(pipeline.answer(args.question, options))
            _print_json(
                {
                    "answer": result.answer,
                    "sources": [dataclasses.asdict(s) for s in result.sources],
                    "cited": result.cited,
                }
            )
            return 0

        async def stream() -> None:
            sources = []
            async for event in pipeline.stream(args.question, options):
                if isinstance(event, SourcesEvent):
                    sources = event.sources
                elif isinstance(event, TokenEvent):
                    print(event.text, end="", flush=True)
                elif isinstance(event, DoneEvent):
                    print()
            for s in sources:
                print(_citation_line(s))

        asyncio.run(stream())
    return 0


def cmd_docs_list(args: argparse.Namespace) -> int:
    with _components() as components:
        records = components.store.list_documents(args.collection)
    if args.json:
        _print_json({"documents": [dataclasses.asdict(r) for r in records]})
        return 0
    if not records:
        print("no documents")
    for r in records:
        reason = f"  ({r.error})" if r.error else ""
        print(f"{r.id}  {r.status:8} {r.chunk_count:5} chunks  {r.collection}/{r.source}{reason}")
    return 0


def cmd_docs_delete(args: argparse.Namespace) -> int:
    with _components() as components:
        components.indexer.delete(args.document_id)
    print(f"deleted {args.document_id}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from app.models.factory import build_llm_client
    from app.pipelines.reviews import ReviewRequest, review_writer_for

    settings = get_settings()
    request = ReviewRequest(
        rating=args.rating,
        scale=args.scale,
        subject=args.subject,
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        adapter=args.adapter,
    )
    llm = build_llm_client(settings.llm)

    async def write() -> list[Any]:
        try:
            return await review_writer_for(llm, settings.llm).generate(request)
        finally:
            await llm.aclose()

    reviews = asyncio.run(write())
    if args.json:
        _print_json(
            {
                "reviews": [dataclasses.asdict(r) for r in reviews],
                "model": llm.name,
                "adapter": args.adapter,
            }
        )
        return 0
    for number, review in enumerate(reviews, start=1):
        print(f"{number}. [{review.rating}/{args.scale}] {review.text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each command sets ``func(args) -> exit code``."""
    parser = argparse.ArgumentParser(
        prog="rag", description="Korean-first RAG on PostgreSQL + pgvector, and LoRA fine-tuning."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG | INFO | WARNING | ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API server (and the web UI if built)")
    serve.add_argument("--host", default=None, help="interface (default API_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default API_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)

    ingest = commands.add_parser("ingest", help="index files or folders")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--collection", default=None)
    ingest.add_argument("--json", action="store_true", help="print results as JSON")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)

    search = commands.add_parser("search", help="search the index (no LLM)")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--mode", choices=_MODES, default="hybrid")
    search.add_argument("--collection", default=None)
    search.add_argument("--json", action="store_true", help="print the /api/search objects")
    search.set_defaults(func=cmd_search)

    ask = commands.add_parser("ask", help="answer a question from the documents")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None)
    ask.add_argument("--mode", choices=_MODES, default=None)
    ask.add_argument("--collection", default=None)
    ask.add_argument("--json", action="store_true", help="print answer and sources as JSON")
    ask.set_defaults(func=cmd_ask)

    docs = commands.add_parser("docs", help="list or delete documents")
    docs_commands = docs.add_subparsers(dest="docs_command", required=True, metavar="ACTION")
    docs_list = docs_commands.add_parser("list", help="list documents and their status")
    docs_list.add_argument("--collection", default=None)
    docs_list.add_argument("--json", action="store_true")
    docs_list.set_defaults(func=cmd_docs_list)
    docs_delete = docs_commands.add_parser("delete", help="delete a document by id")
    docs_delete.add_argument("document_id", metavar="ID")
    docs_delete.set_defaults(func=cmd_docs_delete)

    generate = commands.add_parser("generate", help="write reviews for a star rating")
    generate.add_argument("--rating", type=int, required=True, help="stars, 1..scale")
    generate.add_argument("--scale", type=int, choices=(5, 10), default=10)
    generate.add_argument("--subject", default=None, help="movie or product name")
    generate.add_argument("--n", type=int, default=1, help="how many reviews (1-8)")
    generate.add_argument("--adapter", default=None, help="LoRA adapter name (default: base)")
    generate.add_argument("--temperature", type=float, default=0.9)
    generate.add_argument("--top-p", type=float, default=0.95)
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--json", action="store_true", help="print the /api/reviews object")
    generate.set_defaults(func=cmd_generate)

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
