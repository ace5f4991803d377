"""The request pipeline every front shares: route → authenticate → authorise → execute → encode.

The local listener and the tunnel both build an `ApiRequest` with `agent.api.intake`, hand
it to `Pipeline.handle` and send the `ApiResponse` it returns with `deliver`, through a `Sink`
of their own; nothing here knows about sockets. Response bodies are closed only here (by
`deliver` and the stream wrappers), on every path. Every response carries `X-Request-Id`;
every failure is turned into a problem response by `problems.from_exception`; writes with an
`Idempotency-Key` go through `agent.api.replay`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Protocol
from urllib.parse import unquote

import orjson

from bridgehead.agent.api import bulk, events, export, jobs, problems, reads, routines, writes
from bridgehead.agent.api.auth import Authenticator, Principal
from bridgehead.agent.api.cursor import CursorCodec
from bridgehead.agent.api.events import EventsDesk
from bridgehead.agent.api.jobs import JobsDesk
from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.api.openapi import build_openapi, served_operations
from bridgehead.agent.api.query_types import QueryTypes
from bridgehead.agent.api.ratelimit import RateLimiter
from bridgehead.agent.api.replay import Replayer, Write
from bridgehead.agent.api.trace import CLIENT_CLOSED, Auditor, Done, Trace
from bridgehead.agent.catalog import Catalog, Resource
from bridgehead.agent.config.model import AgentConfig, QueryConfig
from bridgehead.agent.errors import AuditUnavailable, MethodNotAllowed, NotFound, TooManyRequests
from bridgehead.common.errors import Unauthorized
from bridgehead.common.problem import JSON
from bridgehead.common.requestid import new_request_id

log = logging.getLogger("bridgehead.requests")
VERSION = version("bridgehead")
Clock = Callable[[], float]


@dataclass(frozen=True)
class Call:
    """One authorised call on a resource: who, on what, and which row (for item routes)."""

    request: ApiRequest
    principal: Principal
    resource: Resource
    key: str | None


Handler = Callable[[Call], Awaitable[ApiResponse]]


@dataclass(frozen=True)
class Route:
    name: str
    """What the audit log calls it: list, read, insert, update, delete."""
    operation: str
    """The resource operation it needs (`operations:` in config): read, insert, ..."""
    handler: Handler


async def _audited(
    response: ApiResponse, body: AsyncIterator[bytes], done: Done
) -> AsyncIterator[bytes]:
    status = CLIENT_CLOSED
    try:
        async for chunk in body:
            yield chunk
        status = response.status
    finally:
        await _close(body)
        await done(response, status)


async def _primed(body: AsyncIterator[bytes]) -> bytes | AsyncIterator[bytes]:
    """A stream whose first chunk is already read: a failure before the first byte is still a
    problem response, and the stream may set headers (X-Truncated) before it yields."""
    try:
        first = await anext(body)
    except StopAsyncIteration:
        return b""
    except BaseException:
        await _close(body)
        raise

    async def rest() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in body:
                yield chunk
        finally:
            await _close(body)

    return rest()


async def _close(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


class Sink(Protocol):
    """How a front puts an answer on its wire; `deliver` calls it and owns the body."""

    async def whole(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Send an answer whose body is all there."""

    async def head(self, status: int, headers: dict[str, str]) -> None:
        """Send a streamed answer's status and headers."""

    async def chunk(self, data: bytes) -> None:
        """Send one piece of a streamed body, waiting while the caller's window is full."""

    async def end(self) -> None:
        """Mark a streamed body complete."""


async def deliver(response: ApiResponse, sink: Sink) -> None:
    """Send `response` through `sink`; a streamed body is closed here, on every path (its end,
    a failure, a caller that went away, a cancelled task), so its reads stop and its
    transaction and audit record are finished. Fronts never close a body themselves."""
    body = response.body
    if isinstance(body, bytes):
        await sink.whole(response.status, response.headers, body)
        return
    try:
        await sink.head(response.status, response.headers)
        async for chunk in body:
            await sink.chunk(chunk)
        await sink.end()
    finally:
        await _close(body)


