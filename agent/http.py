"""The local listener: a thin aiohttp front that hands every request to the pipeline."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from agent.api.headers import request_headers
from agent.api.message import ApiRequest, ApiResponse
from agent.api.pipeline import Pipeline
from agent.config.model import ListenConfig
from agent.errors import PayloadTooLarge

MAX_BODY = 1024 * 1024


def make_app(pipeline: Pipeline, max_body: int = MAX_BODY) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        headers, repeated = request_headers(request.headers.items())
        api_request = ApiRequest(
            method=request.method,
            path=request.rel_url.raw_path,
            query=tuple(request.rel_url.query.items()),
            headers=headers,
            via="local",
        )
        if repeated is not None:
            return await _send(request, await pipeline.handle(api_request, repeated))
        try:
            body = await request.read() if request.body_exists else b""
        except web.HTTPRequestEntityTooLarge:
            refusal = PayloadTooLarge(f"the request body is larger than {max_body} bytes")
            return await _send(request, await pipeline.handle(api_request, refusal))
        response = await pipeline.handle(replace(api_request, body=body))
        return await _send(request, response)

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{tail:(?s:.*)}", handle)  # (?s): paths may hold %0A
    return app


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
