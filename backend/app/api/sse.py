"""Server-Sent Events: one way to frame events, and one way to report an error mid-stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from app.core.errors import ErrorParams, RagError
from app.core.logger import get_logger

log = get_logger(__name__)

# Proxies (nginx) buffer responses unless told not to; events must reach the browser as they happen.
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def format_event(event: str, data: Any) -> str:
    """One SSE frame: ``event:`` line, one JSON ``data:`` line, blank line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def error_payload(
    code: str, message: str, params: ErrorParams | None = None
) -> dict[str, dict[str, Any]]:
    """The error body used everywhere in the API; ``params`` only when the message names values."""
    error: dict[str, Any] = {"code": code, "message": message}
    if params:
        error["params"] = params
    return {"error": error}


async def _guarded(events: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for frame in events:
            yield frame
    except RagError as exc:
        yield format_event("error", error_payload(exc.code, exc.message, exc.params))
    except Exception:
        # The status line is already sent: the error travels as an event, never as a trace.
        log.exception("stream failed")
        yield format_event("error", error_payload("internal_error", "The answer stream failed."))


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """Stream pre-formatted frames; failures after the first byte become an ``error`` event."""
    return StreamingResponse(_guarded(events), media_type="text/event-stream", headers=_HEADERS)
