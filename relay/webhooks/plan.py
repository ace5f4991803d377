"""Which events to deliver next, and which position is safe to commit: sans-IO, clock passed in.

Rules:
- Events are added in sequence order. At most one event per partition key is in flight, and
  a key's next event waits until the one before it is delivered or given up (ordered per
  key); across keys, up to `parallel` are in flight, oldest first.
- A failed delivery is retried after an exponential backoff with jitter (`retry_first`,
  doubling to `retry_max`; each delay is drawn between half and all of it), or after the
  receiver's `Retry-After`, which also holds every other key back until then (the receiver
  asked for less traffic). An event still failing `retry_for` after its first attempt is
  given up: a dead letter, and its key moves on.
- `committable` is the highest sequence at and below which every event added is done
  (delivered or given up): what the consumer may commit. An event after one still being
  retried stays undone-safe: after a restart it is delivered again (at least once), never
  skipped.
- At most `window` undone events, and `max_bytes` of them, are held; `has_room` tells the
  reader to stop reading until some are done (back-pressure reaches the agent through the
  tunnel's flow control).
- A `Retry-After` longer than `retry_max` is taken as `retry_max`, so a receiver cannot
  hold deliveries back past what the subscription allows.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pending:
    """One event to deliver, and how its delivery goes."""

    seq: int
    id: str
    key: str
    """The partition key: events with the same one are delivered in order, one at a time."""
    record: dict[str, Any]
    """The CloudEvents record as the agent sent it."""
    size: int = 0
    """Its size as read, for the plan's byte bound."""
    attempts: int = 0
    first_tried: float | None = None
    not_before: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class Retry:
    first: float
    max: float
    give_up_after: float


@dataclass
class Plan:
    parallel: int
    window: int
    retry: Retry
    position: int = 0
    """Where the consumer stands: every event up to here is done."""
    max_bytes: int = 32 << 20
    random: Callable[[], float] = random.random
    paused_until: float = 0.0
    failures: int = 0
    """Failed attempts since the plan began."""
    last_error: str = ""
    _undone: OrderedDict[int, Pending] = field(default_factory=OrderedDict)
    _keys: dict[str, deque[Pending]] = field(default_factory=dict)
    _ready: list[tuple[float, int, str]] = field(default_factory=list)
    """A heap of (not_before, seq, key): each key's first event, when not in flight."""
    _in_flight: set[int] = field(default_factory=set)
    _last_added: int = 0
    _dead: list[Pending] = field(default_factory=list)
    _bytes: int = 0

    @property
    def has_room(self) -> bool:
        return len(self._undone) < self.window and self._bytes < self.max_bytes

    @property
    def undone(self) -> int:
        return len(self._undone)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def oldest(self) -> Pending | None:
        """The oldest event not yet done."""
        return next(iter(self._undone.values()), None)

    def add(self, item: Pending) -> None:
        if item.seq <= max(self.position, self._last_added):
            return  # read again after a reconnect: already here or done
        self._last_added = item.seq
        self._undone[item.seq] = item
        self._bytes += item.size
        queue = self._keys.setdefault(item.key, deque())
        queue.append(item)
        if len(queue) == 1:
            heapq.heappush(self._ready, (item.not_before, item.seq, item.key))

    def take(self, now: float) -> list[Pending]:
        """The events to send now (each marked in flight)."""
        out: list[Pending] = []
        if now < self.paused_until:
            return out
        while self._ready and self.in_flight < self.parallel and self._ready[0][0] <= now:
            _, seq, key = heapq.heappop(self._ready)
            item = self._keys[key][0]
            self._in_flight.add(seq)
            if item.first_tried is None:
                item.first_tried = now
            out.append(item)
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until an event waiting for its retry (or the pause) is due; None: none."""
        if not self._ready or self.in_flight >= self.parallel:
            return None
        return max(0.0, self._ready[0][0] - now, self.paused_until - now)

    def delivered(self, item: Pending) -> None:
        self._done(item)

    def failed(self, item: Pending, now: float, why: str, retry_after: float | None = None) -> bool:
        """Record a failed attempt; True when the event is given up (a dead letter)."""
        item.attempts += 1
        item.last_error = self.last_error = why
        self.failures += 1
        self._in_flight.discard(item.seq)
        started = item.first_tried if item.first_tried is not None else now
        if now - started >= self.retry.give_up_after:
            self._dead.append(item)
            self._done(item, in_flight=False)
            return True
        if retry_after is not None:
            delay = min(retry_after, self.retry.max)
            self.paused_until = max(self.paused_until, now + delay)
        else:
            ceiling = min(self.retry.max, self.retry.first * 2 ** (item.attempts - 1))
            delay = ceiling * (0.5 + self.random() / 2)
        item.not_before = now + delay
        heapq.heappush(self._ready, (item.not_before, item.seq, item.key))
        return False

    def committable(self) -> int:
        """The highest sequence with every event at or below it done."""
        oldest = self.oldest()
        self.position = max(self.position, oldest.seq - 1 if oldest else self._last_added)
        return self.position

    def dead_upto(self, upto: int) -> list[Pending]:
        """The events given up, at or below `upto`, not yet recorded as the consumer's dead
        letters: they go with the commit that passes them, and are forgotten (`recorded`)
        only once it is in. (One past `upto` waits: after a reconnect it is tried again.)"""
        return [item for item in self._dead if item.seq <= upto]

    @property
    def dead(self) -> list[Pending]:
        return list(self._dead)

    def recorded(self, dead: list[Pending]) -> None:
        self._dead = [item for item in self._dead if item not in dead]

    def _done(self, item: Pending, *, in_flight: bool = True) -> None:
        if in_flight:
            self._in_flight.discard(item.seq)
        if self._undone.pop(item.seq, None) is not None:
            self._bytes -= item.size
        queue = self._keys[item.key]
        queue.popleft()
        if queue:
            following = queue[0]
            heapq.heappush(self._ready, (following.not_before, following.seq, following.key))
        else:
            del self._keys[item.key]
        item.record = {}
