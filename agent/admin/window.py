"""Request counts, errors and latency percentiles per target and operation over the last few
minutes, in bounded memory: one bucket per second, each holding a sparse latency histogram;
beside them, requests and errors per minute over the last 30 minutes (the page's sparklines).

Rules: the clock is passed in (tests move it by hand); percentiles are read from the
histogram's bins, each ~12% wide, so a p95 is exact to within one bin; an error is an
answer with status 500 or above. Recording a request is a few integer updates; the minute
series are assembled only when read. No I/O here.
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
MINUTES = 30
"""Minutes of per-minute counts kept for the sparklines."""
_FIRST, _GROWTH, _BINS = 0.0001, 1.125, 150
BOUNDS = tuple(_FIRST * _GROWTH**i for i in range(_BINS))
"""Upper bounds (seconds) of the latency bins: 0.1 ms to about 4.5 minutes."""


@dataclass
class _Second:
    at: int
    count: int = 0
    errors: int = 0
    bins: Counter[int] = field(default_factory=Counter)


@dataclass
class _Minute:
    at: int
    count: int = 0
    errors: int = 0


@dataclass
class _Route:
    seconds: deque[_Second] = field(default_factory=deque)
    minutes: deque[_Minute] = field(default_factory=deque)


@dataclass(frozen=True)
class RouteStats:
    target: str
    operation: str
    requests: int
    errors: int
    p50: float | None
    p95: float | None
    per_minute: tuple[int, ...] = ()
    """Requests in each of the last `MINUTES` minutes, oldest first, this minute last."""
    errors_per_minute: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "operation": self.operation,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
            "per_minute": list(self.per_minute),
            "errors_per_minute": list(self.errors_per_minute),
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
    def __init__(
        self,
        span: float = SPAN,
        clock: Callable[[], float] = time.monotonic,
        minutes: int = MINUTES,
    ) -> None:
        self.span, self.clock, self.minutes = span, clock, minutes
        self._routes: dict[tuple[str, str], _Route] = {}

    def add(self, target: str, operation: str, status: int, seconds: float) -> None:
        now = int(self.clock())
        route = self._routes.get((target, operation))
        if route is None:
            route = self._routes[target, operation] = _Route()
        kept = route.seconds
        if not kept or kept[-1].at != now:
            kept.append(_Second(now))
            self._trim(route, now)
        bucket = kept[-1]
        bucket.count += 1
        bucket.errors += status >= 500
        bucket.bins[_bin(seconds)] += 1
        minute = now // 60
        if not route.minutes or route.minutes[-1].at != minute:
            route.minutes.append(_Minute(minute))
        route.minutes[-1].count += 1
        route.minutes[-1].errors += status >= 500

    def _trim(self, route: _Route, now: int) -> None:
        while route.seconds and route.seconds[0].at <= now - self.span:
            route.seconds.popleft()
        while route.minutes and route.minutes[0].at <= now // 60 - self.minutes:
            route.minutes.popleft()

    def stats(self) -> list[RouteStats]:
        """Every route seen within the last `minutes` minutes, sorted by target then
        operation: its figures over the span, and its per-minute series."""
        now = int(self.clock())
        found = []
        for (target, operation), route in sorted(self._routes.items()):
            self._trim(route, now)
            if route.minutes:
                series = _series(route.minutes, now // 60 - self.minutes + 1, self.minutes)
                found.append(_summed(target, operation, route.seconds, series))
        return found


def _series(minutes: Iterable[_Minute], first: int, length: int) -> tuple[list[int], list[int]]:
    """Requests and errors per minute from minute `first` on, a zero for a quiet minute."""
    counts, errors = [0] * length, [0] * length
    for minute in minutes:
        if 0 <= minute.at - first < length:
            counts[minute.at - first] = minute.count
            errors[minute.at - first] = minute.errors
    return counts, errors


def _summed(
    target: str, operation: str, kept: Iterable[_Second], series: tuple[list[int], list[int]]
) -> RouteStats:
    bins: Counter[int] = Counter()
    requests = errors = 0
    for second in kept:
        requests += second.count
        errors += second.errors
        bins.update(second.bins)
    return RouteStats(
        target,
        operation,
        requests,
        errors,
        percentile(bins, 0.5),
        percentile(bins, 0.95),
        tuple(series[0]),
        tuple(series[1]),
    )
