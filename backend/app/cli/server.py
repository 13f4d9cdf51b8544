"""``rag serve`` and ``rag worker``: the API server and the background-job worker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.core.config import Settings, get_settings


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


def add_serve(commands: Any) -> None:
    """Add ``serve`` to the ``rag`` command."""
    serve = commands.add_parser("serve", help="run the API server (and the web UI if built)")
    serve.add_argument("--host", default=None, help="interface (default API_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default API_PORT, 8000)")
    serve.set_defaults(func=cmd_serve)


def add_worker(commands: Any) -> None:
    """Add ``worker`` to the ``rag`` command."""
    worker = commands.add_parser("worker", help="run background jobs (uploads' indexing)")
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default JOBS_CONCURRENCY)"
    )
    worker.add_argument("--schema", default="rag", help="database schema of the store")
    # Used by the server for the workers it starts itself.
    worker.add_argument("--settings-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
