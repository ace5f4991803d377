# Extreme request values: every parameter kind (filter, key, write body,
# named-query parameter) on every backend, sent directly and through the relay, is refused
# with a prompt 400 naming the parameter, before any driver sees it, and the agent's memory
# stays bounded (DECIMAL 1e999999999 once took it to gigabytes).
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend
from tunnelkit import Pki, running_relay, tunnel_section

from bridgehead.relay.app import Relay

TOKEN = "bounds-token-0123456789"
HUGE_INT = "1" + "0" * 400
BINARY = {
    "sqlite": "BLOB",
    "sqlite-odbc": "BLOB",
    "postgresql": "BYTEA",
    "mariadb": "VARBINARY(64)",
}
FIND = (
    "SELECT id FROM vals WHERE amount < :amount AND id < :n AND d < :since "
    "AND f < :x AND name <> :s"
)
PARAMS = {"amount": "decimal", "n": "integer", "since": "date", "x": "float", "s": "string"}
GOOD = '"amount": "1.00", "n": 5, "since": "2024-01-01", "x": 1.5, "s": "a"'


def schema(b: Backend) -> list[str]:
    t = b.types
    return [
        f"CREATE TABLE vals (id INTEGER NOT NULL PRIMARY KEY, amount {t['dec']} NULL, "
        f"f {t['float']} NULL, name VARCHAR(20) NULL, d {t['date']} NULL, ts {t['ts']} NULL, "
        f"b {BINARY[b.name]} NULL)",
        "INSERT INTO vals (id, amount, name) VALUES (1, 1.50, 'one')",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "bounds", schema)


@pytest.fixture
async def bounds_relay(pki: Pki) -> Any:
    async with running_relay(pki, TOKEN) as relay:
        yield relay


