"""The local listener: a thin aiohttp front that hands every request to the pipeline.

A request's headers go through `common.headers` (a repeated singleton is a 400); its body
is read piece by piece, each piece within `body_idle` seconds (408 past it) and the whole
within `max_body` bytes (413); the connection guard (agent.listener) is told when a request's
headers were complete and when it was answered, for the header timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.api.pipeline import Pipeline
from bridgehead.agent.config.model import ListenConfig
from bridgehead.agent.errors import PayloadTooLarge, RequestTimeout
from bridgehead.agent.listener import Guards
from bridgehead.common.headers import request_headers

MAX_BODY = 1024 * 1024
BODY_IDLE = 30.0


def make_app(
    pipeline: Pipeline,
    max_body: int = MAX_BODY,
    body_idle: float = BODY_IDLE,
    guards: Guards | None = None,
) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if guards is not None:
            guards.headers_read(request.transport)
        try:
            return await _answer(request, pipeline, max_body, body_idle)
        finally:
            if guards is not None:
                guards.answered(request.transport)

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{tail:(?s:.*)}", handle)  # (?s): paths may hold %0A
    return app


async def _answer(
    request: web.Request, pipeline: Pipeline, max_body: int, body_idle: float
) -> web.StreamResponse:
    headers, repeated = request_headers(request.headers.items())
    api_request = ApiRequest(
        method=request.method,
        path=request.rel_url.raw_path,
        query=tuple(request.rel_url.query.items()),
        headers=headers,
        via="local",
        remote=request.remote or "",
    )
    if repeated is not None:
        return await _send(request, await pipeline.handle(api_request, repeated))
    try:
        body = await read_body(request, max_body, body_idle) if request.body_exists else b""
    except PayloadTooLarge as refusal:
        response = await pipeline.handle(api_request, refusal)
        response.headers["Connection"] = "close"  # the rest is drained a while, then cut
        return await _send(request, response)
    except RequestTimeout as refusal:
        response = await pipeline.handle(api_request, refusal)
        response.headers["Connection"] = "close"
        sent = await _send(request, response)
        await sent.prepare(request)
        await sent.write_eof()
        if request.transport is not None:
            request.transport.close()  # not waiting any longer for a body that stalled
        return sent
    return await _send(request, await pipeline.handle(replace(api_request, body=body)))


async def read_body(request: web.BaseRequest, max_body: int, idle: float) -> bytes:
    """The whole body: each piece within `idle` seconds, the whole within `max_body` bytes."""
    too_large = PayloadTooLarge(f"the request body is larger than {max_body} bytes")
    if (request.content_length or 0) > max_body:
        raise too_large
    pieces: list[bytes] = []
    size = 0
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
            return b"".join(pieces)
        size += len(piece)
        if size > max_body:
            raise too_large
        pieces.append(piece)


async def _send(request: web.Request, response: ApiResponse) -> web.StreamResponse:
    if isinstance(response.body, bytes):
        return web.Response(status=response.status, headers=response.headers, body=response.body)
    chunks: AsyncIterator[bytes] = response.body
    try:
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        await stream.prepare(request)
        async for chunk in chunks:
            await stream.write(chunk)  # waits while the caller's socket buffer is full
        await stream.write_eof()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a caller that went away stops the reads and ends the transaction
    return stream


def server_ssl(listen: ListenConfig) -> ssl.SSLContext | None:
    if listen.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(listen.tls.cert, listen.tls.key)
    return context
