# The local listener's defences against slow and greedy clients, with real
# sockets on 127.0.0.1 and small configured limits: header timeout, body idle timeout, idle
# keep-alive timeout, a connection cap, and failed authentications throttled per address.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller
from rawhttp import address, answer, parse, request

BOUND = 5.0
"""How long a test waits for the agent to act before calling the limit unenforced."""


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
    db.close()


async def start(tmp_path: Path, run_agent: Any, **limits: Any) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resource = {"source": "db", "table": "t", "operations": ["read", "insert"]}
    caller: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}}, {"t": resource}, limits=limits
    )
    return caller


async def connect(api: Caller) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*address(api.base))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the agent sent before it closed the connection; fails if it kept it open."""
    try:
        return await asyncio.wait_for(reader.read(-1), seconds)
    except TimeoutError:
        pytest.fail(f"the agent kept the connection open for more than {seconds} s")


async def test_headers_that_never_finish_are_cut_off(tmp_path: Path, run_agent: Any) -> None:
    """A client trickling header bytes (slowloris) and one sending nothing are both closed
    once the header timeout passes, without an answer; the listener keeps serving."""
    api = await start(tmp_path, run_agent, header_timeout="300ms")
    silent_reader, silent = await connect(api)
    reader, writer = await connect(api)
    writer.write(b"GET /v1/t HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def trickle() -> None:
        for _ in range(int(BOUND / 0.05)):
            writer.write(b"X-Slow: a\r\n")
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(trickle())
    try:
        assert await closed_within(reader, BOUND) == b""
        assert await closed_within(silent_reader, BOUND) == b""
    finally:
        dripping.cancel()
        writer.close()
        silent.close()
    assert (await api.get("/v1/t"))[0] == 200


async def test_a_stalled_body_is_a_408(tmp_path: Path, run_agent: Any) -> None:
    """A body that stops arriving gets a 408 problem once the body idle timeout passes, and
    the connection is closed; nothing is written."""
    api = await start(tmp_path, run_agent, body_idle_timeout="300ms")
    reader, writer = await connect(api)
    head = request(
        "POST", "/v1/t", f"Authorization: Bearer {api.key}", "Content-Length: 100",
        "Content-Type: application/json",
    )  # fmt: skip
    writer.write(head.replace(b"Connection: close\r\n", b"") + b'{"id": 2, ')
    try:
        response = parse(await closed_within(reader, BOUND))
    finally:
        writer.close()
    assert response.status == 408
    assert "limits.body_idle_timeout" in str(response.problem()["detail"])
    status, _, page = await api.get("/v1/t")
    assert status == 200
    assert [row["id"] for row in page["items"]] == [1]


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path, run_agent: Any) -> None:
    """After an answer, a kept-alive connection that sends nothing more is closed once the
    keep-alive timeout passes."""
    api = await start(tmp_path, run_agent, keepalive_timeout="300ms")
    reader, writer = await connect(api)
    raw = request("GET", "/v1/t", f"Authorization: Bearer {api.key}")
    writer.write(raw.replace(b"Connection: close", b"Connection: keep-alive"))
    try:
        answered = await closed_within(reader, BOUND)
    finally:
        writer.close()
    assert parse(answered).status == 200


async def test_connections_past_the_cap_get_a_503(tmp_path: Path, run_agent: Any) -> None:
    """With max_connections: 3, a fourth open connection gets a 503 problem with Retry-After
    and is closed; once one closes, requests are served again."""
    api = await start(tmp_path, run_agent, max_connections=3)
    held = [await connect(api) for _ in range(3)]
    await asyncio.sleep(0.1)  # let the agent accept them
    try:
        refused = await answer(api.base, request("GET", "/v1/t"))
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert "limits.max_connections" in str(refused.problem()["detail"])
    finally:
        held.pop()[1].close()
    await asyncio.sleep(0.1)
    try:
        assert (
            await answer(api.base, request("GET", "/v1/t", f"Authorization: Bearer {api.key}"))
        ).status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_failed_authentications_are_throttled_per_address(
    tmp_path: Path, run_agent: Any
) -> None:
    """Past failed_auth_burst failures, an address gets 429 with Retry-After before its token
    is looked at, even a valid one; successes spend nothing."""
    api = await start(tmp_path, run_agent, failed_auth_burst=3, failed_auth_per_second=0.01)
    for _ in range(5):
        assert (await api.get("/v1/t"))[0] == 200
    for _ in range(3):
        assert (await api.get("/v1/t", key="guess"))[0] == 401
    status, headers, problem = await api.get("/v1/t", key="guess")
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert "failed authentications from 127.0.0.1" in problem["detail"]
    assert (await api.get("/v1/t"))[0] == 429
