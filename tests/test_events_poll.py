"""Change events captured by polling a watermark column, on real SQLite and PostgreSQL: rows
sharing one watermark across batches are each emitted once; a row committed late with a
watermark inside `lag` is not missed; an updated row is `updated`, a new one `created`;
deletes are found by reconciliation and emitted as tombstones."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from backends import Backend
from conftest import Caller, make_backend
from test_events import lines

DATABASES = itertools.count()
STAMP = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    b = make_backend(request.param, request, tmp_path, f"poll_{next(DATABASES)}")
    b.run([f"CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(40), "
           f"updated_at {b.types['ts']} NOT NULL)"])  # fmt: skip
    return b


def insert(backend: Backend, ids: range, stamp: datetime, label: str = "item") -> None:
    text = stamp.isoformat(" ")
    for first in range(ids.start, ids.stop, 1000):
        values = ", ".join(f"({i}, '{label} {i}', '{text}')"
                           for i in range(first, min(first + 1000, ids.stop)))  # fmt: skip
        backend.run([f"INSERT INTO items VALUES {values}"])


async def agent_for(run_agent: Any, backend: Backend, **events: Any) -> Caller:
    settings = {"capture": "poll", "watermark": "updated_at", "lag": "2s", **events}
    resources = {"items": {"source": "db", "table": "items", "key": ["id"], "events": settings}}
    return await run_agent({"db": backend.source}, resources,  # type: ignore[no-any-return]
                           events={"interval": "100ms"})  # fmt: skip


async def test_ties_late_commits_updates_and_deletes(backend: Backend, run_agent: Any) -> None:
    """2,500 rows with one watermark: 2,500 created events, once each. Then a row updated
    with a watermark older than now but inside lag, one new row, and a delete found by the
    reconciliation every second."""
    await asyncio.to_thread(insert, backend, range(1, 2501), STAMP)
    agent = await agent_for(run_agent, backend, every="1s")
    first = [orjson.loads(line) for line in await lines(agent, "/v1/events", 2500)]
    assert sorted(int(r["subject"]) for r in first) == list(range(1, 2501))
    assert {r["type"] for r in first} == {"bridgehead.row.created"}

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    late = (now - timedelta(seconds=1)).isoformat(" ")
    await asyncio.to_thread(backend.run, [
        f"UPDATE items SET label = 'late', updated_at = '{late}' WHERE id = 7",
        "DELETE FROM items WHERE id = 9",
    ])  # fmt: skip
    await asyncio.to_thread(insert, backend, range(2501, 2502), now - timedelta(seconds=1))
    more = [orjson.loads(line) for line in await lines(agent, "/v1/events?after=2500", 3)]
    found = {(r["type"], r["subject"]) for r in more}
    assert found == {("bridgehead.row.updated", "7"), ("bridgehead.row.created", "2501"),
                     ("bridgehead.row.deleted", "9")}  # fmt: skip
    updated = next(r for r in more if r["subject"] == "7")
    assert updated["data"]["label"] == "late"
    deleted = next(r for r in more if r["subject"] == "9")
    assert deleted["data"] == {"id": 9}