class Pipeline:
    def __init__(
        self,
        *,
        catalog: Catalog,
        authenticator: Authenticator,
        cursors: CursorCodec,
        replayer: Replayer,
        limiter: RateLimiter,
        auth_failures: RateLimiter | None = None,
        write_limits: writes.WriteLimits,
        audit: Auditor,
        config: AgentConfig,
        clock: Clock = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jobs: JobsDesk | None = None,
        events: EventsDesk | None = None,
    ) -> None:
        self.jobs, self.events = jobs, events
        self.audit = audit
        self.config = config
        self.wallclock = wallclock
        self.catalog = catalog
        self.authenticator = authenticator
        self.cursors = cursors
        self.replayer = replayer
        self.limiter = limiter
        self.auth_failures = auth_failures
        self.write_limits = write_limits
        self.clock = clock
        self.query_types = QueryTypes()
        self.collection: dict[str, Route] = {
            "GET": Route("list", "read", self._list),
            "POST": Route("insert", "insert", self._insert),
        }
        self.item: dict[str, Route] = {
            "GET": Route("read", "read", self._get),
            "PATCH": Route("update", "update", self._update),
            "DELETE": Route("delete", "delete", self._delete),
        }

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        """The response to `request`; a front that already refused it passes the reason."""
        request_id = request.request_id or new_request_id()
        started, at = self.clock(), self.wallclock()
        trace = Trace()
        try:
            problem = refusal or self._audit_down()
            if problem is not None:
                raise problem
            response = await self._dispatch(request, trace)
            if not isinstance(response.body, bytes):
                response.body = await _primed(response.body)
        except Exception as exc:
            response = problems.from_exception(exc, request_id)
        response.headers["X-Request-Id"] = request_id
        done = Done(self.audit, self.clock, request, request_id, trace, started, at)
        if isinstance(response.body, bytes):
            await done(response, response.status)
        else:
            response.body = _audited(response, response.body, done)
        return response

    def reconfigure(
        self,
        *,
        config: AgentConfig,
        catalog: Catalog,
        authenticator: Authenticator,
        limiter: RateLimiter,
        auth_failures: RateLimiter,
        write_limits: writes.WriteLimits,
    ) -> None:
        """Serve the next request by a reloaded config; all of it at once (no await here)."""
        self.config, self.catalog, self.authenticator = config, catalog, authenticator
        self.limiter, self.auth_failures, self.write_limits = limiter, auth_failures, write_limits
        self.query_types = QueryTypes()

    def _audit_down(self) -> AuditUnavailable | None:
        """Every data access is audited: while the log cannot write, none is made."""
        failure = self.audit.failure
        if failure is None:
            return None
        return AuditUnavailable(
            f"the agent's audit log cannot write ({failure}), so no request is served until "
            "it can; free space in the state folder and restart the agent",
            headers={"Retry-After": "30"},
        )

    async def _dispatch(self, request: ApiRequest, trace: Trace) -> ApiResponse:
        segments = request.path.split("/")
        if segments[:3] == ["", "v1", "jobs"] and all(segments[3:]) and len(segments) <= 6:
            return await self._jobs(request, [unquote(s) for s in segments[3:]], trace)
        if segments[:3] == ["", "v1", "events"] and all(segments[3:]) and len(segments) <= 6:
            return await self._events(request, [unquote(s) for s in segments[3:]], trace)
        if request.as_relay:
            raise NotFound("the relay's control streams reach only /v1/events")
        if len(segments) not in (3, 4) or segments[:2] != ["", "v1"] or not all(segments[2:]):
            raise NotFound(f"no such endpoint: {request.path}; the API lives under /v1/")
        name = unquote(segments[2])
        trace.target = name
        principal = self._authenticate(request)
        trace.principal = principal.qualified_name
        self._throttle(principal)
        if name == "openapi.json" and len(segments) == 3:
            trace.operation = "describe"
            return self._openapi(request, principal)
        if name in ("queries", "procedures") and len(segments) == 4:
            return await self._routine(request, principal, name, unquote(segments[3]), trace)
        resource = await self.catalog.get(name)
        if resource is None:
            raise NotFound(f"no resource named {name!r}")
        key = unquote(segments[3]) if len(segments) == 4 else None
        routes = self.collection if key is None else self.item
        method = "GET" if request.method == "HEAD" else request.method
        route = routes.get(method)
        served = served_operations(resource)
        if route is None or route.operation not in served:
            allowed = [m for m, r in routes.items() if r.operation in served]
            raise MethodNotAllowed(
                f"{request.method} is not allowed on this {name} endpoint; allowed: "
                f"{', '.join(allowed) or 'none'} (see operations: in the resource's config)",
                headers={"Allow": ", ".join(allowed)},
            )
        trace.operation = route.name
        principal.require(f"{name}:{'read' if route.operation == 'read' else 'write'}")
        return await route.handler(Call(request, principal, resource, key))

    async def _jobs(self, request: ApiRequest, path: list[str], trace: Trace) -> ApiResponse:
        """GET /v1/jobs[/{name}[/runs[/{id}]]], POST /v1/jobs/{name}/runs."""
        trace.target = f"jobs:{path[0]}" if path else "jobs"
        trace.operation = "run" if request.method == "POST" else "jobs"
        principal = self._authenticate(request)
        trace.principal = principal.qualified_name
        self._throttle(principal)
        return await jobs.handle(self.jobs, request, principal, path)

    async def _events(self, request: ApiRequest, path: list[str], trace: Trace) -> ApiResponse:
        """GET /v1/events, POST /v1/events/consumers/{name}/ack."""
        trace.target, trace.operation = "events", path[-1] if path else "events"
        if request.as_relay:  # the relay's webhook deliverer, over its own control stream
            allowed = self.config.events.relay
            captured = self.events.captured if self.events is not None else []
            resources = captured if allowed is True else [] if allowed is False else allowed
            principal = events.relay_principal(self.events, resources)
        else:
            principal = self._authenticate(request)
            self._throttle(principal)
        trace.principal = principal.qualified_name
        return await events.handle(self.events, request, principal, path)

    async def _routine(
        self, request: ApiRequest, principal: Principal, kind: str, name: str, trace: Trace
    ) -> ApiResponse:
        """POST /v1/queries/{name} or /v1/procedures/{name}."""
        trace.target, trace.operation = (
            f"{kind}:{name}",
            kind.removesuffix("s").replace("querie", "query"),
        )
        configs = self.config.queries if kind == "queries" else self.config.procedures
        routine = configs.get(name)
        if routine is None:
            raise NotFound(f"no {kind.removesuffix('s').replace('querie', 'query')} named {name!r}")
        if request.method != "POST":
            raise MethodNotAllowed(f"{kind} are run with POST", headers={"Allow": "POST"})
        principal.require(f"{kind}:{name}")
        adapter = self.catalog.adapter(routine.source)
        if isinstance(routine, QueryConfig):
            media = export.export_format(request.headers.get("accept", ""))
            if media is not None:
                return routines.stream_query(
                    name, routine, adapter, request.body, media=media, types=self.query_types
                )
            return await routines.run_query(name, routine, adapter, request.body, self.query_types)
        return await routines.call_procedure(name, routine, adapter, request.body)

    def _openapi(self, request: ApiRequest, principal: Principal) -> ApiResponse:
        """The document of what this caller's scopes reach."""
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(
                "the OpenAPI document is read with GET", headers={"Allow": "GET"}
            )
        document = build_openapi(
            self.catalog.resolved(), self.config, version=VERSION, scopes=principal.scopes
        )
        return ApiResponse(200, {"Content-Type": JSON}, orjson.dumps(document))

    def _authenticate(self, request: ApiRequest) -> Principal:
        """The caller; a source address past its failed-authentication budget is refused (429)
        before its token is even looked at, so guessing is slowed, not answered without limit."""
        failures, remote = self.auth_failures, request.remote
        if failures is None or not remote:
            return self.authenticator.authenticate(request.headers)
        wait = failures.wait(remote)
        if wait is not None:
            seconds = str(max(1, math.ceil(wait)))
            raise TooManyRequests(
                f"too many failed authentications from {remote}; retry after {seconds} s "
                "with a valid key or token",
                headers={"Retry-After": seconds},
            )
        try:
            return self.authenticator.authenticate(request.headers)
        except Unauthorized:
            failures.check(remote)
            raise

    def _throttle(self, principal: Principal) -> None:
        wait = self.limiter.check(principal.qualified_name)
        if wait is not None:
            seconds = str(max(1, math.ceil(wait)))
            raise TooManyRequests(
                f"{principal.name} is over its request rate; retry after {seconds} s",
                headers={"Retry-After": seconds},
            )

    async def _list(self, call: Call) -> ApiResponse:
        media = export.export_format(call.request.headers.get("accept", ""))
        if media is not None:
            return export.stream_rows(call.resource, call.request.query, self.cursors, media)
        return await reads.list_rows(call.resource, call.request.query, self.cursors)

    async def _get(self, call: Call) -> ApiResponse:
        assert call.key is not None
        return await reads.get_row(call.resource, call.key, call.request.query)

    async def _insert(self, call: Call) -> ApiResponse:
        if call.request.stream is not None:
            return await bulk.load(call.resource, call.request, self.config.limits.max_bulk_rows)
        body = call.request.body
        return await self._write(
            call, lambda hook: writes.insert(call.resource, body, self.write_limits, hook)
        )

    async def _update(self, call: Call) -> ApiResponse:
        key, body, headers = call.key or "", call.request.body, call.request.headers
        return await self._write(
            call, lambda hook: writes.update(call.resource, key, body, headers, hook)
        )

    async def _delete(self, call: Call) -> ApiResponse:
        key, headers = call.key or "", call.request.headers
        return await self._write(
            call, lambda hook: writes.delete(call.resource, key, headers, hook)
        )

    async def _write(self, call: Call, write: Write) -> ApiResponse:
        return await self.replayer.run(
            call.principal.qualified_name, call.request, call.resource, write
        )
