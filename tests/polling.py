"""Waiting on state another component owns (a relay's registry, an agent's connections):
poll it, bounded, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable


async def wait_for(check: Callable[[], object], seconds: float = 10) -> None:
    """Poll `check` until true; TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling another component's state, bounded
            await asyncio.sleep(0.01)


async def settle(check: Callable[[], object], seconds: float) -> bool:
    """Whether `check` becomes true within `seconds` (for measured assertions)."""
    try:
        await wait_for(check, seconds)
    except TimeoutError:
        return False
    return True


def refused_within(port: int, seconds: float) -> bool:
    """Whether new connections to 127.0.0.1:`port` are refused within `seconds` (a server
    that has stopped listening), polled from a plain thread."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as late:
            if late.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.05)
    return False
