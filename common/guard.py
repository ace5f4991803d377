"""An aiohttp port's defences against slow and numerous clients, for the agent's local
listener and the relay's ports alike: aiohttp's request handler with a head timeout, an idle
keep-alive timeout and a cap on open connections.

Rules:
- The TLS handshake, and each request's head (request line and headers), must arrive within
  `header_timeout` of the connection opening or of the request's first byte; else the
  connection is closed without an answer, as nginx does. Bodies are timed where they are
  read (the agent's agent.http, the relay's relay.bodies).
- A connection idle after a response is closed after `keep_alive_timeout`.
- Past `max_connections` open connections, a new one gets the port's `refusal` bytes (if it
  has any: the agent's raw 503 problem) and is closed as soon as it is made; the log says so
  at most every REFUSAL_LOG_EVERY seconds, so a flood cannot flood it.
No knowledge of what the port serves; the caller passes its logger, label and refusal.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

REFUSAL_LOG_EVERY = 10.0
"""Seconds between two log lines about refused connections."""


@dataclass(frozen=True)
class GuardLimits:
    header_timeout: float
    max_connections: int
    keep_alive_timeout: float


class Guard:
    """What all of one port's connections share: the limits and who is open."""

    def __init__(
        self,
        limits: GuardLimits,
        port: str,
        log: logging.Logger,
        refusal: Callable[[], bytes] | None = None,
    ) -> None:
        self.limits, self.port, self.log, self.refusal = limits, port, log, refusal
        self.open: set[GuardedHandler] = set()
        self._emptied: asyncio.Event | None = None
        self._logged_at = -REFUSAL_LOG_EVERY

    async def all_closed(self) -> None:
        """Return once every connection has closed, its last bytes sent (a transport closes
        once its write buffer is empty): a process that exits sooner loses the end of a
        stream it had finished writing."""
        while self.open:
            self._emptied = asyncio.Event()
            await self._emptied.wait()

    def closed(self, handler: GuardedHandler) -> None:
        self.open.discard(handler)
        if not self.open and self._emptied is not None:
            self._emptied.set()

    def refuse(self) -> bool:
        """Whether a new connection is one too many (and logs so, now and then)."""
        if len(self.open) < self.limits.max_connections:
            return False
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_EVERY:
            self._logged_at = now
            self.log.warning(
                "%s: %d connections open (limits.max_connections); refusing new ones",
                self.port, len(self.open),
            )  # fmt: skip
        return True


class GuardedHandler(RequestHandler):
    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(
            manager,
            keepalive_timeout=guard.limits.keep_alive_timeout,
            access_log=None,  # type: ignore[arg-type]  # aiohttp's own way to log no access lines
            **kwargs,
        )
        self.guard = guard
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False
        self.answered = 0
        """Requests on this connection whose handling has ended (aiohttp counts the heads)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.guard.refuse():
            self.refused = True
            if self.guard.refusal is not None:
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(self.guard.refusal())
            transport.close()
            return
        self.guard.open.add(self)
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self)
        self._stop_head_timer()
        if not self.refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        heads = self._request_count
        super().data_received(data)
        if self._request_count > heads:
            self._stop_head_timer()  # a head (or a malformed one) is in
        elif self.head_timer is None and self.answered >= self._request_count:
            # Every request whose head came is answered: these are the next one's first bytes.
            # (Not aiohttp's "request in progress", set only once the handler's task first
            # runs: body bytes that come before would start a head timer mid-body.)
            self._await_head()

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            self.answered += 1

    def _await_head(self) -> None:
        self._stop_head_timer()
        self.head_timer = self._loop.call_later(self.guard.limits.header_timeout, self._late)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _late(self) -> None:
        self.head_timer = None
        peer = self.transport.get_extra_info("peername") if self.transport else None
        self.guard.log.info(
            "%s: no complete request head from %s within %g s (limits.header_timeout); closing",
            self.guard.port, peer, self.guard.limits.header_timeout,
        )  # fmt: skip
        self.force_close()
        if self.transport is not None:
            self.transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are GuardedHandlers."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: Guard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.host, self.port, self.guard = host, port, guard

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        handshake = self.guard.limits.header_timeout if self._ssl_context else None
        self._server = await loop.create_server(
            lambda: GuardedHandler(server, self.guard, loop=loop),
            self.host,
            self.port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=handshake,
        )
