"""Answers the relay's control streams (common.tunnel.control) on one tunnel connection.

Rules:
- Only paths under `/.bridgehead/` come here, and they never reach the API pipeline or its
  authentication: the relay refuses them from callers, so only the relay opens them.
- `GET /.bridgehead/renewal` waits (a long poll) until renewal is due, then answers with
  the CSR (agent.tunnel.renewal); a connection that drains first answers 204 at once, so
  the poll never holds a drain up.
- `POST /.bridgehead/certificate` hands the relay's answer to the renewer: 204 when taken,
  422 with a problem saying why a certificate was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

import orjson

from bridgehead.agent.api.message import ApiRequest
from bridgehead.agent.tunnel.renewal import Renewer
from bridgehead.common.problem import PROBLEM_JSON, problem_body, slug_of
from bridgehead.common.tunnel import control

if TYPE_CHECKING:
    from bridgehead.agent.tunnel.connection import TunnelConnection

JSON = {"content-type": "application/json"}


class Answer(Protocol):
    async def whole(self, status: int, headers: dict[str, str], body: bytes) -> None: ...


async def answer(connection: TunnelConnection, request: ApiRequest, sink: Answer) -> None:
    """Answer one control request on `connection`."""
    renewer = connection.renewer
    route = (request.method, request.path)
    if renewer is None or request.path not in (control.RENEWAL, control.CERTIFICATE):
        await _problem(sink, 404, "Not Found", f"{request.path} is no control path", request)
    elif route == ("GET", control.RENEWAL):
        await _renewal(connection, renewer, sink)
    elif route == ("POST", control.CERTIFICATE):
        await _certificate(renewer, request, sink)
    else:
        await _problem(sink, 405, "Method Not Allowed", f"not {request.method}", request)


async def _renewal(connection: TunnelConnection, renewer: Renewer, sink: Answer) -> None:
    waiting = asyncio.ensure_future(renewer.request(connection))
    drained = asyncio.ensure_future(connection.drained.wait())
    try:
        await asyncio.wait({waiting, drained}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        drained.cancel()
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    if waiting.cancelled() or waiting.exception() is not None:
        await sink.whole(204, {}, b"")
    elif connection.draining:
        renewer.release()  # the CSR would go down a connection about to close
        await sink.whole(204, {}, b"")
    else:
        await sink.whole(200, JSON, orjson.dumps({"csr": waiting.result().decode()}))


async def _certificate(renewer: Renewer, request: ApiRequest, sink: Answer) -> None:
    try:
        message = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        await _problem(sink, 400, "Bad Request", "send a JSON object", request)
        return
    refused = await renewer.answer(message)
    if refused is None:
        await sink.whole(204, {}, b"")
    else:
        await _problem(sink, 422, "Certificate refused", refused, request)


async def _problem(sink: Answer, status: int, title: str, detail: str, req: ApiRequest) -> None:
    body = problem_body(status, title, detail, req.request_id, slug_of(title))
    await sink.whole(status, {"content-type": PROBLEM_JSON}, body)
