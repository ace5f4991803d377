"""Writes for one tunnel connection: every flush asked for in one event-loop turn becomes one
TLS write of all the HTTP/2 bytes waiting then (many small answers, one write).

Rules:
- `flush` only makes sure a write happens at the end of this loop turn; body data goes out
  at once with `flush_now`, so the peer sees a stream as it is sent, not in bursts, and
  waits while the transport's buffer is full (back-pressure).
- `close` writes what is waiting (a last reset, a GOAWAY) before it closes: nothing queued is
  dropped by closing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Outbox:
    def __init__(self, take: Callable[[], bytes], writer: asyncio.StreamWriter) -> None:
        self.take, self.writer = take, writer
        self._due = False

    def kick(self) -> None:
        """Make sure a write happens at the end of this loop turn."""
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._write)

    async def flush(self) -> None:
        """Write at the end of this turn; wait while earlier writes fill the buffer."""
        self.kick()
        await self.writer.drain()

    async def flush_now(self) -> None:
        self._write()
        await self.writer.drain()

    def close(self) -> None:
        self._write()
        self.writer.close()

    def _write(self) -> None:
        self._due = False
        data = self.take()
        if data and not self.writer.transport.is_closing():
            self.writer.write(data)
