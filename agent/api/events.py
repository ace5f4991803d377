"""`/v1/events`: the agent's change events, streamed, and named consumers' positions.

Rules:
- Scope `events:read`, and a resource's events only with `<resource>:read`: `resources=`
  naming one the caller may not read is a 403; without `resources=` the caller gets those it
  may read.
- `GET /v1/events` streams NDJSON (one CloudEvents record a line), or Server-Sent Events with
  `Accept: text/event-stream` (`id:` is the sequence, so `Last-Event-ID` resumes), from
  `after=SEQ`, `Last-Event-ID`, or `consumer=NAME`'s committed position; it stays open and
  sends new events as they are captured (SSE sends a comment every 15 s meanwhile).
- `POST /v1/events/consumers/NAME/ack` with `{"upto": SEQ}` or `{"ids": [ID, ...]}` commits
  NAME's position (never backwards; acks are cumulative, so `ids` moves it to the latest of
  the events named): at least once for a consumer that acks after processing. A deliverer
  may add `"dead": [{"seq", "id", "reason"}]` (events it gave up on, kept with the commit)
  and `"report": {...}` (how its deliveries go, shown on the admin page).
- `GET /v1/events/consumers/NAME` is NAME's state: position, backlog, the oldest event not
  processed, its report and dead letters (`dead_letters=N`, up to 1000, after `dead_after=
  SEQ`); `POST .../rewind` with `{"to": SEQ}` sets the position for a replay (the dead
  letters past it are tried again).
- Consumers named `webhook.*` are the relay's webhook deliveries: only the relay (over its
  control stream, as the principal `relay:webhooks`) reads, moves or rewinds them, and it may
  use no other name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
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
MAX_REPORT = 4096
MAX_DEAD, MAX_REASON, MAX_ID, MAX_DEAD_LISTED = 1000, 300, 128, 1000
RELAY = "relay:webhooks"
"""The relay's own principal (its qualified name)."""
RELAY_CONSUMERS = "webhook."
"""Consumer names the relay's webhook deliveries use, and nobody else."""
TYPES = frozenset({"bridgehead.row.created", "bridgehead.row.updated", "bridgehead.row.deleted"})


class EventsDesk(Protocol):
    source: str
    captured: list[str]
    stopping: bool
    """The agent is stopping: streams end (readers resume from the sequence they reached)."""

    async def read(
        self, after: int, limit: int, resources: list[str], types: list[str] | None
    ) -> list[Any]: ...

    async def wait(self, after: int, within: float) -> None: ...

    async def position(self, consumer: str) -> int: ...

    async def commit(self, consumer: str, upto: int, ack: Ack) -> int: ...

    async def seq_of(self, ids: list[str]) -> dict[str, int]: ...

    async def consumer(self, name: str, dead_letters: int, after: int) -> dict[str, Any]: ...

    async def rewind(self, consumer: str, to: int) -> int: ...


@dataclass(frozen=True)
class Ack:
    """What a consumer's ack carries besides the position: events it gave up on, each as
    {"seq", "id", "reason"}, and its report (None: keep the last one)."""

    dead: tuple[dict[str, Any], ...] = ()
    report: dict[str, Any] | None = None


def relay_principal(desk: EventsDesk | None, resources: Iterable[str]) -> Principal:
    """Who the relay's webhook deliverer is here: it may read the events of `resources`
    (those `events.relay` allows) and move its own consumers, and no rows; it reaches no
    other endpoint."""
    captured = desk.captured if desk is not None else []
    allowed = [name for name in captured if name in set(resources)]
    scopes = frozenset({"events:read", *(f"{name}:read" for name in allowed)})
    return Principal("relay", scopes, RELAY)


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
    if path[0] == "consumers" and len(path) in (2, 3):
        return await _consumer_call(desk, request, principal, _consumer(path[1]), path[2:])
    raise NotFound(f"no such endpoint: {request.path}")


