# The agent's two fronts take requests in one way (agent.api.intake) and send answers one way
# (agent.api.pipeline.deliver): the local listener and the tunnel (through a real relay over
# mutual TLS on 127.0.0.1) answer a refused request alike, the relay and the agent keep one
# X-Request-Id rule (common.requestid), and a streamed body is closed exactly once when its
# caller goes away mid-stream, on each front.
from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import Caller
from polling import wait_for
from tunnelkit import Pki, reached_both_ways, running_relay

from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.http import make_app
from bridgehead.relay.app import Relay

TOKEN = "fronts-token-0123456789"
MAX_BODY = 2048
FRESH_ID = re.compile(r"[0-9a-f]{24}")
RESOURCES = {"t": {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}}


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
    db.close()


@pytest.fixture
async def relay(pki: Pki) -> AsyncIterator[Relay]:
    async with running_relay(pki, TOKEN) as started:
        yield started


@pytest.fixture
async def fronts(
    pki: Pki, relay: Relay, tmp_path: Path, run_agent: Any
) -> AsyncIterator[tuple[Caller, Caller]]:
    """One agent (limits.max_body_bytes 2048) reached on its listener and through the relay."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    limits = {"max_body_bytes": MAX_BODY}
    async with reached_both_ways(
        pki, relay, run_agent, tmp_path / "t.db", RESOURCES, TOKEN, limits=limits
    ) as both:
        yield both


async def call(
    front: Caller, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, Any, dict[str, Any]]:
    """A request with exactly these headers (repeats kept), and its problem answer."""
    fields = [("Authorization", f"Bearer {front.key}"), *headers]
    url = front.base + path
    async with front.session.request(method, url, headers=fields, data=body or None) as r:
        raw = await r.read()
        return r.status, r.headers.copy(), json.loads(raw) if raw else {}


def same_problem(one: dict[str, Any], other: dict[str, Any]) -> bool:
    return {k: v for k, v in one.items() if k != "request_id"} == {
        k: v for k, v in other.items() if k != "request_id"
    }


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("X-Request-Id", ["id-1", "id-2"]),
        ("If-Match", ['"a"', '"b"']),
        ("Idempotency-Key", ["a", "b"]),
    ],
)
async def test_a_repeated_singleton_is_the_same_400_on_both_fronts(
    fronts: tuple[Caller, Caller], name: str, values: list[str]
) -> None:
    """The same request repeating a single-use header gets the same status and problem type
    on the local listener and through the tunnel, under a fresh request id on each."""
    answers = [await call(f, "GET", "/v1/t", [(name, v) for v in values]) for f in fronts]
    (local_status, local_headers, local), (relay_status, relay_headers, relayed) = answers
    assert local_status == relay_status == 400
    assert local["type"] == relayed["type"] == "https://bridgehead.dev/problems/bad-request"
    for headers, problem in ((local_headers, local), (relay_headers, relayed)):
        assert FRESH_ID.fullmatch(headers["X-Request-Id"])
        assert problem["request_id"] == headers["X-Request-Id"]


async def test_repeated_ordinary_headers_are_joined_on_both_fronts(
    fronts: tuple[Caller, Caller],
) -> None:
    """Two Accept headers are one list on both fronts: `text/csv` in the first is honoured
    through the tunnel as on the listener, although the second names a type nobody serves."""
    accept = [("Accept", "text/csv"), ("Accept", "application/x-foo")]
    for front in fronts:
        async with front.session.get(
            front.base + "/v1/t", headers=[("Authorization", f"Bearer {front.key}"), *accept]
        ) as response:
            await response.read()
        assert response.status == 200, front.base
        assert response.headers["Content-Type"].startswith("text/csv"), front.base


async def test_the_413_is_word_for_word_the_same_on_both_fronts(
    fronts: tuple[Caller, Caller],
) -> None:
    """A body past limits.max_body_bytes (within the relay's own limit) gets one 413 problem,
    the same type, title and detail whether it came to the listener or down the tunnel."""
    body = json.dumps({"id": 2, "name": "x" * 5000}).encode()
    kind = [("Content-Type", "application/json")]
    (local_status, _, local), (relay_status, _, relayed) = [
        await call(front, "POST", "/v1/t", kind, body) for front in fronts
    ]
    assert local_status == relay_status == 413
    assert local["detail"] == f"the request body is larger than {MAX_BODY} bytes"
    assert same_problem(local, relayed)


@pytest.mark.parametrize("given", ["x" * 129, "tab\tinside", "é-not-ascii"])
async def test_an_invalid_request_id_is_replaced_alike_at_relay_and_agent(
    fronts: tuple[Caller, Caller], relay: Relay, given: str
) -> None:
    """An X-Request-Id breaking the rule (1-128 printable ASCII) is refused with the same 400
    by the agent and by the relay, each under a fresh id, never the one sent: also where the
    relay answers on its own (an agent that is not connected)."""
    _, via = fronts
    ghost = Caller(f"{relay.callers_url}/agents/ghost", TOKEN, via.session)
    answers = [
        await call(front, "GET", "/v1/t/1", [("X-Request-Id", given)]) for front in (*fronts, ghost)
    ]
    problems = [problem for _, _, problem in answers]
    for status, headers, problem in answers:
        assert status == 400
        assert FRESH_ID.fullmatch(headers["X-Request-Id"])
        assert problem["request_id"] == headers["X-Request-Id"] != given
        assert "X-Request-Id must be 1 to 128 printable ASCII characters" in problem["detail"]
    assert same_problem(problems[0], problems[1])
    assert same_problem(problems[0], problems[2])


async def test_a_valid_request_id_passes_through_both(
    fronts: tuple[Caller, Caller], relay: Relay, tmp_path: Path
) -> None:
    """A valid X-Request-Id (128 characters) comes back unchanged from each front, from the
    relay's own answers too, and is the id in the agent's audit record of the relayed call."""
    direct, via = fronts
    given = "trace-" + "y" * 122
    for front in fronts:
        status, headers, _ = await call(front, "GET", "/v1/t/1", [("X-Request-Id", given)])
        assert (status, headers["X-Request-Id"]) == (200, given)
    ghost = Caller(f"{relay.callers_url}/agents/ghost", TOKEN, via.session)
    status, headers, problem = await call(ghost, "GET", "/v1/t/1", [("X-Request-Id", given)])
    assert (status, headers["X-Request-Id"], problem["request_id"]) == (502, given, given)
    assert direct.agent is not None
    await direct.agent.stop()
    audit = await asyncio.to_thread((tmp_path / "agent0" / "state" / "audit.log").read_text)
    records = [json.loads(line) for line in audit.splitlines()]
    assert sorted(r["via"] for r in records if r["request_id"] == given) == ["local", "relay"]


class CountingBody:
    """An endless streamed body that counts how often it is closed."""

    def __init__(self) -> None:
        self.closed = 0
        self.chunks = 0

    def __aiter__(self) -> CountingBody:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)
        self.chunks += 1
        return b"x" * 65536

    async def aclose(self) -> None:
        self.closed += 1


class Endless:
    """A stand-in pipeline: every request is answered 200 with an endless CountingBody."""

    def __init__(self) -> None:
        self.bodies: list[CountingBody] = []

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        body = CountingBody()
        self.bodies.append(body)
        return ApiResponse(200, {"Content-Type": "application/x-ndjson"}, body)


async def read_then_leave(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> None:
    """Read the start of a streamed answer, then drop the connection."""
    async with session.get(url, headers=headers) as response:
        assert response.status == 200
        await response.content.readexactly(200_000)
        response.close()


async def assert_closed_once(pipeline: Endless) -> None:
    (body,) = pipeline.bodies
    await wait_for(lambda: body.closed > 0)
    chunks = body.chunks
    await asyncio.sleep(0.3)
    assert body.closed == 1
    assert body.chunks == chunks, "the body was still read after its caller left"


async def test_the_local_listener_closes_a_body_once_when_the_caller_leaves() -> None:
    """A caller of the local listener that disconnects mid-stream: the body is closed exactly
    once, and no more of it is read."""
    pipeline = Endless()
    runner = web.AppRunner(make_app(pipeline), handler_cancellation=True)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            await read_then_leave(session, f"http://127.0.0.1:{port}/v1/t", {})
        await assert_closed_once(pipeline)
    finally:
        await runner.cleanup()


async def test_the_tunnel_closes_a_body_once_when_the_caller_leaves(
    fronts: tuple[Caller, Caller],
) -> None:
    """A relay caller that disconnects mid-stream (the relay resets the stream): the agent's
    body is closed exactly once, and no more of it is read."""
    direct, via = fronts
    assert direct.agent is not None
    assert direct.agent.tunnel is not None
    pipeline = Endless()
    for connection in direct.agent.tunnel.live:
        connection.pipeline = pipeline  # type: ignore[assignment]
    await read_then_leave(via.session, f"{via.base}/v1/t", {"Authorization": f"Bearer {TOKEN}"})
    await assert_closed_once(pipeline)
