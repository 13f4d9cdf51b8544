"""``/health`` (the process is alive) and ``/ready`` (it can serve: database and models reachable).

Health checks of containers probe ``/ready``: a server whose database is gone answers 503 there,
with the reason (for the embedded PostgreSQL: down or being restarted, and why). Both stay open,
so the reasons, which name where the database lives, are shown to admins only; anyone else reads
a fixed sentence per check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ComponentsDep, EmbedderDep, LLMDep, SettingsDep, StoreDep
from app.api.schemas import CheckResult, ReadyResponse
from app.auth.authenticator import Authenticator
from app.auth.redact import model_name_for
from app.auth.roles import Caller, Role
from app.core.errors import DatabaseUnavailable, RagError
from app.retriever.embedded_postgres import embedded_server

router = APIRouter(tags=["health"])

_EMBED_PROBE = "상태 확인"
# What a caller who is not an admin reads of a failed check.
_FAILED = {
    "database": "The database does not answer.",
    "embedding": "The embedding model cannot be used.",
    "llm": "The chat model cannot be used.",
}


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: answers as long as the process runs."""
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(
    request: Request,
    settings: SettingsDep,
    llm: LLMDep,
    embedder: EmbedderDep,
    store: StoreDep,
    components: ComponentsDep,
) -> JSONResponse:
    """Readiness: the database answers and the embedding and chat models can be used."""

    async def database() -> str:
        restarts = 0
        if components.database_mode == "embedded":
            server = embedded_server(settings.database)
            health = server.health
            if health.state != "up":
                # The supervisor knows why at once; a ping would only wait for its timeout.
                raise DatabaseUnavailable(
                    f"The embedded PostgreSQL is {health.state}: "
                    f"{health.reason or 'it was not started'}."
                )
            restarts = health.restarts
        await asyncio.to_thread(store.ping)
        if restarts:
            times = "once" if restarts == 1 else f"{restarts} times"
            return f"PostgreSQL answers (the embedded server was restarted {times})"
        return "PostgreSQL answers"

    async def embedding() -> str:
        await asyncio.to_thread(embedder.embed_query, _EMBED_PROBE)
        return model_name_for(viewer, embedder.name) or ""

    async def chat_model() -> str:
        await llm.check()
        return model_name_for(viewer, llm.name) or ""

    viewer = await _viewer(request)
    checks = {
        name: await _check(probe, None if viewer.is_admin else _FAILED[name])
        for name, probe in (("database", database), ("embedding", embedding), ("llm", chat_model))
    }
    ok = all(c.ok for c in checks.values())
    body = ReadyResponse(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


# A caller without a working key sees what the least role sees.
_ANONYMOUS = Caller(id="anonymous", name="anonymous", role=Role.reader, collections=frozenset())


async def _viewer(request: Request) -> Caller:
    """Who asks, when they say so; anyone else sees what an unknown caller may see."""
    authenticator: Authenticator = request.app.state.authenticator
    headers = {name: request.headers[name] for name in request.headers}
    try:
        return await run_in_threadpool(authenticator.caller, headers)
    except RagError:
        return _ANONYMOUS


async def _check(probe: Callable[[], Awaitable[str]], failed: str | None) -> CheckResult:
    """The probe's outcome; ``failed``, when given, stands for the reason of a failure."""
    try:
        detail = await probe()
    except RagError as exc:
        return CheckResult(ok=False, detail=failed or exc.message)
    return CheckResult(ok=True, detail=detail)
