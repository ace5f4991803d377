# The Idempotency-Key store under load: every claim ran an unindexed
# `DELETE ... WHERE created < ?` and refused requests were stored too, so each key made the
# next one slower. Expiry is indexed and runs in bounded batches apart from claims, only
# writes that reach the database are recorded, and a principal's live keys are capped (429).
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller

from bridgehead.agent.api.idempotency import IdempotencyStore, KeyLimitReached


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM writes").fetchone()
    db.close()
    return int(count)


def expiry_plan(path: Path) -> str:
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM writes WHERE created < 1 LIMIT 10"
        ).fetchall()
    db.close()
    return " ".join(str(step[-1]) for step in plan)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    clock = Clock()
    opened = IdempotencyStore(tmp_path / "idempotency.db", ttl=60, clock=clock, max_keys=50)
    await opened.open()
    yield opened, clock, tmp_path / "idempotency.db"
    await opened.close()


async def test_claims_leave_expiry_to_bounded_batches(store: Any) -> None:
    """A claim deletes nothing; expired keys are free at once and go in batches of at most
    the batch size, by the index on `created`."""
    keys, clock, path = store
    for i in range(30):
        assert await keys.claim("key:a", f"k{i}", "h") is None
    clock.now += 61
    assert await keys.claim("key:a", "k0", "other") is None  # expired: free again
    assert await keys.claim("key:a", "fresh", "h") is None
    assert await asyncio.to_thread(rows, path) == 31  # the claims deleted nothing
    assert await keys.expire(batch=10) == 10
    assert await keys.expire(batch=10) == 10
    assert await keys.expire(batch=10) == 9
    assert await keys.expire(batch=10) == 0
    assert await asyncio.to_thread(rows, path) == 2
    assert "writes_created" in await asyncio.to_thread(expiry_plan, path)


async def test_live_keys_per_principal_are_capped(store: Any) -> None:
    """Past `max_keys` live keys a new key is refused with the time until the oldest expires;
    known keys still answer, other principals are not affected, expiry makes room."""
    keys, clock, _ = store
    for i in range(50):
        assert await keys.claim("key:a", f"k{i}", "h") is None
        clock.now += 0.5
    with pytest.raises(KeyLimitReached) as refused:
        await keys.claim("key:a", "one-more", "h")
    assert 30 <= refused.value.retry_after <= 36
    assert await keys.claim("key:a", "k3", "h") is not None  # a known key still answers
    assert await keys.claim("key:b", "k0", "h") is None
    await keys.release("key:a", "k7")
    assert await keys.claim("key:a", "one-more", "h") is None
    clock.now += 61
    assert await keys.claim("key:a", "after-expiry", "h") is None


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL UNIQUE)")
    db.close()


@pytest.fixture
async def api(tmp_path: Path, run_agent: Any) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resource = {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}
    caller: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": resource},
        idempotency={"ttl": "1h", "max_keys_per_principal": 3},
    )
    return caller


async def test_only_writes_that_reach_the_database_are_recorded(api: Caller) -> None:
    """Requests refused by validation leave no key behind; a database refusal (409) is
    recorded and replayed; past the cap a new key is 429 with Retry-After."""
    assert api.agent is not None
    path = api.agent.config.state_path / "idempotency.db"
    for i in range(20):
        status, _, _ = await api.send("POST", "/v1/t", {"n": "x"}, **{"Idempotency-Key": f"v{i}"})
        assert status == 400
    assert await asyncio.to_thread(rows, path) == 0
    status, _, _ = await api.send("POST", "/v1/t", {"n": 1}, **{"Idempotency-Key": "a"})
    assert status == 201
    status, _, _ = await api.send("POST", "/v1/t", {"n": 1}, **{"Idempotency-Key": "b"})
    assert status == 409
    status, headers, _ = await api.send("POST", "/v1/t", {"n": 1}, **{"Idempotency-Key": "b"})
    assert (status, headers.get("Idempotent-Replayed")) == (409, "true")
    status, _, _ = await api.send("POST", "/v1/t", {"n": 2}, **{"Idempotency-Key": "c"})
    assert status == 201
    status, headers, problem = await api.send("POST", "/v1/t", {"n": 3}, **{"Idempotency-Key": "d"})
    assert status == 429, problem
    assert int(headers["Retry-After"]) > 3000
    assert "max_keys_per_principal" in problem["detail"]
    status, headers, _ = await api.send("POST", "/v1/t", {"n": 2}, **{"Idempotency-Key": "c"})
    assert (status, headers.get("Idempotent-Replayed")) == (201, "true")
