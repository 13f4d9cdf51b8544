"""A small client of a running ``rag`` server's HTTP API, for the commands that ask the server
(``rag generate``, ``rag models``) instead of loading models in their own process."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.config import APISettings
from app.core.errors import RagError, Unavailable

# Writing reviews on a CPU, or unloading an adapter that waits for long generations, takes a while.
TIMEOUT_S = 600.0


class ServerError(RagError):
    """The server answered with an error: its status, code and message, as it sent them."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


def default_server(api: APISettings) -> str:
    """The server ``rag serve`` starts with these settings (a wildcard host is asked locally)."""
    host = "127.0.0.1" if api.host in ("0.0.0.0", "", "::") else api.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{api.port}"


class ApiClient:
    """Synchronous JSON calls to ``server`` (``http://host:port``)."""

    def __init__(
        self, server: str, *, timeout_s: float = TIMEOUT_S, api_key: str | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def get(self, path: str) -> Any:
        """``GET path``: the JSON body."""
        return self._send("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """``POST path`` with a JSON body: the JSON answer."""
        return self._send("POST", path, body)

    def delete(self, path: str) -> None:
        """``DELETE path``."""
        self._send("DELETE", path)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = httpx.request(
                method,
                self.server + path,
                json=body,
                headers=self._headers,
                timeout=self._timeout_s,
            )
        except httpx.TransportError as exc:
            raise Unavailable(
                f"No rag server answers at {self.server} ({exc}); start one with `rag serve`, "
                "pass its address with --server, or use --local to load the model here.",
                code="server_unreachable",
                params={"server": self.server},
            ) from exc
        if response.is_success:
            return response.json() if response.content else None
        raise _error(response)


def _error(response: httpx.Response) -> ServerError:
    try:
        error = response.json()["error"]
        return ServerError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ServerError(response.status_code, "http_error", f"HTTP {response.status_code}")
