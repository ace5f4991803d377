"""Keyed reads that arrive together, answered by one statement: `WHERE key IN (...)`.

Under load most of a keyed read's cost on a networked database is the statement itself: a
hand-off to a pool thread, a round trip, the driver's work per statement. So lookups of one
resource share statements: while `in_flight` of them are running, lookups that arrive wait
and go together in the next one (up to `most` keys). A lone lookup runs at once, as before;
only a busy resource batches, and the busier, the more.

Rules:
- only where an IN-list answers each key exactly as `key = ?` would: a one-column primary key
  of integers (text keys can compare equal to other text, under a collation or with trailing
  spaces, and would then be matched to the wrong caller);
- every caller of a batch gets its own row or None; a failure of the statement is every
  caller's failure; a caller that stops waiting leaves the batch to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bridgehead.adapters.base import Row

Fetch = Callable[[Sequence[Any]], Awaitable[list[Row]]]
"""Runs the statement for these keys (distinct), giving their rows in any order."""


class Coalescer:
    def __init__(self, fetch: Fetch, key_index: int, *, in_flight: int, most: int) -> None:
        if in_flight < 1 or most < 1:
            raise ValueError("in_flight and most must be positive")
        self._fetch, self._index = fetch, key_index
        self._in_flight, self._most = in_flight, most
        self._running = 0
        self._waiting: dict[Any, list[asyncio.Future[Row | None]]] = {}
        self._tasks: set[asyncio.Task[dict[Any, Row]]] = set()

    async def get(self, key: Any) -> Row | None:
        """The row with this key, or None if there is none."""
        if self._running < self._in_flight and not self._waiting:
            return (await self._run([key])).get(key)
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        return await future

    async def _run(self, keys: list[Any]) -> dict[Any, Row]:
        self._running += 1
        try:
            rows = await self._fetch(keys)
        finally:
            self._running -= 1
            self._next()
        return {row[self._index]: row for row in rows}

    def _next(self) -> None:
        """Start the next batch with the keys waiting, if any are."""
        if not self._waiting or self._running >= self._in_flight:
            return
        keys = list(self._waiting)[: self._most]
        batch = {key: self._waiting.pop(key) for key in keys}
        task = asyncio.get_running_loop().create_task(self._run(keys))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: _settle(done, batch))


def _settle(
    done: asyncio.Task[dict[Any, Row]], batch: dict[Any, list[asyncio.Future[Any]]]
) -> None:
    error = None if done.cancelled() else done.exception()
    rows = {} if done.cancelled() or error is not None else done.result()
    for key, futures in batch.items():
        for future in futures:
            if future.done():  # its caller stopped waiting
                continue
            if done.cancelled():
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows.get(key))
