"""What a browser could be tricked into sending: requests to a rebound host name, and writes from
another origin's page.

- DNS rebinding: a page on ``evil.example`` that re-points its name to 127.0.0.1 reaches this
  server with ``Host: evil.example``. Only the names in ``API_ALLOWED_HOSTS`` are answered (by
  default the loopback names and the address the server listens on).
- Cross-site writes: a form or ``fetch`` from another origin may post a multipart upload without
  any CORS preflight. A request that changes something (any method but GET, HEAD and OPTIONS) is
  refused when its ``Origin`` is neither this server's own nor one of ``API_CORS_ORIGINS``, or,
  without ``Origin``, when the browser marks it ``Sec-Fetch-Site: cross-site``. Programs that send
  neither header (the CLI, curl) are not browsers and pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import Forbidden, RagError
from app.core.logger import get_logger

log = get_logger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


class HostNotAllowed(RagError):
    """The request names a host this server does not answer to."""

    status_code = 400
    code = "host_not_allowed"


class CrossOriginRefused(Forbidden):
    """A write sent by another site's page."""

    code = "cross_origin_refused"


def allowed_hosts(configured: Iterable[str], bind_host: str) -> frozenset[str] | None:
    """The host names to answer to, lower-case without port; None when any is allowed."""
    names = {h.strip().lower().strip("[]") for h in configured if h.strip()}
    if "*" in names:
        return None
    if not names:
        names = set(LOOPBACK_HOSTS)
        if bind_host.strip("[]") not in _ANY_ADDRESS:
            names.add(bind_host.lower().strip("[]"))
    return frozenset(names)


def host_name(host: str) -> str:
    """``Host`` header → the name alone: ``[::1]:8000`` → ``::1``, ``a.b:80`` → ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class BrowserGuard:
    """ASGI middleware refusing rebound host names and cross-origin writes, in the error shape."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: frozenset[str] | None,
        cors_origins: Iterable[str],
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._check(scope, headers)
        except RagError as exc:
            log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), exc.code)
            await _refuse(exc, send)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            raise HostNotAllowed(
                "This server does not answer to the host name this request was sent to; "
                "its administrator can add it to API_ALLOWED_HOSTS."
            )
        if scope["method"] in _SAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin is not None:
            refused = not self._origin_allowed(origin, host)
        else:
            refused = headers.get("sec-fetch-site", "").lower() == "cross-site"
        if refused:
            raise CrossOriginRefused(
                "Requests that change something are not accepted from another site's page."
            )

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        # Same origin: the page was served under the name the request is addressed to. The
        # scheme is not compared, so TLS ended by a proxy in front still counts as the same.
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc == host.strip().lower()


async def _refuse(exc: RagError, send: Send) -> None:
    body = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
