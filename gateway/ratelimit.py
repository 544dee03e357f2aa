"""A per-key rate limit (CRM_LEADS_RATE_LIMIT): a sliding window over the hits of each key.

In-process: each gateway process counts its own hits, so N processes behind a load balancer
admit up to N times the limit. Keys are client addresses (`request.remote`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from gateway.settings import RateLimit

PRUNE_EVERY = 1024  # hits between sweeps of addresses that have gone quiet


class SlidingWindow:
    """At most `limit.count` hits in any `limit.per_seconds` seconds, per key.

    Exact, not approximate: each key keeps the times of its hits inside the window (at most
    `limit.count` of them), so a burst at the end of one minute and another at the start of
    the next cannot double the rate.
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._since_prune = 0

    def hit(self, key: str) -> int | None:
        """Count a hit and return None, or, past the limit, the whole seconds until one is allowed
        (the refused hit is not counted)."""
        now = self.clock()
        window = self.limit.per_seconds
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= self.limit.count:
            return max(1, math.ceil(hits[0] + window - now))
        hits.append(now)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        self._since_prune = 0
        quiet = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.limit.per_seconds]
        for key in quiet:
            del self._hits[key]
