"""From a request's ``Authorization`` header to a ``Caller``, with a short cache of verified keys.

Who needs a key (docs/security.md, "Who needs a key"):

- ``AUTH_DISABLED=true``: nobody; every request acts as an admin.
- Some key is active: every ``/api`` request needs one.
- No key is active and the server listens on a loopback address: requests are the local user's
  (an admin), except those a reverse proxy forwarded (``Forwarded`` / ``X-Forwarded-For``),
  which could come from anywhere.
- No key is active on any other address: the server does not start (``check_exposure``); if the
  last key is revoked while it runs, every request is refused.

A verified key is trusted for ``AUTH_CACHE_S`` seconds, keyed by a SHA-256 of the whole key, so a
chat does not pay an argon2 verification per request; that some key exists is remembered as long.
So a revoked key takes effect within ``AUTH_CACHE_S`` seconds. That no key exists is never
remembered: the first key created is required from the next request on (a keyless server is a
local one; the query runs on a kept connection, a fraction of a millisecond).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.auth.keys import fingerprint, parse_key, verify_secret
from app.auth.roles import Caller, Role
from app.auth.store import KeyStore
from app.core.config import AuthSettings
from app.core.errors import DatabaseUnavailable, RagError, Unauthorized

LOCAL_USER = Caller(id="local", name="local user", role=Role.admin, collections=None)
UNCHECKED = Caller(id="unchecked", name="AUTH_DISABLED", role=Role.admin, collections=None)
# Past this many entries the cache is emptied: bounded memory whatever keys are sent.
_MAX_CACHED = 10_000
_FORWARDED_HEADERS = ("forwarded", "x-forwarded-for")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address the server binds to) is reachable only locally."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ExposedWithoutKeys(RagError):
    """The server would listen on a non-loopback address with no key to guard it."""

    code = "exposed_without_keys"


def check_exposure(settings: AuthSettings, bind_host: str, keys_exist: bool) -> None:
    """Refuse to serve a non-loopback address without keys, unless auth is switched off."""
    if settings.disabled or keys_exist or is_loopback(bind_host):
        return
    raise ExposedWithoutKeys(
        f"Refusing to listen on {bind_host} without API keys: anyone who can reach it could read "
        "and change every document. Create a key first (`rag keys create --role admin`), "
        "listen on 127.0.0.1, or set AUTH_DISABLED=true if something in front authenticates. "
        "See docs/security.md."
    )


@dataclass(slots=True)
class _Cached:
    caller: Caller
    until: float


class Authenticator:
    """Decides who a request is; thread-safe, shared by every request of the app."""

    def __init__(
        self,
        store: KeyStore,
        settings: AuthSettings,
        *,
        bind_host: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._settings = settings
        self._local = is_loopback(bind_host)
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: dict[str, _Cached] = {}
        self._keys_exist: tuple[bool, float] | None = None

    def close(self) -> None:
        """Close the key store's kept connections (when the app stops)."""
        self._store.close()

    def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a request with these (lower-case) headers; ``Unauthorized`` if none."""
        if self._settings.disabled:
            return UNCHECKED
        authorization = headers.get("authorization")
        if authorization is not None:
            return self._verify(authorization)
        forwarded = any(h in headers for h in _FORWARDED_HEADERS)
        if self._local and not forwarded and not self.keys_exist():
            return LOCAL_USER
        raise Unauthorized(
            "This server needs an API key: send `Authorization: Bearer <key>` "
            "(an admin creates one with `rag keys create`)."
        )

    def known_caller(self, headers: Mapping[str, str]) -> Caller | None:
        """The caller when it is known without the database or argon2 (auth switched off, a key
        verified within ``AUTH_CACHE_S``); ``None`` when ``caller`` must decide."""
        if self._settings.disabled:
            return UNCHECKED
        authorization = headers.get("authorization")
        text = _bearer_text(authorization) if authorization is not None else None
        return self._from_cache(fingerprint(text)) if text is not None else None

    def keys_exist(self) -> bool:
        """Whether some key is active: ``True`` as the database said at most ``AUTH_CACHE_S``
        ago, ``False`` as it says now.

        While the database is down the last answer stands (no key can be created or revoked
        meanwhile), so that a local server still says what is wrong instead of only 503.
        """
        now = self._clock()
        with self._lock:
            known = self._keys_exist
        if known is not None and known[0] and now < known[1]:
            return True
        try:
            exists = self._store.any_active()
        except DatabaseUnavailable:
            if known is None:
                raise
            return known[0]
        with self._lock:
            self._keys_exist = (exists, now + self._settings.cache_s)
        return exists

    def fall_back_on(self, keys_exist: bool) -> None:
        """What the start-up check saw: the answer while the database is down until it is asked
        again (the first request asks)."""
        with self._lock:
            if self._keys_exist is None:
                self._keys_exist = (keys_exist, self._clock())

    def _verify(self, authorization: str) -> Caller:
        text = _bearer_text(authorization)
        key = parse_key(text) if text is not None else None
        if text is None or key is None:
            raise _invalid()
        key_hash = fingerprint(text)
        known = self._from_cache(key_hash)
        if known is not None:
            return known
        stored = self._store.active(key.id)
        if stored is None or not verify_secret(stored.secret_hash, key.secret):
            raise _invalid()
        record = stored.record
        caller = Caller(
            id=record.id,
            name=record.name,
            role=record.role,
            collections=frozenset(record.collections) if record.collections is not None else None,
        )
        until = self._clock() + self._settings.cache_s
        with self._lock:
            if len(self._verified) >= _MAX_CACHED:
                self._verified.clear()
            self._verified[key_hash] = _Cached(caller, until)
        return caller

    def _from_cache(self, key_hash: str) -> Caller | None:
        now = self._clock()
        with self._lock:
            cached = self._verified.get(key_hash)
        return cached.caller if cached is not None and now < cached.until else None


def _bearer_text(authorization: str) -> str | None:
    """The key of a ``Bearer`` header, ``None`` for any other scheme."""
    scheme, _, text = authorization.strip().partition(" ")
    return text.strip() if scheme.lower() == "bearer" else None


def _invalid() -> Unauthorized:
    return Unauthorized(
        "The API key is not valid: it is malformed, unknown or revoked.", code="auth_invalid"
    )
