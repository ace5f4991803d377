"""Runs services in the foreground until SIGINT or SIGTERM: started in order, stopped in reverse.

A service that fails to start stops the ones already started, so start-up never leaves a
half-running process behind. SIGHUP asks every service that can reload (a `reload()`
coroutine) to read its config again. Under systemd (`Type=notify`) the unit hears READY=1 once every
service has started, WATCHDOG=1 from the event loop while it runs, and STOPPING=1 when the
drain begins (`common.sdnotify`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

from bridgehead.common.sdnotify import Notifier


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


def run_until_signalled(
    services: Sequence[Service],
    on_started: Callable[[], None] | None = None,
    notifier: Notifier | None = None,
) -> None:
    notify = notifier or Notifier()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        reloads: set[asyncio.Task[object]] = set()
        loop.add_signal_handler(signal.SIGHUP, _reload, services, reloads)
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
                notify.stopping("draining: finishing requests in flight")
            for service in reversed(started):
                await service.stop()
            if watchdog is not None:
                watchdog.cancel()

    asyncio.run(main())
