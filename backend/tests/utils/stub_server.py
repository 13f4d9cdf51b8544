"""A real HTTP server on 127.0.0.1 that plays a remote API, so the vendor SDKs run unmodified.

A test gives it a handler (request → response) that speaks the provider's wire format, and may
queue responses to serve first (a 429, a 500) to watch the SDK retry. Every request is recorded.
Server-sent events are written one event at a time and flushed, as a streaming API does.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class StubRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class StubResponse:
    """What to answer: a JSON body, or a list of server-sent events (``(event or None, data)``)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str | None, Any]] | None = None


def error_response(status: int, message: str, **headers: str) -> StubResponse:
    """An error in the shape both OpenAI and Anthropic use: ``{"error": {"message", "type"}}``."""
    return StubResponse(
        status, {"error": {"message": message, "type": "stub_error"}}, headers=headers
    )


Handler = Callable[[StubRequest], StubResponse]


class StubServer:
    """Serves queued responses first, then whatever ``handler`` returns; records every request."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._queued: deque[StubResponse] = deque()
        self._lock = threading.Lock()
        self.requests: list[StubRequest] = []
        self.url = ""

    def queue(self, *responses: StubResponse) -> None:
        """Serve ``responses`` to the next requests, in order, before the handler."""
        with self._lock:
            self._queued.extend(responses)

    def _respond(self, request: StubRequest) -> StubResponse:
        with self._lock:
            self.requests.append(request)
            if self._queued:
                return self._queued.popleft()
        return self._handler(request)

    @contextmanager
    def running(self) -> Iterator[StubServer]:
        """Listen on a free port while the block runs."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _request_handler(self))
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="stub-server", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def _request_handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: each response ends when the connection closes, which also ends an SSE stream.
        protocol_version = "HTTP/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = StubRequest(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            response = stub._respond(request)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.events is None:
                payload = json.dumps(response.body, ensure_ascii=False).encode()
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for event, data in response.events:
                text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
                head = f"event: {event}\n" if event else ""
                self.wfile.write(f"{head}data: {text}\n\n".encode())
                self.wfile.flush()

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return _Handler
