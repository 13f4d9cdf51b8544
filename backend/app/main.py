"""Creates the FastAPI app: parts opened once in the lifespan, routers bound, one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import get_caller
from app.api.routers import (
    chat,
    documents,
    finetune_datasets,
    finetune_jobs,
    health,
    jobs,
    models,
    reviews,
    search,
    status,
)
from app.api.sse import error_payload
from app.api.streamed_form import MAX_READ_AHEAD_BYTES
from app.auth.authenticator import Authenticator, check_exposure
from app.auth.browser import BrowserGuard, allowed_hosts
from app.auth.rate_limits import RateLimits
from app.auth.store import KeyStore
from app.components import Components
from app.core.config import Settings, get_settings
from app.core.errors import RagError
from app.core.logger import get_logger, setup_logging
from app.jobs.processes import WorkerProcesses

log = get_logger(__name__)

# The built web UI, when present (``make run`` builds it; the Docker image copies it here too).
DEFAULT_FRONTEND_DIR = Path(__file__).resolve().parents[2] / "frontend" / "dist"


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413 in the API's error shape.

    A declared ``Content-Length`` is checked before anything is read; bodies without one (chunked)
    are counted as they stream in, before they fill memory or disk. ``per_path`` gives the paths
    whose bodies have a limit of their own (a training data set) and the limit.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > max_bytes:
            await _body_too_large(BodyTooLarge(max_bytes))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                # FastAPI re-raises HTTPException from body parsing; the handler below shapes it.
                raise BodyTooLarge(max_bytes)
            return message

        await self.app(scope, counted, send)


class BodyTooLarge(HTTPException):
    """A request body over the limit, found before or while it streams in."""

    def __init__(self, max_bytes: int) -> None:
        self.limit_mb = max_bytes // 1024 // 1024
        super().__init__(413, f"The request body is over the limit of {self.limit_mb} MB.")


def _body_too_large(exc: BodyTooLarge) -> JSONResponse:
    payload = error_payload("request_too_large", str(exc.detail), {"limit_mb": exc.limit_mb})
    return JSONResponse(payload, status_code=413)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(_: Request, exc: RagError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        payload = error_payload(exc.code, exc.message, exc.params)
        return JSONResponse(payload, status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        fields = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
            if where and where not in fields:
                fields.append(where)
        message = "Invalid request: " + "; ".join(problems)
        # The field names let a client say which value to fix in its own language.
        params = {"fields": ", ".join(fields)} if fields else None
        return JSONResponse(error_payload("invalid_input", message, params), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return _body_too_large(exc)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_payload(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_payload("internal_error", "An unexpected error occurred; see the server log."),
            status_code=500,
        )


def _mount_frontend(app: FastAPI, frontend_dir: Path) -> None:
    """Serve the built UI at ``/``; unknown non-API paths get ``index.html`` (client-side routes)."""
    root = frontend_dir.resolve()
    index = root / "index.html"

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(path: str) -> FileResponse:
        if path.startswith(("api/", "health", "ready", "docs", "openapi.json")):
            raise StarletteHTTPException(404, f"No route for /{path}.")
        candidate = (root / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(root):
            return FileResponse(candidate)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


def _guard_door(app: FastAPI, components: Components, schema: str, bind_host: str) -> None:
    """The key check for every request, after refusing an exposed server without keys."""
    settings = components.settings
    keys = KeyStore(
        components.database_url, schema, connect_timeout_s=settings.database.connect_timeout_s
    )
    authenticator = Authenticator(keys, settings.auth, bind_host=bind_host)
    if settings.auth.disabled:
        log.warning(
            "AUTH_DISABLED=true: every request is served without a key, as an admin "
            "(listening on %s). Only safe behind something else that authenticates.",
            bind_host,
        )
    else:
        try:
            keys_exist = keys.any_active()
            check_exposure(settings.auth, bind_host, keys_exist)
        except BaseException:
            keys.close()
            raise
        authenticator.fall_back_on(keys_exist)
    app.state.authenticator = authenticator


def create_app(
    settings: Settings | None = None,
    *,
    schema: str = "rag",
    frontend_dir: Path | None = DEFAULT_FRONTEND_DIR,
    bind_host: str | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own settings and a fresh database schema.

    ``bind_host`` is the address the server listens on (default ``API_HOST``): on a non-loopback
    one the app refuses to start without API keys (docs/security.md).
    """
    settings = settings or get_settings()
    bind_host = bind_host or settings.api.host
    # Multipart framing adds a little to the files themselves.
    max_body = int(settings.api.max_upload_mb * settings.api.max_files * 1024 * 1024) + 1024 * 1024
    # A training data set comes alone, under a limit of its own that the upload checks as it
    # writes the file (a clearer error): this one only backs it up.
    dataset_body = (
        settings.finetune.max_dataset_mb * 1024 * 1024 + MAX_READ_AHEAD_BYTES + 1024 * 1024
    )
    setup_logging(settings.api.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = await run_in_threadpool(Components, settings, schema=schema)
        app.state.components = components
        try:
            await run_in_threadpool(_guard_door, app, components, schema, bind_host)
        except BaseException:
            await components.aclose()
            raise
        # A local model loads in seconds to minutes; a bad path or adapter must stop start-up,
        # not surface as a 503 on the first request. Adapters loaded at run time come back here.
        await run_in_threadpool(components.load_models)
        if settings.api.index_sample_corpus:
            await run_in_threadpool(components.index_sample_corpus)
        log.info(
            "ready: llm=%s reviews=%s embedding=%s database=%s",
            settings.llm.provider,
            settings.review_role().provider,
            components.embedder.name,
            components.database_mode,
        )
        # Uploads wait for workers; these are started here so that the server (`make run`,
        # tests) has them without more commands, and stopped before the database closes.
        workers = WorkerProcesses(settings, schema=schema, count=settings.jobs.serve_workers)
        # Training has workers of its own, so that an upload never waits behind a training run.
        trainers = WorkerProcesses(
            settings, schema=schema, count=settings.finetune.workers, kinds=("finetune",)
        )
        await run_in_threadpool(workers.start)
        await run_in_threadpool(trainers.start)
        app.state.worker_processes = workers
        app.state.training_processes = trainers
        try:
            yield
        finally:
            await run_in_threadpool(trainers.stop)
            await run_in_threadpool(workers.stop)
            await run_in_threadpool(app.state.authenticator.close)
            await components.aclose()

    app = FastAPI(
        title="rag",
        summary="Korean-first retrieval-augmented generation on PostgreSQL + pgvector.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    app.state.rate_limits = RateLimits(settings.auth)
    app.include_router(health.router)
    # Every /api route knows its caller; a request that needs a key and has none stops here.
    for module in (
        search,
        chat,
        documents,
        jobs,
        finetune_jobs,
        finetune_datasets,
        status,
        models,
        reviews,
    ):
        app.include_router(module.router, dependencies=[Depends(get_caller)])
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=max_body,
        per_path={finetune_datasets.UPLOAD_PATH: dataset_body},
    )
    # Outermost: a rebound host name or a cross-site write is refused before anything else runs.
    app.add_middleware(
        BrowserGuard,
        hosts=allowed_hosts(settings.api.allowed_hosts, bind_host),
        cors_origins=settings.api.cors_origins,
    )
    if frontend_dir is not None and (frontend_dir / "index.html").is_file():
        _mount_frontend(app, frontend_dir)
    return app
