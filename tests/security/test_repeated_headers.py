# The local listener refuses a request that repeats a header on common.headers.SINGLETONS
# , as the tunnel does: no layer may read the first value and another the
# last.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller
from rawhttp import answer, request


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
    db.close()


@pytest.fixture
async def api(tmp_path: Path, run_agent: Any) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resources = {"t": {"source": "db", "table": "t", "operations": ["read", "insert", "update"]}}
    caller: Caller = await run_agent({"db": {"sqlite": str(tmp_path / "t.db")}}, resources)
    return caller


@pytest.mark.parametrize("first_is_valid", [True, False])
async def test_two_authorization_headers_are_a_400(api: Caller, first_is_valid: bool) -> None:
    """Two Authorization headers (a valid key and another, in either order) get a 400 problem
    naming the header, not the data of whichever one a layer happened to read."""
    keys = [api.key, "nobody-key"] if first_is_valid else ["nobody-key", api.key]
    raw = request("GET", "/v1/t", *(f"Authorization: Bearer {k}" for k in keys))
    response = await answer(api.base, raw)
    assert response.status == 400, response
    problem = response.problem()
    assert "authorization more than once" in str(problem["detail"])
    assert b"one" not in response.body


@pytest.mark.parametrize(
    ("method", "path", "name", "values"),
    [
        ("POST", "/v1/t", "Idempotency-Key", ["a", "b"]),
        ("PATCH", "/v1/t/1", "If-Match", ['"x"', '"y"']),
        ("GET", "/v1/t", "X-Request-Id", ["id-1", "id-2"]),
    ],
)
async def test_each_singleton_header_at_most_once(
    api: Caller, method: str, path: str, name: str, values: list[str]
) -> None:
    """A repeated Idempotency-Key, If-Match or X-Request-Id is a 400 problem
    naming it; the answer's X-Request-Id is a fresh one, neither of those sent."""
    body = b'{"name": "two"}'
    lines = [f"Authorization: Bearer {api.key}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for value in values]
    response = await answer(api.base, request(method, path, *lines, body=body))
    assert response.status == 400, response
    assert f"{name.lower()} more than once" in str(response.problem()["detail"])
    assert response.headers["x-request-id"] not in values


@pytest.mark.parametrize(
    "repeat", ["Content-Length: 2", "Content-Type: text/csv"], ids=["length", "type"]
)
async def test_two_framing_headers_are_refused(api: Caller, repeat: str) -> None:
    """A second Content-Length (a smuggling classic) or Content-Type is refused with 400 (by
    the HTTP parser, before any handler) and writes nothing."""
    body = b'{"name": "two"}'
    lines = [f"Authorization: Bearer {api.key}", f"Content-Length: {len(body)}"]
    lines += ["Content-Type: application/json", repeat]
    response = await answer(api.base, request("POST", "/v1/t", *lines, body=body))
    assert response.status == 400, response
    status, _, page = await api.get("/v1/t")
    assert status == 200
    assert len(page["items"]) == 1


async def test_repeated_ordinary_headers_are_joined(api: Caller) -> None:
    """Two Accept headers are read as one list (RFC 9110): `text/csv` in the first is honoured
    although the second names only a type the agent cannot serve."""
    lines = [f"Authorization: Bearer {api.key}", "Accept: text/csv", "Accept: application/x-foo"]
    response = await answer(api.base, request("GET", "/v1/t", *lines))
    assert response.status == 200, response
    assert response.headers["content-type"].startswith("text/csv")
