"""The key format and its hashing: ``rag_<id>_<secret>``, of which only an argon2 hash is kept.

The id lets the server find the one stored hash to check, so a request costs one argon2
verification at most (and none while the key is cached, see ``authenticator``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PREFIX = "rag"
# 12 hex characters: ids stay short in `rag keys list` and never collide in practice.
_ID_BYTES = 6
# 256 bits of secret: guessing is hopeless, so argon2's cost only guards a leaked database.
_SECRET_BYTES = 32
_KEY = re.compile(rf"{PREFIX}_([0-9a-f]{{{2 * _ID_BYTES}}})_([A-Za-z0-9_-]{{43}})")
# A header longer than any key is refused before it is parsed.
MAX_KEY_CHARS = 128

# argon2-cffi's defaults (RFC 9106 low-memory profile) are made for passwords; a random
# 256-bit secret needs no stretching against guessing, so a cheaper setting keeps a cache miss
# at a few milliseconds while a stolen hash still cannot be searched.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A key split into its id and its secret."""

    id: str
    secret: str


def new_key() -> tuple[ParsedKey, str]:
    """A fresh key and its text, the only time the secret exists outside the caller."""
    key = ParsedKey(secrets.token_hex(_ID_BYTES), secrets.token_urlsafe(_SECRET_BYTES))
    return key, f"{PREFIX}_{key.id}_{key.secret}"


def parse_key(text: str) -> ParsedKey | None:
    """The id and secret of a well-formed key, else None."""
    if len(text) > MAX_KEY_CHARS:
        return None
    match = _KEY.fullmatch(text)
    return ParsedKey(match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    """The argon2 hash to store."""
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    """Whether ``secret`` is the one ``stored_hash`` was made from."""
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def fingerprint(text: str) -> str:
    """A fast hash of a whole key, so the cache of verified keys never holds a secret."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
