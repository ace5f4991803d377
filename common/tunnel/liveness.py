"""What both ends of a tunnel connection do alike: PINGs, the dead-path rule, and sending a
body as fast as the peer's HTTP/2 window allows.

The agent (HTTP/2 server) and the relay (HTTP/2 client) each keep a `Liveness` per
connection and run `keep_alive` beside their read loop; `send_windowed` is their one way
to put body bytes on a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import h2.exceptions


class Liveness:
    """When the peer last answered a PING, the PINGs in flight, and the round trip measured.

    Only PING acknowledgements count as signs of life: a peer that still sends (its own
    PINGs, data) but no longer reads what we send is as dead as a silent one."""

    def __init__(self, clock: Callable[[], float], heartbeat: float, dead_after: float) -> None:
        self.clock, self.heartbeat, self.dead_after = clock, heartbeat, dead_after
        self.last_heard = clock()
        self.rtt: float | None = None
        self._pings: dict[bytes, float] = {}

    def dead(self) -> bool:
        return self.clock() - self.last_heard > self.dead_after

    def new_ping(self) -> bytes:
        payload = os.urandom(8)
        self._pings[payload] = self.clock()
        return payload

    def acknowledged(self, payload: bytes) -> None:
        sent = self._pings.pop(payload, None)
        if sent is not None:
            self.last_heard = self.clock()
            self.rtt = self.last_heard - sent


async def keep_alive(
    liveness: Liveness,
    ping: Callable[[bytes], None],
    flush: Callable[[], Awaitable[None]],
    on_dead: Callable[[], None],
) -> None:
    """PING every heartbeat; call `on_dead` (and stop) once the peer has been silent too long."""
    while True:
        await asyncio.sleep(liveness.heartbeat)
        if liveness.dead():
            on_dead()
            return
        # ProtocolError: the connection is closing (GOAWAY) and h2 sends no more PINGs.
        with contextlib.suppress(ConnectionError, h2.exceptions.ProtocolError):
            ping(liveness.new_ping())
            await flush()


async def send_windowed(
    data: bytes,
    room: Callable[[], int],
    send: Callable[[bytes], None],
    flush: Callable[[], Awaitable[None]],
    window: asyncio.Event,
) -> None:
    """Send `data` in pieces no larger than `room()`; wait on `window` while it is zero."""
    view = memoryview(data)
    while view:
        size = room()
        if size <= 0:
            window.clear()
            await window.wait()
            continue
        send(bytes(view[:size]))
        view = view[size:]
        await flush()
