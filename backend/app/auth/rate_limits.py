"""Per-key rate limits on the requests that cost the most: chat, search, reviews, uploads.

Counted in this process's memory with ``limits``' moving window: a server restart forgets the
counts, and several API processes behind one address each count on their own.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.auth.roles import Caller
from app.core.config import AuthSettings
from app.core.errors import RateLimited

LimitedKind = Literal["chat", "search", "reviews", "uploads"]


class RateLimits:
    """The configured rate of each kind of request, counted per key."""

    def __init__(self, settings: AuthSettings) -> None:
        self._rates: dict[LimitedKind, list[RateLimitItem]] = {
            "chat": parse_many(settings.rate_chat),
            "search": parse_many(settings.rate_search),
            "reviews": parse_many(settings.rate_reviews),
            "uploads": parse_many(settings.rate_uploads),
        }
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, kind: LimitedKind, caller: Caller) -> None:
        """Count one request of ``kind`` by ``caller``; ``RateLimited`` when it is one too many."""
        for rate in self._rates[kind]:
            if not self._limiter.hit(rate, caller.id, kind):
                reset_at = self._limiter.get_window_stats(rate, caller.id, kind).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(
                    f"Too many {kind} requests with this key (at most {rate}); try again in "
                    f"{retry_after} s.",
                    retry_after_s=retry_after,
                )
