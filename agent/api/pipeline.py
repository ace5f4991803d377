"""The request pipeline every front shares: route → authenticate → authorise → execute → encode.

The local listener and the tunnel both hand an `ApiRequest` to `Pipeline.handle` and send back
the `ApiResponse` it returns; nothing here knows about sockets. Every response carries
`X-Request-Id`; every failure is turned into a problem response by `problems.from_exception`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from agent.api import problems, reads
from agent.api.auth import Authenticator, Principal
from agent.api.cursor import CursorCodec
from agent.api.message import ApiRequest, ApiResponse
from agent.catalog import Catalog, Resource
from agent.errors import MethodNotAllowed, NotFound

log = logging.getLogger("bridgehead.requests")
Clock = Callable[[], float]
MAX_REQUEST_ID = 128


def request_id_for(request: ApiRequest) -> str:
    given = request.headers.get("x-request-id", "")
    if given and len(given) <= MAX_REQUEST_ID and given.isprintable() and given.isascii():
        return given
    return secrets.token_hex(12)


class Pipeline:
    def __init__(
        self,
        catalog: Catalog,
        authenticator: Authenticator,
        cursors: CursorCodec,
        clock: Clock = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.authenticator = authenticator
        self.cursors = cursors
        self.clock = clock

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        """The response to `request`; a front that already refused it passes the reason."""
        request_id = request_id_for(request)
        started = self.clock()
        try:
            if refusal is not None:
                raise refusal
            response = await self._dispatch(request)
        except Exception as exc:
            response = problems.from_exception(exc, request_id)
        response.headers["X-Request-Id"] = request_id
        log.info(
            "%s %s %d %.1fms via %s",
            request.method,
            request.path,
            response.status,
            (self.clock() - started) * 1000,
            request.via,
            extra={"request_id": request_id},
        )
        return response

    async def _dispatch(self, request: ApiRequest) -> ApiResponse:
        segments = request.path.split("/")
        if len(segments) < 3 or segments[:2] != ["", "v1"] or not segments[2]:
            raise NotFound(f"no such endpoint: {request.path}; the API lives under /v1/")
        principal = self.authenticator.authenticate(request.headers)
        name = unquote(segments[2])
        resource = await self.catalog.get(name)
        if resource is None:
            raise NotFound(f"no resource named {name!r}")
        if len(segments) == 3:
            return await self._collection(request, principal, resource)
        if len(segments) == 4 and segments[3]:
            return await self._item(request, principal, resource, segments[3])
        raise NotFound(f"no such endpoint: {request.path}")

    async def _collection(
        self, request: ApiRequest, principal: Principal, resource: Resource
    ) -> ApiResponse:
        handlers: dict[str, Callable[[], Awaitable[ApiResponse]]] = {
            "GET": lambda: reads.list_rows(resource, request.query, self.cursors),
        }
        return await _run(handlers, request, principal, resource)

    async def _item(
        self, request: ApiRequest, principal: Principal, resource: Resource, raw_key: str
    ) -> ApiResponse:
        handlers: dict[str, Callable[[], Awaitable[ApiResponse]]] = {
            "GET": lambda: reads.get_row(resource, raw_key),
        }
        return await _run(handlers, request, principal, resource)


async def _run(
    handlers: dict[str, Callable[[], Awaitable[ApiResponse]]],
    request: ApiRequest,
    principal: Principal,
    resource: Resource,
) -> ApiResponse:
    method = "GET" if request.method == "HEAD" else request.method
    handler = handlers.get(method)
    if handler is None:
        raise MethodNotAllowed(
            f"{request.method} is not supported here; allowed: {', '.join(handlers)}",
            headers={"Allow": ", ".join(handlers)},
        )
    principal.require(f"{resource.name}:read")
    return await handler()
