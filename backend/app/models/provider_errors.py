"""Turns a remote provider's failure into one ``ModelUnavailable`` with a message a user can act on.

The OpenAI and Anthropic SDKs raise parallel exception trees (status errors with a code, connection
errors, time-outs); each adapter catches its SDK's classes and words the result here, so both
providers explain a bad key, a missing model or an outage the same way. Retries on 429 / 5xx /
connection errors have already happened inside the SDK (its ``max_retries``) by the time these run.

The messages reach API clients (``/ready``, ``/api/chat``), so they carry the provider, the status
and fixed text only: what the provider answered (which a gateway may fill with the key it was
sent) and its address go to the server log, never to a client.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.core.errors import ModelUnavailable
from app.core.logger import get_logger

log = get_logger(__name__)


def status_failure(
    provider: str,
    status: int,
    body: object,
    *,
    key_setting: str,
    model_setting: str,
) -> ModelUnavailable:
    """The provider answered with an error status (after the SDK's retries, for 429 and 5xx).

    ``body`` is the decoded error body the SDK kept; both providers put the human-readable text
    at ``error.message`` (or ``message`` once the SDK has unwrapped ``error``). It is logged.
    """
    log.warning("%s answered %d: %s", provider, status, _message(body))
    if status in (401, 403):
        message = f"{provider} rejected the API key ({status}). Check {key_setting}."
    elif status == 404:
        message = (
            f"{provider} does not know the model or address ({status}). Check {model_setting}."
        )
    elif status == 429:
        message = f"{provider} is rate-limiting requests (429) and retries did not help."
    elif status >= 500:
        message = f"{provider} failed ({status}) and retries did not help."
    else:
        message = f"{provider} refused the request ({status}); the server log has its answer."
    return ModelUnavailable(message, params={"provider": provider, "status": status})


def connection_failure(provider: str, address: str, *, timed_out: bool) -> ModelUnavailable:
    """The provider could not be reached, or did not answer in time; the address is logged."""
    what = "did not answer in time" if timed_out else "could not be reached"
    log.warning("%s at %s %s", provider, address, what)
    return ModelUnavailable(f"{provider} {what}.", params={"provider": provider})


def _message(body: object) -> str:
    error = body.get("error", body) if isinstance(body, Mapping) else body
    message = error.get("message") if isinstance(error, Mapping) else error
    text = message.strip() if isinstance(message, str) else ""
    return text[:500] or "no details"
