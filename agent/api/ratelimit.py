"""Per-principal request rate limits: one token bucket per caller name.

Rules: pure (no I/O, no asyncio, no threads); time comes from the injected monotonic clock.
A bucket holds up to `burst` tokens, refills at `rate_per_second`, and one request takes one
token. Memory stays bounded without a background task: buckets are kept in order of last
use, and each check drops those idle long enough to have refilled completely, since a full
bucket is the same as no bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float  # clock reading when `tokens` was last brought up to date


class RateLimiter:
    """`check(name)` is None when the request may go ahead, else the seconds to wait."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"the rate must be a positive number, not {rate_per_second!r}")
        if burst < 1:
            raise ValueError(f"the burst must be at least 1, not {burst!r}")
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._refill_time = burst / rate_per_second  # idle this long, any bucket is full
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """How many buckets are held: at most the callers seen in the last burst/rate seconds."""
        return len(self._buckets)

    def check(self, principal_name: str) -> float | None:
        """Take a token for this caller: None if one was there, else seconds until one is."""
        now = self._clock()
        self._evict_full(now)
        bucket = self._buckets.pop(principal_name, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self._burst), updated=now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self._burst), bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        self._buckets[principal_name] = bucket  # re-inserted last: the most recently used
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self._rate

    def wait(self, name: str) -> float | None:
        """Seconds until this name has a token again, taking none: None if it has one now."""
        bucket = self._buckets.get(name)
        if bucket is None:
            return None
        elapsed = max(0.0, self._clock() - bucket.updated)
        tokens = min(float(self._burst), bucket.tokens + elapsed * self._rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def _evict_full(self, now: float) -> None:
        # Oldest first; stop at the first bucket used too recently to be surely full.
        while self._buckets:
            name, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_time:
                return
            del self._buckets[name]
