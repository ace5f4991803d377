"""`/v1/events`: the agent's change events, streamed, and named consumers' positions.

Rules:
- Scope `events:read`, and a resource's events only with `<resource>:read`: `resources=`
  naming one the caller may not read is a 403; without `resources=` the caller gets those it
  may read.
- `GET /v1/events` streams NDJSON (one CloudEvents record a line), or Server-Sent Events with
  `Accept: text/event-stream` (`id:` is the sequence, so `Last-Event-ID` resumes), from
  `after=SEQ`, `Last-Event-ID`, or `consumer=NAME`'s committed position; it stays open and
  sends new events as they are captured (SSE sends a comment every 15 s meanwhile).
- `POST /v1/events/consumers/NAME/ack` with `{"upto": SEQ}` commits NAME's position (never
  backwards): at least once for a consumer that acks after processing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from bridgehead.agent.api.auth import Principal
from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.errors import Forbidden, MethodNotAllowed, NotFound
from bridgehead.common.errors import BadRequest
from bridgehead.common.problem import JSON

NDJSON, SSE = "application/x-ndjson", "text/event-stream"
BATCH = 500
KEEP_ALIVE = 15.0
CONSUMER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TYPES = frozenset({"bridgehead.row.created", "bridgehead.row.updated", "bridgehead.row.deleted"})


class EventsDesk(Protocol):
    source: str
    captured: list[str]

    async def read(
        self, after: int, limit: int, resources: list[str], types: list[str] | None
    ) -> list[Any]: ...

    async def wait(self, after: int, within: float) -> None: ...

    async def position(self, consumer: str) -> int: ...

    async def commit(self, consumer: str, upto: int) -> int: ...


async def handle(
    desk: EventsDesk | None, request: ApiRequest, principal: Principal, path: list[str]
) -> ApiResponse:
    """`path`: the segments after /v1/events."""
    if desk is None:
        raise NotFound("this agent captures no change events (no resource has events:)")
    principal.require("events:read")
    if not path:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("events are read with GET", headers={"Allow": "GET"})
        return await _stream(desk, request, principal)
    if len(path) == 3 and path[0] == "consumers" and path[2] == "ack":
        if request.method != "POST":
            raise MethodNotAllowed("a consumer acks with POST", headers={"Allow": "POST"})
        name = _consumer(path[1])
        position = await desk.commit(name, _upto(request.body))
        body = orjson.dumps({"consumer": name, "position": position})
        return ApiResponse(200, {"Content-Type": JSON}, body)
    raise NotFound(f"no such endpoint: {request.path}")


async def _stream(desk: EventsDesk, request: ApiRequest, principal: Principal) -> ApiResponse:
    query = dict(request.query)
    resources = _resources(desk, principal, query.get("resources"))
    types = _types(query.get("types"))
    consumer = _consumer(query["consumer"]) if "consumer" in query else None
    after = await _start(desk, request, query, consumer)
    sse = SSE in request.headers.get("accept", "")

    async def body() -> AsyncIterator[bytes]:
        position = after
        while True:
            events = await desk.read(position, BATCH, resources, types)
            if events:
                position = events[-1].seq
                yield b"".join(_encode(e.cloudevent(desk.source), e.seq, sse) for e in events)
                continue
            await desk.wait(position, KEEP_ALIVE)
            if sse and not await desk.read(position, 1, resources, types):
                yield b": keep-alive\n\n"

    media = SSE if sse else NDJSON
    headers = {"Content-Type": media, "Cache-Control": "no-store"}
    return ApiResponse(200, headers, body())


def _encode(record: dict[str, Any], seq: int, sse: bool) -> bytes:
    line = orjson.dumps(record)
    if sse:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, record["type"].encode(), line)
    return line + b"\n"


async def _start(
    desk: EventsDesk, request: ApiRequest, query: dict[str, str], consumer: str | None
) -> int:
    given = query.get("after") or request.headers.get("last-event-id")
    if given is not None:
        if not given.isdigit():
            raise BadRequest(f"after must be an event's sequence number, not {given!r}")
        return int(given)
    return await desk.position(consumer) if consumer is not None else 0


def _resources(desk: EventsDesk, principal: Principal, given: str | None) -> list[str]:
    readable = [r for r in desk.captured if f"{r}:read" in principal.scopes]
    if given is None:
        if not readable:
            raise Forbidden(
                f"{principal.name} may read none of the resources whose events this agent "
                "captures; grant <resource>:read"
            )
        return readable
    wanted = [name for name in given.split(",") if name]
    for name in wanted:
        if name not in desk.captured:
            raise NotFound(f"no events are captured for {name!r} (captured: "
                           f"{', '.join(desk.captured)})")  # fmt: skip
        if name not in readable:
            raise Forbidden(f"{principal.name} lacks the scope '{name}:read' for its events")
    return wanted


def _types(given: str | None) -> list[str] | None:
    if given is None:
        return None
    wanted = [t for t in given.split(",") if t]
    unknown = [t for t in wanted if t not in TYPES]
    if unknown:
        raise BadRequest(
            f"unknown event types {', '.join(unknown)}; use {', '.join(sorted(TYPES))}"
        )
    return wanted


def _consumer(name: str) -> str:
    if not CONSUMER.fullmatch(name):
        raise BadRequest(f"{name!r} is not a consumer name (letters, digits, . _ -; up to 64)")
    return name


def _upto(body: bytes) -> int:
    try:
        data = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        raise BadRequest('send {"upto": SEQ}, the last event processed') from None
    upto = data.get("upto") if isinstance(data, dict) else None
    if not isinstance(upto, int) or isinstance(upto, bool) or upto < 0:
        raise BadRequest('send {"upto": SEQ}, the last event processed')
    return upto
