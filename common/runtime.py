"""Runs services in the foreground until asked to stop: started in order, stopped in reverse.

The core, `run_services`, waits on a `StopEvent`, which any thread may set: the signal
handlers of `run_until_signalled` (SIGINT, SIGTERM) on POSIX, or a Windows service
control (SvcStop, `agent.service.host`), so both drain the same way.

A service that fails to start stops the ones already started, so start-up never leaves a
half-running process behind. SIGHUP asks every service that can reload (a `reload()`
coroutine) to read its config again. Under systemd (`Type=notify`) the unit hears READY=1 once every
service has started, WATCHDOG=1 from the event loop while it runs, and STOPPING=1 when the
drain begins (`common.sdnotify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

from bridgehead.common.loops import loop_factory
from bridgehead.common.sdnotify import Notifier

log = logging.getLogger("bridgehead")


class StartupError(Exception):
    """A service cannot start; the message says what to fix. `runtime`: the config is right
    but the machine is not (an address in use): exit code 1 rather than 2."""

    def __init__(self, message: str, *, runtime: bool = False) -> None:
        super().__init__(message)
        self.runtime = runtime


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _reload(services: Sequence[Service], running: set[asyncio.Task[object]]) -> None:
    """SIGHUP: start each service's reload; the tasks are kept until they finish."""
    for service in services:
        reload = getattr(service, "reload", None)
        if reload is not None:
            task = asyncio.ensure_future(reload())
            running.add(task)
            task.add_done_callback(running.discard)


class Lifecycle(Protocol):
    """Who hears that the services are up and that the drain began: systemd (`Notifier`),
    or the Windows service control manager."""

    def ready(self, status: str) -> None: ...

    def stopping(self, status: str) -> None: ...

    async def keep_alive(self) -> None: ...


class StopEvent:
    """Set once, from any thread (a signal handler, a service control thread); awaited by
    the event loop that runs the services. No lock: the loop's side must never wait on one
    (the event loop would block), so `wait` checks the flag again after registering; `set`
    raises the flag before it wakes the registered waiters, so neither order loses a wake-up."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def set(self) -> None:
        self._set = True
        for loop, event in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # that loop has closed already
                loop.call_soon_threadsafe(event.set)

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        event = asyncio.Event()
        self._waiters.append((asyncio.get_running_loop(), event))
        if not self._set:  # else `set` may have run before the append and missed this waiter
            await event.wait()


async def serve_until(
    services: Sequence[Service],
    stop: StopEvent,
    on_started: Callable[[], None] | None,
    notify: Lifecycle,
) -> None:
    """Start every service, wait for `stop`, then drain them in reverse order."""
    started: list[Service] = []
    watchdog: asyncio.Task[None] | None = None
    try:
        for service in services:
            await service.start()
            started.append(service)
        if on_started is not None:
            on_started()
        notify.ready("serving")
        watchdog = asyncio.create_task(notify.keep_alive())
        await stop.wait()
    finally:
        if started:
            log.info("stopping: finishing the requests in flight first")
            notify.stopping("draining: finishing requests in flight")
        for service in reversed(started):
            await service.stop()
        if watchdog is not None:
            watchdog.cancel()


def run_services(
    services: Sequence[Service],
    stop: StopEvent,
    on_started: Callable[[], None] | None = None,
    notifier: Lifecycle | None = None,
) -> None:
    """Run on a new event loop in this thread until `stop` is set (no signal handlers)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_until(services, stop, on_started, notifier or Notifier()))


def run_until_signalled(
    services: Sequence[Service],
    on_started: Callable[[], None] | None = None,
    notifier: Lifecycle | None = None,
) -> None:
    """Run until SIGINT or SIGTERM; SIGHUP reloads."""
    stop = StopEvent()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        reloads: set[asyncio.Task[object]] = set()
        loop.add_signal_handler(signal.SIGHUP, _reload, services, reloads)
        await serve_until(services, stop, on_started, notifier or Notifier())

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
