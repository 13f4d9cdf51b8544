"""``rag serve`` and ``rag worker``: the API server and the background-job worker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    from app.jobs.store import JobStore
    from app.retriever.indexer import Indexer


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = get_settings()
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    print(f"rag: serving on http://{host}:{port} (API docs at /docs)", file=sys.stderr)
    # Off loopback, the app refuses to start without API keys (docs/security.md).
    uvicorn.run(create_app(settings, bind_host=host), host=host, port=port, log_level="warning")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import threading

    from app.jobs import finetune, ingest, queue
    from app.jobs.worker import run_worker

    settings = (
        Settings.model_validate_json(sys.stdin.read()) if args.settings_stdin else get_settings()
    )
    concurrency = args.concurrency or settings.jobs.concurrency
    kinds = _kinds(args.queues)
    with _worker_parts(settings, args.schema, indexing=ingest.KIND in kinds) as parts:
        database_url, jobs, indexer = parts
        stopping = threading.Event()
        app = queue.worker_app(database_url, args.schema, pool_max=concurrency + 2)
        retry_wait_s = settings.jobs.retry_wait_s
        grace_s = settings.jobs.shutdown_grace_s
        if indexer is not None:
            runner = ingest.IngestRunner(jobs, indexer, stopping)
            queue.register(app, ingest.KIND, runner.run, retry_wait_s=retry_wait_s)
        if finetune.KIND in kinds:
            trainer = finetune.FinetuneRunner(
                jobs, settings.finetune, stopping, log_level=settings.api.log_level
            )
            queue.register(app, finetune.KIND, trainer.run, retry_wait_s=retry_wait_s)
            # Time for the training process to save its checkpoint.
            grace_s = max(grace_s, settings.finetune.stop_grace_s + 5)
        print(
            f"rag: worker running up to {concurrency} jobs at once ({', '.join(kinds)})",
            file=sys.stderr,
        )
        run_worker(
            app,
            settings.jobs,
            concurrency=concurrency,
            stopping=stopping,
            kinds=kinds,
            grace_s=grace_s,
            parent_pid=args.parent_pid,
        )
    return 0


@contextmanager
def _worker_parts(
    settings: Settings, schema: str, *, indexing: bool
) -> Iterator[tuple[str, JobStore, Indexer | None]]:
    """The database, the job store and, for a worker that indexes, the indexer. A worker that
    only trains loads no embedding model: its jobs run in training processes of their own."""
    from app.components import Components
    from app.jobs.store import JobStore
    from app.retriever.embedded_postgres import resolve_database_url

    if indexing:
        components = Components(settings, schema=schema)
        try:
            yield components.database_url, components.jobs, components.indexer
        finally:
            components.close()
        return
    database_url = resolve_database_url(settings.database)
    jobs = JobStore(
        database_url,
        schema=schema,
        pool_max=settings.database.pool_max,
        connect_timeout_s=settings.database.connect_timeout_s,
    )
    jobs.open()
    try:
        yield database_url, jobs, None
    finally:
        jobs.close()


def _kinds(queues: str | None) -> tuple[str, ...]:
    from app.jobs.queue import KINDS

    if queues is None:
        return KINDS
    kinds = tuple(dict.fromkeys(q.strip() for q in queues.split(",") if q.strip()))
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise SystemExit(f"rag worker: --queues takes some of {', '.join(KINDS)}, got {queues!r}")
    return kinds


def add_serve(commands: Any) -> None:
    """Add ``serve`` to the ``rag`` command."""
    serve = commands.add_parser("serve", help="run the API server (and the web UI if built)")
    serve.add_argument("--host", default=None, help="interface (default API_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default API_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)


def add_worker(commands: Any) -> None:
    """Add ``worker`` to the ``rag`` command."""
    worker = commands.add_parser(
        "worker", help="run background jobs (uploads' indexing, fine-tuning)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default JOBS_CONCURRENCY)"
    )
    worker.add_argument("--schema", default="rag", help="database schema of the store")
    worker.add_argument(
        "--queues",
        default=None,
        help="comma-separated job kinds to run: ingest, finetune (default: both)",
    )
    # Used by the server for the workers it starts itself.
    worker.add_argument("--settings-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
