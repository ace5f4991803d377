# Streams that fail: before their first byte a failure is an ordinary problem response; after
# it, the stream ends in a way every client detects (HTTP/1.1 without the terminating chunk,
# HTTP/2 with RST_STREAM passed on by the relay), never as a clean end of a shorter export.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Caller
from tunnelkit import Pki, reached_both_ways, running_relay

from bridgehead.relay.app import Relay

TOKEN = "stream-failures-token"
ROWS = 12_000
# SQLite evaluates a view row by row: abs() of the smallest integer raises "integer
# overflow" only when the first row past the given id is read.
FAILING_VIEW = (
    "CREATE VIEW {name} AS SELECT id, CASE WHEN id > {after} "
    "THEN abs(-9223372036854775808) ELSE id END AS x FROM items"
)


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(ROWS)])
        db.execute(FAILING_VIEW.format(name="early", after=-1))
        db.execute(FAILING_VIEW.format(name="late", after=7000))
    db.close()


RESOURCES = {
    name: {"source": "db", "table": name, "key": ["id"], "max_rows": ROWS}
    for name in ("early", "late")
}


@pytest.fixture
async def relay(pki: Pki) -> Any:
    async with running_relay(pki, TOKEN) as started:
        yield started


@pytest.fixture
async def callers(pki: Pki, relay: Relay, tmp_path: Path, run_agent: Any) -> Any:
    """The agent directly and through the relay."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    async with reached_both_ways(pki, relay, run_agent, tmp_path / "t.db", RESOURCES, TOKEN) as (
        direct,
        relayed,
    ):
        yield {"direct": direct, "relay": relayed}


@pytest.mark.parametrize("path", ["direct", "relay"])
@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/csv"])
async def test_failure_before_the_first_byte_is_a_problem(
    callers: dict[str, Caller], path: str, accept: str
) -> None:
    """A stream whose first read fails answers a problem, not 200 and a broken body."""
    status, headers, body = await callers[path].get("/v1/early", Accept=accept)
    assert status == 500
    assert headers["Content-Type"] == "application/problem+json"
    assert body["title"] == "Database error"


@pytest.mark.parametrize("path", ["direct", "relay"])
@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/csv"])
async def test_failure_mid_stream_is_never_a_clean_end(
    callers: dict[str, Caller], path: str, accept: str
) -> None:
    """A stream failing after its first chunk breaks off: the client's read raises."""
    caller = callers[path]
    headers = {"Authorization": f"Bearer {caller.key}", "Accept": accept}
    async with caller.session.get(caller.base + "/v1/late", headers=headers) as response:
        assert response.status == 200
        received = bytearray()
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all(response, received)
    assert received.count(b"\n") >= 5000  # the first chunk arrived before the failure


async def read_all(response: aiohttp.ClientResponse, into: bytearray) -> None:
    async for chunk in response.content.iter_any():
        into += chunk
