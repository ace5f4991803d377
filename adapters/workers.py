"""The threads a pooled adapter runs its driver calls on: each takes the next call from one
queue, runs it, and hands the outcome to the event loop that asked, with one wake-up.

Cheaper per call than `loop.run_in_executor` on a `ThreadPoolExecutor` (no
`concurrent.futures.Future` with its lock and condition, no chaining of two futures): on a
keyed lookup the hand-off, not the lookup, is most of the cost.

Rules: at most `size` threads, started as calls need them and ended by `shutdown`; the
future a call returns is resolved only by its thread (a caller that stops waiting cancels
nothing here: the call runs to its end, and the future says when); an outcome for a loop
already closed is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Item = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class Workers:
    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on a worker; the future the running loop gets its outcome on."""
        if self._closed:
            raise RuntimeError(f"{self.name}: the workers are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # a waiting thread takes it
            elif len(self._threads) < self.size:
                thread = threading.Thread(target=self._run, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")  # fmt: skip
                self._threads.append(thread)
                thread.start()
            # else every thread is busy: the first to finish takes it
        self._queue.put((loop, future, fn, args))
        return future

    def shutdown(self) -> None:
        """Let the threads end once the calls queued are done."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, fn, args = item
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as exc:
                outcome = (None, exc)
            with self._lock:
                self._idle += 1
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
