"""``/health`` (the process is alive) and ``/ready`` (it can serve: database and models reachable).

Health checks of containers probe ``/ready``: a server whose database is gone answers 503 there,
with the reason (for the embedded PostgreSQL: down or being restarted, and why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ComponentsDep, EmbedderDep, LLMDep, SettingsDep, StoreDep
from app.api.schemas import CheckResult, ReadyResponse
from app.core.errors import DatabaseUnavailable, RagError
from app.retriever.embedded_postgres import embedded_server

router = APIRouter(tags=["health"])

_EMBED_PROBE = "상태 확인"


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: answers as long as the process runs."""
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(
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
        return embedder.name

    async def chat_model() -> str:
        await llm.check()
        return llm.name

    checks = {
        "database": await _check(database()),
        "embedding": await _check(embedding()),
        "llm": await _check(chat_model()),
    }
    ok = all(c.ok for c in checks.values())
    body = ReadyResponse(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


async def _check(probe: Awaitable[str]) -> CheckResult:
    try:
        detail = await probe
    except RagError as exc:
        return CheckResult(ok=False, detail=exc.message)
    return CheckResult(ok=True, detail=detail)
