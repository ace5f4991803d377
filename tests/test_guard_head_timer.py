"""common.guard's head timer runs only while a connection waits for a request head: body
bytes that reach the handler before aiohttp has started the request's task are the body of
a request already in, and start no timer (one did once, and a long upload was cut off
`header_timeout` after it began); the next request's first bytes, after an answer, do."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bridgehead.common.guard import Guard, GuardedHandler, GuardLimits


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_body_bytes_before_the_handler_runs_start_no_head_timer() -> None:
    answered = asyncio.Event()

    async def handle(request: web.BaseRequest) -> web.Response:
        await request.read()
        answered.set()
        return web.Response(text="ok")

    guard = Guard(GuardLimits(60.0, 10, 60.0), "test", logging.getLogger("test"))
    handler = GuardedHandler(web.Server(handle), guard, loop=asyncio.get_running_loop())
    transport = Transport()
    handler.connection_made(transport)
    assert handler.head_timer is not None  # waiting for the first head
    handler.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    assert handler.head_timer is None
    handler.data_received(b"abcde")  # the handler's task has not run yet
    assert handler.head_timer is None
    await asyncio.sleep(0)
    handler.data_received(b"fghij")
    await asyncio.wait_for(answered.wait(), 5)
    for _ in range(20):
        await asyncio.sleep(0)
    assert handler.head_timer is None
    handler.data_received(b"GET / HTTP/1.1\r\n")  # the next request's first bytes
    assert handler.head_timer is not None
    handler.connection_lost(None)
    assert handler.head_timer is None
