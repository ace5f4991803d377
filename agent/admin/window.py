"""Request counts, errors and latency percentiles per target and operation over the last few
minutes, in bounded memory: one bucket per second, each holding a sparse latency histogram.

Rules: the clock is passed in (tests move it by hand); percentiles are read from the
histogram's bins, each ~12% wide, so a p95 is exact to within one bin; an error is an
answer with status 500 or above. No I/O here.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SPAN = 300.0
"""Seconds of history kept: the last 5 minutes."""
_FIRST, _GROWTH, _BINS = 0.0001, 1.125, 150
BOUNDS = tuple(_FIRST * _GROWTH**i for i in range(_BINS))
"""Upper bounds (seconds) of the latency bins: 0.1 ms to about 4.5 minutes."""


@dataclass
class _Second:
    at: int
    count: int = 0
    errors: int = 0
    bins: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class RouteStats:
    target: str
    operation: str
    requests: int
    errors: int
    p50: float | None
    p95: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "operation": self.operation,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _bin(seconds: float) -> int:
    return min(bisect.bisect_left(BOUNDS, seconds), _BINS - 1)


def percentile(bins: Counter[int], fraction: float) -> float | None:
    """The upper bound of the bin holding the `fraction` quantile; None with no samples."""
    total = sum(bins.values())
    if total == 0:
        return None
    wanted, seen = max(1, math.ceil(total * fraction)), 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= wanted:
            return BOUNDS[index]
    raise AssertionError("unreachable")


class RequestWindow:
    def __init__(self, span: float = SPAN, clock: Callable[[], float] = time.monotonic) -> None:
        self.span, self.clock = span, clock
        self._routes: dict[tuple[str, str], deque[_Second]] = {}

    def add(self, target: str, operation: str, status: int, seconds: float) -> None:
        now = int(self.clock())
        seconds_kept = self._routes.setdefault((target, operation), deque())
        if not seconds_kept or seconds_kept[-1].at != now:
            seconds_kept.append(_Second(now))
            self._trim(seconds_kept, now)
        bucket = seconds_kept[-1]
        bucket.count += 1
        bucket.errors += status >= 500
        bucket.bins[_bin(seconds)] += 1

    def _trim(self, kept: deque[_Second], now: int) -> None:
        while kept and kept[0].at <= now - self.span:
            kept.popleft()

    def stats(self) -> list[RouteStats]:
        """Every route seen within the span, sorted by target then operation."""
        now = int(self.clock())
        found = []
        for (target, operation), kept in sorted(self._routes.items()):
            self._trim(kept, now)
            if kept:
                found.append(_summed(target, operation, kept))
        return found


def _summed(target: str, operation: str, kept: Iterable[_Second]) -> RouteStats:
    bins: Counter[int] = Counter()
    requests = errors = 0
    for second in kept:
        requests += second.count
        errors += second.errors
        bins.update(second.bins)
    return RouteStats(
        target, operation, requests, errors, percentile(bins, 0.5), percentile(bins, 0.95)
    )
