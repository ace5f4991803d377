# The agent's limits through real HTTP: body size (413), per-principal request rate (429
# with Retry-After), and the idempotency store's expiry under an injected clock.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bridgehead.agent.api.idempotency import IdempotencyStore
from bridgehead.agent.api.message import ApiResponse


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()


async def start(tmp_path: Path, run_agent: Any, **limits: Any) -> Any:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resource = {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}
    return await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}}, {"t": resource}, limits=limits
    )


async def test_body_over_the_limit_is_413(tmp_path: Path, run_agent: Any) -> None:
    """A body larger than limits.max_body_bytes is refused with a 413 problem."""
    api = await start(tmp_path, run_agent, max_body_bytes=2048)
    status, headers, body = await api.send("POST", "/v1/t", {"id": 1, "name": "x" * 5000})
    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    assert body["detail"] == "the request body is larger than 2048 bytes"
    assert (await api.send("POST", "/v1/t", {"id": 1, "name": "x" * 100}))[0] == 201


async def test_rate_limit_is_429_with_retry_after(tmp_path: Path, run_agent: Any) -> None:
    """Past the burst, a principal gets 429 with Retry-After; another principal is unaffected."""
    api = await start(tmp_path, run_agent, requests_per_second=1, burst=3)
    statuses = [(await api.get("/v1/t"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    status, headers, body = await api.get("/v1/t")
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert body["detail"].startswith("tester is over its request rate")
    assert (await api.get("/v1/t", key="nobody-key"))[0] == 403


async def test_idempotency_keys_expire(tmp_path: Path) -> None:
    """A finished key answers until its TTL passes; then the same key can be claimed anew."""
    now = [1000.0]
    store = IdempotencyStore(tmp_path / "idem.db", ttl=60, clock=lambda: now[0])
    await store.open()
    try:
        assert await store.claim("p", "k", "hash-1") is None
        await store.finish("p", "k", ApiResponse(201, {"X": "1"}, b"{}"))
        entry = await store.claim("p", "k", "hash-1")
        assert entry is not None
        assert entry.state == "done"
        assert entry.response is not None
        assert entry.response.status == 201
        now[0] += 61
        assert await store.claim("p", "k", "hash-2") is None
    finally:
        await store.close()
