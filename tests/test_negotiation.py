# Small HTTP behaviours of reads: `Accept` negotiated with q-values (406 when nothing served
# is acceptable) and `select=` on a single row, whose ETag stays the whole row's.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller

from bridgehead.agent.api.export import CSV, NDJSON, export_format
from bridgehead.agent.errors import NotAcceptable

CHOICES = [
    ("", None),
    ("*/*", None),
    ("application/*", None),
    ("application/json", None),
    ("text/csv;q=0.5, application/json", None),
    ("text/csv, application/json;q=0.9", CSV),
    ("application/x-ndjson", NDJSON),
    ("text/*", CSV),
    ("application/json;q=0, */*", NDJSON),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None),
    ("TEXT/CSV; charset=utf-8", CSV),
]


@pytest.mark.parametrize(("accept", "chosen"), CHOICES)
def test_accept_q_values_choose_the_format(accept: str, chosen: str | None) -> None:
    """The served type with the highest q wins (the most specific range's q counts); equal
    weights and wildcards pick JSON (None); a missing Accept is JSON."""
    assert export_format(accept) == chosen


@pytest.mark.parametrize("accept", ["image/png", "text/csv;q=0", "application/json;q=0"])
def test_accept_with_nothing_served_is_not_acceptable(accept: str) -> None:
    """An Accept that allows none of JSON, NDJSON and CSV is a 406 naming the served types."""
    with pytest.raises(NotAcceptable) as refused:
        export_format(accept)
    assert refused.value.status == 406
    assert "application/json, application/x-ndjson, text/csv" in refused.value.detail


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, note TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one', 'first'), (2, 'two', 'second')")
    db.close()


@pytest.fixture
async def api(tmp_path: Path, run_agent: Any) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "n.db")
    resources = {
        "t": {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "update"]}
    }
    caller: Caller = await run_agent({"db": {"sqlite": str(tmp_path / "n.db")}}, resources)
    return caller


async def test_accept_over_http(api: Caller) -> None:
    """q-values pick JSON over CSV; an unservable Accept is a 406 problem."""
    status, headers, body = await api.get("/v1/t", Accept="text/csv;q=0.5, application/json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert len(body["items"]) == 2
    status, headers, body = await api.get("/v1/t", Accept="image/png")
    assert status == 406, body
    assert headers["Content-Type"] == "application/problem+json"
    assert "text/csv" in body["detail"]


async def test_select_on_one_row_keeps_the_whole_rows_etag(api: Caller) -> None:
    """select= trims GET /{key}; its ETag is the whole row's, so If-Match still works; an
    unknown column is a 400 as for lists."""
    _, full_headers, full = await api.get("/v1/t/1")
    status, headers, row = await api.get("/v1/t/1", {"select": "name"})
    assert (status, row) == (200, {"name": "one"})
    assert full["note"] == "first"
    assert headers["ETag"] == full_headers["ETag"]
    status, _, updated = await api.send(
        "PATCH", "/v1/t/1", {"note": "changed"}, **{"If-Match": headers["ETag"]}
    )
    assert status == 200, updated
    status, _, body = await api.get("/v1/t/1", {"select": "nope"})
    assert status == 400
    assert "nope" in body["detail"]
