"""The ``rag`` command line: serve, work jobs, ingest, search, ask, manage documents and jobs, fine-tune."""

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
    with (
        _components() as components,
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


def cmd_worker(args: argparse.Namespace) -> int:
    import threading

    from app.components import Components
    from app.jobs import ingest, queue
    from app.jobs.worker import run_worker

    settings = (
        Settings.model_validate_json(sys.stdin.read()) if args.settings_stdin else get_settings()
    )
    concurrency = args.concurrency or settings.jobs.concurrency
    components = Components(settings, schema=args.schema)
    try:
        stopping = threading.Event()
        runner = ingest.IngestRunner(components.jobs, components.indexer, stopping)
        app = queue.worker_app(components.database_url, args.schema, pool_max=concurrency + 2)
        queue.register(app, ingest.KIND, runner.run, retry_wait_s=settings.jobs.retry_wait_s)
        print(f"rag: worker running up to {concurrency} jobs at once", file=sys.stderr)
        run_worker(
            app,
            settings.jobs,
            concurrency=concurrency,
            stopping=stopping,
            parent_pid=args.parent_pid,
        )
    finally:
        components.close()
    return 0


def _job_line(job: Any) -> str:
    done, total = job.progress["done"], job.progress["total"]
    error = f"  ({job.error['message']})" if job.error else ""
    return (
        f"{job.id}  {job.kind:7} {job.status:9} {done:>6}/{total:<6} "
        f"{job.created_at:%Y-%m-%d %H:%M:%S}{error}"
    )


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with _components() as components:
        page = components.jobs.page(limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(
            {
                "jobs": [dataclasses.asdict(j) for j in page.jobs],
                "total": page.total,
                "next_cursor": page.next_cursor,
            }
        )
        return 0
    if not page.jobs:
        print("no jobs")
    for job in page.jobs:
        print(_job_line(job))
    if page.next_cursor is not None:
        print(f"{page.total} jobs; more with --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    with _components() as components:
        job = components.jobs.require(args.job_id)
    if args.json:
        _print_json(dataclasses.asdict(job))
        return 0
    print(_job_line(job))
    for result in job.results:
        error = f"  {result['error']['message']}" if result.get("error") else ""
        print(f"  {result['outcome']:9} {result['chunks']:>6}  {result['filename']}{error}")
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    with _components() as components:
        job = components.jobs.cancel(args.job_id)
    state = "cancelled" if job.status == "cancelled" else "asked to stop"
    print(f"{job.id} {state}")
    return 0


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
    from app.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
    from app.retriever.vector_store import DocumentKey

    after = DocumentKey(*decode_cursor(args.cursor)) if args.cursor else None
    limit = MAX_LIMIT if args.all else args.limit or DEFAULT_LIMIT
    records = []
    with _components() as components:
        while True:
            page = components.store.page_documents(args.collection, limit=limit, after=after)
            records += page.documents
            after = page.next_after
            if after is None or not args.all:
                break
    next_cursor = encode_cursor(*after) if after is not None else None
    if args.json:
        _print_json(
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
    with _components() as components:
        components.indexer.delete(args.document_id)
    print(f"deleted {args.document_id}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    body = {
        "rating": args.rating,
        "scale": args.scale,
        "subject": args.subject,
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "adapter": args.adapter,
    }
    if args.local:
        answer, adapters = _generate_here(body)
    else:
        client = _api_client(args)
        answer = client.post("/api/reviews/generate", body)
        adapters = [] if args.adapter else _adapter_names(client.get("/api/models"))
    if args.json:
        _print_json(answer)
        return 0
    for number, review in enumerate(answer["reviews"], start=1):
        print(f"{number}. [{review['rating']}/{args.scale}] {review['text']}")
    print(_written_by(answer, adapters), file=sys.stderr)
    return 0


def _generate_here(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``rag generate --local``: the review model of the settings, loaded in this process."""
    from app.models.factory import build_review_model
    from app.pipelines.reviews import ReviewRequest, review_writer_for, validate_request

    request = ReviewRequest(**body)
    # Before the model is loaded: a request no model can write for is refused at once.
    validate_request(request)
    reviews = build_review_model(get_settings())

    async def write() -> dict[str, Any]:
        try:
            writer = review_writer_for(reviews, request)
            written = await writer.generate(request)
        finally:
            await reviews.aclose()
        return {
            "reviews": [dataclasses.asdict(r) for r in written],
            "model": writer.model_name,
            "adapter": request.adapter,
        }

    return asyncio.run(write()), list(reviews.adapters())


def _written_by(answer: dict[str, Any], adapters: Sequence[str]) -> str:
    """Which model and adapter wrote the reviews, and the adapters the base left unused."""
    if answer["adapter"]:
        return f"written by {answer['model']} with the adapter {answer['adapter']!r}"
    line = f"written by {answer['model']} without an adapter (the base model)"
    if adapters:
        line += f"; loaded adapters: {', '.join(adapters)} (choose one with --adapter)"
    return line


def _api_client(args: argparse.Namespace) -> Any:
    from app.api_client import ApiClient, default_server

    return ApiClient(args.server or default_server(get_settings().api))


def _adapter_names(models: dict[str, Any]) -> list[str]:
    return [adapter["name"] for adapter in models["reviews"]["adapters"]]


def cmd_models_list(args: argparse.Namespace) -> int:
    models = _api_client(args).get("/api/models")
    if args.json:
        _print_json(models)
        return 0
    print(f"chat     {_role_line(models['chat'])}")
    reviews = models["reviews"]
    shared = ", the chat model's base" if reviews["shares_chat_model"] else ""
    print(f"reviews  {_role_line(reviews)}{shared}")
    if not reviews["adapters"] and reviews["loads_adapters"]:
        print("no adapters (load one: rag models load NAME PATH)")
    for adapter in reviews["adapters"]:
        print(f"  {adapter['name']}  [{adapter['origin']}]  {adapter['path']}")
        for line in _run_lines(adapter["run"]):
            print(f"      {line}")
    return 0


def cmd_models_load(args: argparse.Namespace) -> int:
    # The server reads the folder: a relative path means the one under this directory.
    path = str(Path(args.path).expanduser().resolve())
    adapter = _api_client(args).post("/api/models/adapters", {"name": args.name, "path": path})
    if args.json:
        _print_json(adapter)
        return 0
    print(f"loaded {adapter['name']} from {adapter['path']}")
    for line in _run_lines(adapter["run"]):
        print(f"  {line}")
    return 0


def cmd_models_unload(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    _api_client(args).delete(f"/api/models/adapters/{quote(args.name, safe='')}")
    print(f"unloaded {args.name}")
    return 0


def _role_line(role: dict[str, Any]) -> str:
    if role["name"] is None:
        return f"{role['provider']} (off)"
    loaded = ", ".join(v for v in (role["device"], role["dtype"], role["quantization"]) if v)
    return f"{role['provider']}  {role['name']}" + (f" ({loaded})" if loaded else "")


def _run_lines(run: dict[str, Any] | None) -> list[str]:
    """How an adapter was trained and scored, from its run record."""
    if run is None:
        return ["no run record (run.json)"]
    trained = [run["method"] or "?"]
    if run["data"]:
        examples = f"{run['examples']:,} reviews from " if run["examples"] is not None else ""
        trained.append(f"{examples}{Path(run['data']).name}")
    if run["steps"] is not None:
        trained.append(f"{run['steps']:,}/{run['total_steps'] or '?'} steps")
    if run["final_loss"] is not None:
        trained.append(f"final loss {run['final_loss']:.4g}")
    trained.append(f"finished {run['finished_at']}" if run["finished_at"] else "unfinished")
    lines = [", ".join(trained)]
    scores = run["eval"]
    if scores:
        shown = [
            f"{name.replace('_', ' ')} {value:.3g}"
            for name, value in scores.items()
            if isinstance(value, float)
        ]
        lines.append("eval: " + ", ".join(shown))
    return lines


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
    ingest.add_argument("--quiet", action="store_true", help="no progress bars")
    ingest.set_defaults(func=cmd_ingest)

    worker = commands.add_parser("worker", help="run background jobs (uploads' indexing)")
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default JOBS_CONCURRENCY)"
    )
    worker.add_argument("--schema", default="rag", help="database schema of the store")
    # Used by the server for the workers it starts itself.
    worker.add_argument("--settings-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)

    jobs = commands.add_parser("jobs", help="list, show or cancel background jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    jobs_list = jobs_commands.add_parser("list", help="jobs, newest first")
    jobs_list.add_argument("--limit", type=int, default=20)
    jobs_list.add_argument("--cursor", default=None, help="where the page before ended")
    jobs_list.add_argument("--json", action="store_true")
    jobs_list.set_defaults(func=cmd_jobs_list)
    jobs_show = jobs_commands.add_parser("show", help="one job and its results")
    jobs_show.add_argument("job_id", metavar="ID")
    jobs_show.add_argument("--json", action="store_true")
    jobs_show.set_defaults(func=cmd_jobs_show)
    jobs_cancel = jobs_commands.add_parser("cancel", help="cancel a job")
    jobs_cancel.add_argument("job_id", metavar="ID")
    jobs_cancel.set_defaults(func=cmd_jobs_cancel)

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
    docs_delete.set_defaults(func=cmd_docs_delete)

    generate = commands.add_parser("generate", help="write reviews for a star rating")
    generate.add_argument("--rating", type=int, required=True, help="stars, 1..scale")
    generate.add_argument("--scale", type=int, choices=(5, 10), default=10)
    generate.add_argument("--subject", default=None, help="movie or product name")
    generate.add_argument("--n", type=int, default=1, help="how many reviews (1-8)")
    generate.add_argument(
        "--adapter", default=None, help="LoRA adapter name (default: the base model)"
    )
    generate.add_argument("--temperature", type=float, default=0.9)
    generate.add_argument("--top-p", type=float, default=0.95)
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--json", action="store_true", help="print the /api/reviews object")
    where = generate.add_mutually_exclusive_group()
    where.add_argument(
        "--server", default=None, help="the rag server to ask (default: API_HOST and API_PORT)"
    )
    where.add_argument(
        "--local", action="store_true", help="load the review model in this process instead"
    )
    generate.set_defaults(func=cmd_generate)

    models = commands.add_parser("models", help="the server's models; load or unload adapters")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models_list = models_commands.add_parser("list", help="both models and the loaded adapters")
    models_list.add_argument("--json", action="store_true", help="print the /api/models object")
    models_list.set_defaults(func=cmd_models_list)
    models_load = models_commands.add_parser(
        "load", help="load an adapter folder on the server, no restart"
    )
    models_load.add_argument("name", metavar="NAME", help="what review requests will name")
    models_load.add_argument("path", metavar="PATH", help="the folder rag finetune train wrote")
    models_load.add_argument("--json", action="store_true")
    models_load.set_defaults(func=cmd_models_load)
    models_unload = models_commands.add_parser(
        "unload", help="unload an adapter once the requests using it have finished"
    )
    models_unload.add_argument("name", metavar="NAME")
    models_unload.set_defaults(func=cmd_models_unload)
    for command in (models_list, models_load, models_unload):
        command.add_argument(
            "--server", default=None, help="the rag server (default: API_HOST and API_PORT)"
        )

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
