"""The local listener's connection guard: the defences against slow clients aiohttp lacks.

aiohttp closes a connection left idle between requests (its keep-alive timeout, set from
`limits.keepalive_timeout`), but lets a client take any time over a request's headers and
takes any number of connections. Here, between asyncio and aiohttp's protocol:
- header timeout: a request's line and headers must be complete within `header_timeout` of
  its first byte (a connection's first request: of the connection; a TLS handshake is bounded
  by the same time); past it the connection is closed without an answer, as nginx does;
- a cap on open connections: past it a new connection gets one 503 problem and is closed.
The body idle timeout is the handler's (agent.http reads a body piece by piece). The handler
tells the guard when a request's headers were complete and when its answer was sent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bridgehead.agent.api import problems
from bridgehead.common.problem import PROBLEM_JSON

log = logging.getLogger("bridgehead.listener")


@dataclass(frozen=True)
class GuardLimits:
    header_timeout: float
    max_connections: int


class Guards:
    """The open connections of one listener and the limits they are held to."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.open: dict[object, ConnectionGuard] = {}

    def factory(self, inner: Callable[[], asyncio.BaseProtocol]) -> Callable[[], ConnectionGuard]:
        return lambda: ConnectionGuard(inner(), self)

    def headers_read(self, transport: object) -> None:
        guard = self.open.get(transport)
        if guard is not None:
            guard.headers_read()

    def answered(self, transport: object) -> None:
        guard = self.open.get(transport)
        if guard is not None:
            guard.answered()


def overloaded(limit: int) -> bytes:
    """The raw 503 a connection past the cap gets before it is closed."""
    detail = (
        f"the agent already holds {limit} connections (limits.max_connections); "
        "retry shortly or reuse a connection"
    )
    response = problems.problem(503, "Too many connections", detail, secrets.token_hex(12), "busy")
    body = response.body if isinstance(response.body, bytes) else b""
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {PROBLEM_JSON}\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class ConnectionGuard(asyncio.Protocol):
    """Forwards every protocol call to aiohttp's handler; times the header phase."""

    def __init__(self, inner: asyncio.BaseProtocol, guards: Guards) -> None:
        self._inner = inner
        self._guards = guards
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._between_requests = False
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limit = self._guards.limits.max_connections
        if len(self._guards.open) >= limit:
            self._refused = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(overloaded(limit))
            transport.close()
            log.warning("refused a connection: %d are open (limits.max_connections)", limit)
            return
        self._transport = transport
        self._guards.open[transport] = self
        self._start_header_clock()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._between_requests:
            self._between_requests = False
            self._start_header_clock()
        assert isinstance(self._inner, asyncio.Protocol)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused or not isinstance(self._inner, asyncio.Protocol):
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        if self._refused:
            return
        self._guards.open.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def headers_read(self) -> None:
        self._stop_header_clock()
        self._between_requests = False

    def answered(self) -> None:
        self._between_requests = True

    def _start_header_clock(self) -> None:
        self._stop_header_clock()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guards.limits.header_timeout, self._headers_late)

    def _stop_header_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        log.debug(
            "closed a connection: no complete request headers within %g s (limits.header_timeout)",
            self._guards.limits.header_timeout,
        )
        if self._transport is not None:
            self._transport.close()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site with every connection behind a `ConnectionGuard`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guards: Guards,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._guards = guards

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        tls = self._ssl_context
        self._server = await asyncio.get_running_loop().create_server(
            self._guards.factory(server),
            self._host,
            self._port,
            ssl=tls,
            backlog=self._backlog,
            ssl_handshake_timeout=self._guards.limits.header_timeout if tls else None,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
