"""Domain errors raised by the pipelines, retriever and model adapters.

The tree, and the HTTP status each maps to in ``main.py``::

    RagError                     500  base class, never raised directly
    ├── InvalidInput             422  the request is well-formed but its content is not acceptable
    ├── NotFound                 404  a document, collection or adapter that does not exist
    ├── Unsupported              415  a file type or format the indexer cannot read
    ├── TooLarge                 413  an upload or a request over a configured limit
    ├── Conflict                 409  the request clashes with the current state
    ├── Unauthorized             401  no API key, or one that is unknown or revoked
    ├── Forbidden                403  the key's role or collections do not allow the request
    ├── RateLimited              429  more requests than the key's rate allows (``Retry-After``)
    └── Unavailable              503  a dependency is down or not configured
        ├── DatabaseUnavailable  503  PostgreSQL cannot be reached
        └── ModelUnavailable     503  an LLM / embedding provider is missing, misconfigured or failing

Every error carries a stable machine-readable ``code``, a human-readable message and, where the
message names values (a file name, a limit), the same values as ``params``: clients word the
message in their own language from the code and fill it in from ``params``.
"""

from __future__ import annotations

# Values a client puts into its own wording of an error: names, counts, limits.
ErrorParams = dict[str, str | int | float]


# Sizes are shown in the unit of the settings that bound them (API_MAX_UPLOAD_MB).
_MB = 1024 * 1024


class RagError(Exception):
    """Base class of every error the application raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, params: ErrorParams | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.params: ErrorParams = dict(params or {})
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries (a 401's challenge, a 429's ``Retry-After``)."""
        return {}


class InvalidInput(RagError):
    """The request is well-formed but its content is not acceptable."""

    status_code = 422
    code = "invalid_input"


class NotFound(RagError):
    """The named resource does not exist."""

    status_code = 404
    code = "not_found"


class Unsupported(RagError):
    """A file type or format that cannot be read."""

    status_code = 415
    code = "unsupported_type"


class TooLarge(RagError):
    """An upload or a request over a configured limit."""

    status_code = 413
    code = "too_large"

    @classmethod
    def file(cls, name: str, size_bytes: int, limit_bytes: int) -> TooLarge:
        """A file of ``size_bytes`` over the per-file limit (``API_MAX_UPLOAD_MB``)."""
        return cls(
            f"{name} is {size_bytes / _MB:.1f} MB; the limit is {limit_bytes / _MB:g} MB.",
            code="file_too_large",
        )


class Conflict(RagError):
    """The request clashes with the current state of a resource."""

    status_code = 409
    code = "conflict"


class Unavailable(RagError):
    """A dependency is down or not configured."""

    status_code = 503
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """PostgreSQL cannot be reached."""

    code = "database_unavailable"


class ModelUnavailable(Unavailable):
    """An LLM or embedding provider is missing, misconfigured or failing."""

    code = "model_unavailable"


class Unauthorized(RagError):
    """The request carries no API key, or one that is unknown or revoked."""

    status_code = 401
    code = "auth_required"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(RagError):
    """The caller's key does not allow this request."""

    status_code = 403
    code = "forbidden"


class RateLimited(RagError):
    """The caller sent more requests of one kind than its rate allows."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, params={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}