async def _consumer_call(
    desk: EventsDesk, request: ApiRequest, principal: Principal, name: str, action: list[str]
) -> ApiResponse:
    """GET consumers/NAME; POST consumers/NAME/ack or /rewind."""
    _check_owner(principal, name)
    if not action:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("a consumer's state is read with GET", headers={"Allow": "GET"})
        query = dict(request.query)
        limit = _count(query.get("dead_letters", "100"), "dead_letters", MAX_DEAD_LISTED)
        after = _count(query.get("dead_after", "0"), "dead_after", None)
        return _json(await desk.consumer(name, limit, after))
    if action[0] not in ("ack", "rewind"):
        raise NotFound(f"no such endpoint: {request.path}; a consumer has ack and rewind")
    if request.method != "POST":
        raise MethodNotAllowed(f"a consumer's {action[0]} is a POST", headers={"Allow": "POST"})
    message = _message(request.body)
    if action[0] == "rewind":
        to = _sequence(message.get("to"), 'send {"to": SEQ}: the position to replay after')
        return _json({"consumer": name, "position": await desk.rewind(name, to)})
    upto = await _ack_position(desk, message)
    ack = Ack(_dead(message.get("dead", [])), _report(message.get("report")))
    return _json({"consumer": name, "position": await desk.commit(name, upto, ack)})


def _check_owner(principal: Principal, name: str) -> None:
    """`webhook.*` consumers are the relay's alone, and the relay may use no other."""
    relays = name.startswith(RELAY_CONSUMERS)
    if relays != (principal.qualified_name == RELAY):
        raise Forbidden(
            f"{name} is the consumer of the relay's webhook deliveries, which only the relay "
            "may use; name your consumer otherwise" if relays else
            f"the relay may use only {RELAY_CONSUMERS}* consumers, not {name}"
        )  # fmt: skip


def _json(data: dict[str, Any]) -> ApiResponse:
    return ApiResponse(200, {"Content-Type": JSON}, orjson.dumps(data))


async def _stream(desk: EventsDesk, request: ApiRequest, principal: Principal) -> ApiResponse:
    query = dict(request.query)
    resources = _resources(desk, principal, query.get("resources"))
    types = _types(query.get("types"))
    consumer = _consumer(query["consumer"]) if "consumer" in query else None
    if consumer is not None:
        _check_owner(principal, consumer)
    after = await _start(desk, request, query, consumer)
    sse = SSE in request.headers.get("accept", "")

    async def body() -> AsyncIterator[bytes]:
        position = after
        while not desk.stopping:
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


ACK_FORM = 'send {"upto": SEQ} or {"ids": [ID, ...]}: the last events processed'


def _message(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest(f"the body is not a JSON object; {ACK_FORM}")
    return data


def _sequence(value: Any, how: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(how)
    return value


async def _ack_position(desk: EventsDesk, message: dict[str, Any]) -> int:
    if "upto" in message:
        return _sequence(message["upto"], ACK_FORM)
    ids = message.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadRequest(ACK_FORM)
    found = await desk.seq_of(ids)
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise BadRequest(f"no event in the log has the id {unknown[0]!r} (retention may have "
                         'dropped it); ack by {"upto": SEQ} instead')  # fmt: skip
    return max(found.values())


def _dead(given: Any) -> tuple[dict[str, Any], ...]:
    how = f'dead is a list of at most {MAX_DEAD} {{"seq": SEQ, "id": ID, "reason": TEXT}}'
    if not isinstance(given, list) or len(given) > MAX_DEAD:
        raise BadRequest(how)
    out = []
    for item in given:
        fields = item if isinstance(item, dict) else {}
        if not isinstance(fields.get("id"), str) or not isinstance(fields.get("reason"), str):
            raise BadRequest(how)
        printable = "".join(c if c.isprintable() else " " for c in fields["reason"])
        out.append({"seq": _sequence(fields.get("seq"), how), "id": fields["id"][:MAX_ID],
                    "reason": printable[:MAX_REASON]})  # fmt: skip
    return tuple(out)


def _count(given: str, name: str, ceiling: int | None) -> int:
    if not given.isdigit() or (ceiling is not None and int(given) > ceiling):
        limit = f" up to {ceiling}" if ceiling is not None else ""
        raise BadRequest(f"{name} must be a whole number{limit}, not {given!r}")
    return int(given)


def _report(given: Any) -> dict[str, Any] | None:
    if given is not None and not isinstance(given, dict):
        raise BadRequest("report is a JSON object")
    if given is not None and len(orjson.dumps(given)) > MAX_REPORT:
        raise BadRequest(f"report is over {MAX_REPORT} bytes of JSON")
    return given
