# A backlog of 1,000,000 change events, streamed from a real agent process: the event log
# is filled directly (one executemany, not through capture), the agent started on it, and
# `GET /v1/events` read from 0 to the last event over HTTP as NDJSON. The agent reads the log
# in batches and writes with the socket's back-pressure, so its peak RSS grows by a bounded
# amount whatever the backlog; every event arrives once, in order. On the way, /readyz stays
# 200 and warns of the consumer 1M events behind, and /metrics counts it without scanning.
from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from agentproc import AgentProcess, free_port

from bridgehead.adapters.types import TableRef
from bridgehead.agent.events.ddl import Capture, install_statements
from bridgehead.agent.events.log import EventLog

EVENTS = 1_000_000
KEY = "backlog-memory-key"
BOUND_MIB = 64


def rows(count: int, at: str) -> Iterator[tuple[Any, ...]]:
    for i in range(1, count + 1):
        data = orjson.dumps({"id": i, "name": f"customer {i}", "balance": f"{i % 1000}.25"})
        yield (i, f"evt-{i:012d}", "customers", "bridgehead.row.updated", str(i),
               f"customers/{i}", at, data)  # fmt: skip


def fill_log(path: Path, count: int) -> None:
    """`count` events in the agent's event log, made as the log makes its tables, and the
    consumer webhook.crm at position 0."""
    EventLog(path).close()
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows(count, at))
        db.execute("INSERT INTO consumers (name, position, updated) VALUES (?, 0, ?)",
                   ("webhook.crm", at))  # fmt: skip
        db.execute("COMMIT")
    finally:
        db.close()


def legacy_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, balance TEXT)")
        for sql in install_statements("sqlite", [Capture("customers", TableRef("customers"),
                                                         ("id",))]):  # fmt: skip
            db.execute(sql)
    db.close()


def agent_yaml(tmp_path: Path, port: int, admin: int) -> Path:
    config = {
        "sources": {"db": {"sqlite": str(tmp_path / "legacy.db")}},
        "resources": {"customers": {"source": "db", "table": "customers", "key": ["id"],
                                    "events": {"capture": "triggers"}}},
        "auth": {"api_keys": [{"name": "t", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                               "scopes": ["events:read", "customers:read"]}]},
        "listen": f"127.0.0.1:{port}",
        "admin": f"127.0.0.1:{admin}",
        "state_dir": str(tmp_path / "state"),
    }  # fmt: skip
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "agent.yaml"


def stream(port: int, after: int, upto: int) -> int:
    """Read `GET /v1/events?after=AFTER` until event `upto`, checking each arrives in order;
    how many arrived. (The stream stays open for new events: the reader closes it.)"""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", f"/v1/events?after={after}",
                       headers={"Authorization": f"Bearer {KEY}",
                                "Accept": "application/x-ndjson"})  # fmt: skip
    response = connection.getresponse()
    assert response.status == 200
    expected, rest = after + 1, b""
    try:
        while expected <= upto:
            chunk = response.read1(1 << 16)
            assert chunk, f"the stream ended before event {expected}"
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                record = orjson.loads(line)
                assert (record["sequence"], record["subject"]) == (str(expected), str(expected))
                expected += 1
    finally:
        connection.close()
    return expected - 1 - after


def admin_get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return int(r.status), bytes(r.read())


def test_streaming_a_million_event_backlog_keeps_memory_flat(tmp_path: Path) -> None:
    """Peak RSS grows by less than 64 MiB while 1M events stream out, all of them in order;
    /readyz is 200 with a warning naming webhook.crm 1,000,000 events behind."""
    started = time.monotonic()
    fill_log(tmp_path / "state" / "events.db", EVENTS)
    legacy_db(tmp_path / "legacy.db")
    filled = time.monotonic() - started
    port, admin = free_port(), free_port()
    agent = AgentProcess(agent_yaml(tmp_path, port, admin), port)
    try:
        assert stream(port, EVENTS - 1000, EVENTS) == 1000  # the path warmed up
        scraped = time.monotonic()
        status, body = admin_get(admin, "/readyz")  # the figures read from the log, then kept 1 s
        _, metrics = admin_get(admin, "/metrics")
        scrape = time.monotonic() - scraped
        ready = json.loads(body)
        before = agent.peak_rss_kib()
        began = time.monotonic()
        arrived = stream(port, 0, EVENTS)
        took = time.monotonic() - began
        after = agent.peak_rss_kib()
    finally:
        agent.stop()
    grew_mib = (after - before) / 1024
    print(f"\nfilled {EVENTS} events in {filled:.1f} s; streamed them in {took:.1f} s "
          f"({EVENTS / took:,.0f} events/s); peak RSS {before / 1024:.1f} -> "
          f"{after / 1024:.1f} MiB (+{grew_mib:.1f}); /readyz and /metrics took "
          f"{scrape * 1000:.0f} ms")  # fmt: skip
    assert arrived == EVENTS
    assert grew_mib < BOUND_MIB
    assert (status, ready["ready"]) == (200, True)
    assert [w["name"] for w in ready["warnings"]] == ["events:webhook.crm"]
    assert "is 1000000 events behind (warning at 100000)" in ready["warnings"][0]["reason"]
    assert b'bridgehead_events_consumer_backlog{consumer="webhook.crm"} 1e+06' in metrics