@pytest.fixture
async def paths(backend: Backend, pki: Pki, bounds_relay: Relay, run_agent: Any) -> Any:
    """The agent over `backend`, reached directly and through the relay."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    assert bounds_relay.agents_address is not None
    direct: Caller = await run_agent(
        {"db": backend.source},
        {"vals": {"source": "db", "table": "vals", "key": ["id"],
                  "operations": ["read", "insert", "update", "delete"]}},
        api_key=TOKEN,
        tunnel=tunnel_section(pki, bounds_relay.agents_address[1], cert, key),
        queries={"find": {"source": "db", "sql": FIND, "params": PARAMS}},
    )  # fmt: skip
    async with asyncio.timeout(10):
        while sum(v.connections for v in bounds_relay.registry.views()) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    context = await asyncio.to_thread(pki.caller_context)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    via = Caller(f"{bounds_relay.callers_url}/agents/plant-7", TOKEN, session, direct.agent)
    yield {"direct": direct, "relay": via}
    await session.close()


# (method, path, raw JSON body or None, what the 400's detail must name)
EXTREMES: list[tuple[str, str, str | None, str]] = [
    ("GET", "/v1/vals?amount=eq.1e999999999", None, "filter amount"),
    ("GET", "/v1/vals?amount=lt.-1e999999999", None, "filter amount"),
    ("GET", f"/v1/vals?amount=eq.{HUGE_INT}", None, "filter amount"),
    ("GET", f"/v1/vals?id=in.(1,{HUGE_INT})", None, "filter id"),
    ("GET", "/v1/vals?f=eq.1e999999999", None, "filter f"),
    ("GET", "/v1/vals?d=eq.0000-01-01", None, "filter d"),
    ("GET", "/v1/vals?d=gt.10000-01-01", None, "filter d"),
    ("GET", "/v1/vals?ts=eq.10000-01-01T00:00:00", None, "filter ts"),
    ("GET", f"/v1/vals/{HUGE_INT}", None, "key id"),
    ("GET", "/v1/vals/1e999999999", None, "key id"),
    ("POST", "/v1/vals", '{"id": 9, "amount": 1e999999999}', "column 'amount'"),
    ("POST", "/v1/vals", '{"id": 9, "amount": "-1e999999999"}', "column 'amount'"),
    ("POST", "/v1/vals", f'{{"id": {HUGE_INT}}}', "column 'id'"),
    ("POST", "/v1/vals", '{"id": 9, "f": 1e999999999}', "column 'f'"),
    ("POST", "/v1/vals", '{"id": 9, "f": "inf"}', "column 'f'"),
    ("POST", "/v1/vals", f'{{"id": 9, "name": "{"x" * 500_000}"}}', "column 'name'"),
    ("POST", "/v1/vals", '{"id": 9, "d": "0000-12-31"}', "column 'd'"),
    ("POST", "/v1/vals", '{"id": 9, "ts": "10000-01-01T00:00:00"}', "column 'ts'"),
    ("PATCH", "/v1/vals/1", '{"amount": "1e999999999"}', "column 'amount'"),
    ("POST", "/v1/queries/find", f'{{{GOOD}, "amount": 1e999999999}}', "parameter 'amount'"),
    ("POST", "/v1/queries/find", f'{{{GOOD}, "amount": "1e999999999"}}', "parameter 'amount'"),
    ("POST", "/v1/queries/find", f'{{{GOOD}, "n": {HUGE_INT}}}', "parameter 'n'"),
    ("POST", "/v1/queries/find", f'{{{GOOD}, "x": -1e999999999}}', "parameter 'x'"),
    ("POST", "/v1/queries/find", f'{{{GOOD}, "since": "10000-01-01"}}', "parameter 'since'"),
]


def rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


async def send(caller: Caller, method: str, path: str, body: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {caller.key}", "If-Match": "*"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    data = body.encode() if body is not None else None
    async with caller.session.request(method, caller.base + path, data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_extreme_values_are_refused_promptly_by_name(paths: dict[str, Caller]) -> None:
    """Each extreme value of each parameter kind is a 400 within 5 s whose detail names the
    parameter, directly and through the relay, and the agent's RSS grows by under 50 MB."""
    before = await asyncio.to_thread(rss_kib)
    for route, caller in paths.items():
        for method, path, body, named in EXTREMES:
            started = time.monotonic()
            status, problem = await send(caller, method, path, body)
            took = time.monotonic() - started
            assert status == 400, (route, method, path[:80], problem)
            assert named in problem["detail"], (route, path[:80], problem["detail"][:300])
            assert took < 5, (route, path[:80], took)
    grown = (await asyncio.to_thread(rss_kib) - before) / 1024
    assert grown < 50, f"the agent's RSS grew by {grown:.0f} MB"
    status, row = await send(paths["direct"], "GET", "/v1/vals/1", None)
    assert status == 200, row
    assert row["amount"] == "1.50"  # nothing was written


async def test_values_inside_the_bounds_are_served(paths: dict[str, Caller]) -> None:
    """The limits refuse only what the column cannot hold: a value at each edge is stored."""
    body = (
        '{"id": 2, "amount": "9999999999.99", "name": "' + "z" * 20 + '", '
        '"d": "0001-01-01", "ts": "9999-12-31T23:59:59", "f": 1e308}'
    )
    status, row = await send(paths["relay"], "POST", "/v1/vals", body)
    assert status == 201, row
    assert (row["amount"], row["name"], row["d"]) == ("9999999999.99", "z" * 20, "0001-01-01")
    assert row["f"] == 1e308
    status, found = await send(paths["direct"], "POST", "/v1/queries/find", f"{{{GOOD}}}")
    assert status == 200, found


async def test_a_filter_longer_than_the_column_matches_nothing(paths: dict[str, Caller]) -> None:
    """A filter value longer than the column's declared length is no error: no stored value
    can equal it (the request-text cap bounds its cost), so it matches nothing."""
    caller = paths["direct"]
    status, body = await send(caller, "GET", f"/v1/vals?name=eq.{'x' * 21}", None)
    assert (status, body["items"]) == (200, [])
