"""Domain errors raised by the pipelines, retriever and model adapters.

The tree, and the HTTP status each maps to in ``main.py``::

    RagError                     500  base class, never raised directly
    ├── InvalidInput             422  the request is well-formed but its content is not acceptable
    ├── NotFound                 404  a document, collection or adapter that does not exist
    ├── Unsupported              415  a file type or format the indexer cannot read
    ├── TooLarge                 413  an upload or a request over a configured limit
    ├── Conflict                 409  the request clashes with the current state
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
