"""A caller's request body as the relay forwards it: bounded in size and in time.

Rules:
- A body larger than `max_bytes` is refused (413) before the agent sees the part past the
  limit: at once when Content-Length says so, else when the count passes it.
- The whole body must arrive within `total` seconds, and no pause between its pieces may
  last `idle` seconds (408): a caller sending slowly cannot hold a tunnel stream for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from bridgehead.relay.config import CallerLimits


class BodyRefused(Exception):
    """The caller's body broke a limit; `status` and the message say which and what to do."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title = status, title


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(
        413, "Payload Too Large",
        f"the request body is larger than {limit} bytes; send less (or in several requests)",
    )  # fmt: skip


def declared_too_large(request: web.Request, limits: CallerLimits) -> BodyRefused | None:
    """The refusal for a body whose Content-Length is over the limit, or None."""
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        return too_large(limits.max_body_bytes)
    return None


async def bounded_body(request: web.Request, limits: CallerLimits) -> AsyncIterator[bytes]:
    """The body's pieces, raising BodyRefused as soon as one limit is broken."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.body_time
    received = 0
    while True:
        idle_until = loop.time() + limits.body_idle_timeout
        try:
            async with asyncio.timeout_at(min(deadline, idle_until)):
                chunk = await request.content.readany()
        except TimeoutError:
            raise _late(limits, deadline <= idle_until) from None
        if not chunk:
            return
        received += len(chunk)
        if received > limits.max_body_bytes:
            raise too_large(limits.max_body_bytes)
        yield chunk


def _late(limits: CallerLimits, whole: bool) -> BodyRefused:
    if whole:
        detail = f"the request body did not arrive within {limits.body_time:g} s; send it faster"
    else:
        detail = (
            f"the request body stalled for {limits.body_idle_timeout:g} s; send it without pauses"
        )
    return BodyRefused(408, "Request Timeout", detail)
