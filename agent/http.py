"""The local listener: a thin aiohttp front that hands every request to the pipeline.

A request is taken in by `agent.api.intake` (the rules the tunnel applies too: single
headers, the body limit's one 413, the request-id rule); its body is read piece by piece,
each piece within `body_idle` seconds (408 past it). An answer goes out through
`pipeline.deliver`, which closes a streamed body on every path, a caller that disconnects
mid-stream included (aiohttp then cancels the handler). A refused body closes the
connection after the answer: the rest of it is not read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from bridgehead.agent.api.intake import Intake, Peer
from bridgehead.agent.api.pipeline import Pipeline, deliver
from bridgehead.agent.config.model import ListenConfig
from bridgehead.agent.errors import PayloadTooLarge, RequestTimeout
from bridgehead.common.requestid import bound

MAX_BODY = 1024 * 1024
BODY_IDLE = 30.0


def make_app(
    pipeline: Pipeline, max_body: int = MAX_BODY, body_idle: float = BODY_IDLE
) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _answer(request, pipeline, max_body, body_idle)

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{tail:(?s:.*)}", handle)  # (?s): paths may hold %0A
    return app


async def _answer(
    request: web.Request, pipeline: Pipeline, max_body: int, body_idle: float
) -> web.StreamResponse:
    peer = Peer("local", request.remote or "")
    target = request.rel_url.raw_path_qs
    intake = Intake(request.method, target, request.headers.items(), peer, max_body)
    if intake.streams_body:
        api_request, refusal = intake.finish(stream=body_pieces(request, body_idle))
    else:
        if request.body_exists:
            await read_body(request, intake, body_idle)
        api_request, refusal = intake.finish()
    with bound(api_request.request_id):  # every line logged for it names it
        response = await pipeline.handle(api_request, refusal)
        if isinstance(refusal, PayloadTooLarge | RequestTimeout):
            response.headers["Connection"] = "close"  # the rest is drained a while, then cut
        sink = LocalSink(request)
        await deliver(response, sink)
        if isinstance(refusal, RequestTimeout):
            await sink.finish()
            if request.transport is not None:
                request.transport.close()  # not waiting any longer for a body that stalled
    return sink.response


async def read_body(request: web.BaseRequest, intake: Intake, idle: float) -> None:
    """Feed the body to `intake`: each piece within `idle` seconds, until it ends or is refused."""
    intake.declare(request.content_length)
    while intake.wants_body:
        try:
            async with asyncio.timeout(idle):
                piece = await request.content.readany()
        except TimeoutError:
            intake.refuse(
                RequestTimeout(
                    f"the request body stalled: nothing came for {idle:g} s "
                    "(limits.body_idle_timeout); send the body without pauses"
                )
            )
            return
        if not piece:
            return
        intake.add(piece)


async def body_pieces(request: web.BaseRequest, idle: float) -> AsyncIterator[bytes]:
    """A bulk load's body as it arrives, each piece within `idle` seconds (408 past it)."""
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(
                f"the request body stalled: nothing came for {idle:g} s "
                "(limits.body_idle_timeout); send the body without pauses"
            ) from None
        if not piece:
            return
        yield piece


class LocalSink:
    """An answer as aiohttp sends it: a whole body returned to aiohttp, a stream written."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse()

    async def whole(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.response = web.Response(status=status, headers=headers, body=body)

    async def head(self, status: int, headers: dict[str, str]) -> None:
        self.response = web.StreamResponse(status=status, headers=headers)
        await self.response.prepare(self.request)

    async def chunk(self, data: bytes) -> None:
        await self.response.write(data)  # waits while the caller's socket buffer is full

    async def end(self) -> None:
        await self.response.write_eof()

    async def finish(self) -> None:
        """Send a whole answer now, before the connection is closed under it."""
        await self.response.prepare(self.request)
        await self.response.write_eof()


def server_ssl(listen: ListenConfig) -> ssl.SSLContext | None:
    if listen.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(listen.tls.cert, listen.tls.key)
    return context
