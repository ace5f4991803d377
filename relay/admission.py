"""What the caller port lets in before a request reaches a tunnel: a cap on each caller's
requests in flight, and a throttle on failed authentications per source address.

Rules:
- A caller over its cap waits a bounded time for one of its own requests to end, then is
  refused (429 with Retry-After); other callers' requests never queue behind it.
- A source address that failed authentication `limit` times within `window` is refused
  (429) without its token being looked at, until the oldest failure leaves the window.
- Time is passed in (`clock`), so the throttle is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

MAX_ADDRESSES = 100_000
"""Addresses remembered at most; past it the quietest are forgotten (bounded memory)."""


class CallerBusy(Exception):
    """The caller already has its cap of requests in flight."""


class CallerSlots:
    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._slots: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def hold(self, caller: str, wait: float) -> AsyncIterator[None]:
        """One of `caller`'s slots for the block; CallerBusy if none frees within `wait`."""
        slots = self._slots.setdefault(caller, asyncio.Semaphore(self.per_caller))
        try:
            async with asyncio.timeout(wait):
                await slots.acquire()
        except TimeoutError:
            raise CallerBusy from None
        try:
            yield
        finally:
            slots.release()


class FailureThrottle:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may try now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))
            failures = self._failures[address] = deque(maxlen=self.limit)
        failures.append(self.clock())

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
