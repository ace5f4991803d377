"""Change events end to end on SQLite: a "legacy application" (plain sqlite3, knowing nothing
of Bridgehead) changes rows; the triggers `bridgehead events install` makes write the
outbox; the agent captures it into its event log and serves it on `/v1/events` as
CloudEvents, streamed as NDJSON or Server-Sent Events, in order, resumable from a sequence, a
`Last-Event-ID` or a named consumer's committed position; a resource's events need its read
scope, directly and through the relay; an agent killed between appending a batch and
deleting it from the outbox loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from agentproc import AgentProcess, free_port, stop_process
from conftest import Caller, make_backend
from tunnelkit import Pki, reached_both_ways, running_relay

from bridgehead.adapters.types import TableRef
from bridgehead.agent.events.ddl import Capture, install_statements

TOKEN = "events-token"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()
RESOURCES = {
    "customers": {"source": "db", "table": "customers", "key": ["id"],
                  "events": {"capture": "triggers"}},
    "notes": {"source": "db", "table": "notes", "key": ["id"]},
}  # fmt: skip


def legacy_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, balance NUMERIC)")
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        for sql in install_statements("sqlite", [Capture("customers", TableRef("customers"),
                                                         ("id",))]):  # fmt: skip
            db.execute(sql)
    db.close()


def legacy_changes(path: Path) -> None:
    """What the legacy application does, with no idea Bridgehead exists."""
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO customers VALUES (1, 'Ada', 10.50)")
        db.execute("INSERT INTO customers VALUES (2, 'Grace', 7)")
        db.execute("UPDATE customers SET balance = 11.25 WHERE id = 1")
        db.execute("DELETE FROM customers WHERE id = 2")
        db.execute("INSERT INTO notes VALUES (1, 'not captured')")
    db.close()


async def lines(caller: Caller, path: str, count: int, **headers: str) -> list[bytes]:
    """The first `count` non-empty lines of a stream that stays open."""
    sent = {"Authorization": f"Bearer {caller.key}", **headers}
    got: list[bytes] = []
    async with caller.session.get(caller.base + path, headers=sent) as answer:
        assert answer.status == 200, await answer.text()
        async with asyncio.timeout(20):
            while len(got) < count:
                line = await answer.content.readline()
                if line.strip():
                    got.append(line.rstrip(b"\n"))
    return got


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.db"
    await asyncio.to_thread(legacy_db, path)
    return path


async def agent_for(run_agent: Any, database: Path, **extra: Any) -> Caller:
    extra.setdefault("events", {"interval": "100ms"})
    return await run_agent({"db": {"sqlite": str(database)}}, RESOURCES,  # type: ignore[no-any-return]
                           api_key=extra.pop("api_key", TOKEN), **extra)  # fmt: skip


async def test_changes_by_the_legacy_application_stream_out_in_order(
    database: Path, run_agent: Any
) -> None:
    """Four changes to customers become four CloudEvents, in order, with the row as the API
    serves it (the exact decimal), the key alone for the delete; notes, not captured, emit
    nothing; the outbox is emptied once the events are in the log."""
    agent = await agent_for(run_agent, database)
    await asyncio.to_thread(legacy_changes, database)
    records = [orjson.loads(line) for line in await lines(agent, "/v1/events", 4)]
    assert [(r["type"], r["subject"], r["sequence"]) for r in records] == [
        ("bridgehead.row.created", "1", "1"), ("bridgehead.row.created", "2", "2"),
        ("bridgehead.row.updated", "1", "3"), ("bridgehead.row.deleted", "2", "4"),
    ]  # fmt: skip
    assert records[3]["data"] == {"id": 2}
    assert records[2]["data"] == {"id": 1, "name": "Ada", "balance": "11.25"}
    assert records[0]["specversion"] == "1.0"
    assert records[0]["source"].endswith("/resources/customers")
    assert records[0]["partitionkey"] == "customers/1"
    assert len({r["id"] for r in records}) == 4

    def outbox() -> int:
        with sqlite3.connect(database) as db:
            found = int(db.execute("SELECT count(*) FROM bridgehead_outbox").fetchone()[0])
        db.close()
        return found

    async def emptied() -> bool:
        return await asyncio.to_thread(outbox) == 0

    deadline = asyncio.get_running_loop().time() + 10
    while not await emptied():  # the outbox is cleared just after the log has the events
        assert asyncio.get_running_loop().time() < deadline, "the outbox was not cleared"
        await asyncio.sleep(0.05)
    tail = await lines(agent, "/v1/events?after=3&types=bridgehead.row.deleted", 1)
    assert orjson.loads(tail[0])["sequence"] == "4"


async def test_sse_resumes_and_a_consumer_commits_its_position(
    database: Path, run_agent: Any
) -> None:
    """SSE carries the sequence as `id:` and resumes after Last-Event-ID; a named consumer
    starts from its committed position, which an ack moves (never backwards)."""
    agent = await agent_for(run_agent, database)
    await asyncio.to_thread(legacy_changes, database)
    sse = await lines(agent, "/v1/events", 6, Accept="text/event-stream", **{"Last-Event-ID": "2"})
    assert sse[0] == b"id: 3"
    assert sse[1] == b"event: bridgehead.row.updated"
    assert orjson.loads(sse[2].removeprefix(b"data: "))["sequence"] == "3"
    assert sse[3] == b"id: 4"
    first = await lines(agent, "/v1/events?consumer=crm", 1)
    assert orjson.loads(first[0])["sequence"] == "1"
    status, _, acked = await agent.send("POST", "/v1/events/consumers/crm/ack", {"upto": 3})
    assert (status, acked) == (200, {"consumer": "crm", "position": 3})
    assert (await agent.send("POST", "/v1/events/consumers/crm/ack", {"upto": 1}))[2][
        "position"] == 3  # fmt: skip
    resumed = await lines(agent, "/v1/events?consumer=crm", 1)
    assert orjson.loads(resumed[0])["sequence"] == "4"


async def test_events_need_the_resources_read_scope(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """A key with events:read but not customers:read is refused customers' events (403),
    directly and through the relay; a key without events:read is refused too."""
    no_events = "no-events-key"
    keys = [
        {"name": "notes-only", "key_sha256": DIGEST, "scopes": ["events:read", "notes:read"]},
        {"name": "no-events", "key_sha256": hashlib.sha256(no_events.encode()).hexdigest(),
         "scopes": ["customers:read"]},
    ]  # fmt: skip
    async with (
        running_relay(pki, TOKEN) as relay,
        reached_both_ways(pki, relay, run_agent, database, RESOURCES, TOKEN,
                          auth={"api_keys": keys}, events={"interval": "100ms"}) as both,
    ):  # fmt: skip
        for caller in both:
            for path in ("/v1/events", "/v1/events?resources=customers"):
                status, _, problem = await caller.get(path)
                assert status == 403, (caller.base, path, problem)
                assert "customers" in problem["detail"] or "none of the" in problem["detail"]
        status, _, problem = await both[0].get("/v1/events", key=no_events)
        assert status == 403
        assert "events:read" in problem["detail"]


def test_an_agent_killed_after_appending_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL after a batch is in the event log but before the outbox rows are deleted: the
    restarted agent captures them again and the log keeps one event each."""
    database = tmp_path / "legacy.db"
    legacy_db(database)
    legacy_changes(database)
    port = free_port()
    config = {
        "sources": {"db": {"sqlite": str(database)}}, "resources": RESOURCES,
        "auth": {"api_keys": [{"name": "k", "key_sha256": DIGEST,
                               "scopes": ["events:read", "customers:read"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None, "events": {"interval": "100ms"},
        "state_dir": str(tmp_path / "state"),
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    doomed = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(path)],
        env={**os.environ, "BRIDGEHEAD_FAILPOINT": "events-appended"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert doomed.wait(30) == -signal.SIGKILL
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM bridgehead_outbox").fetchone()[0] == 4
    db.close()
    again = AgentProcess(path, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            with sqlite3.connect(database) as db:
                left = db.execute("SELECT count(*) FROM bridgehead_outbox").fetchone()[0]
            db.close()
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert left == 0
    finally:
        stop_process(again.process)
        assert again.process.stderr is not None
        again.process.stderr.close()
    with sqlite3.connect(tmp_path / "state" / "events.db") as db:
        rows = db.execute("SELECT seq, type, subject FROM events ORDER BY seq").fetchall()
    db.close()
    assert rows == [
        (1, "bridgehead.row.created", "1"), (2, "bridgehead.row.created", "2"),
        (3, "bridgehead.row.updated", "1"), (4, "bridgehead.row.deleted", "2"),
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["postgresql", "mariadb"])
async def test_changes_on_postgresql_and_mariadb_stream_out(
    name: str, run_agent: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same legacy changes on PostgreSQL and MariaDB, through their ODBC drivers and the
    triggers install makes there, arrive in order with the rows as the API serves them."""
    backend = await asyncio.to_thread(make_backend, name, request, tmp_path, f"events_{name}")
    dialect = "postgresql" if name == "postgresql" else "mysql"
    capture = Capture("customers", TableRef("customers"), ("id",))
    await asyncio.to_thread(backend.run, [
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40), "
        "balance NUMERIC(12,2))",
        *install_statements(dialect, [capture]),
    ])  # fmt: skip
    resources = {"customers": {"source": "db", "table": "customers", "key": ["id"],
                               "events": {"capture": "triggers"}}}  # fmt: skip
    agent = await run_agent({"db": backend.source}, resources, events={"interval": "100ms"})
    await asyncio.to_thread(backend.run, [
        "INSERT INTO customers VALUES (1, 'Ada', 10.50)",
        "UPDATE customers SET balance = 11.25 WHERE id = 1",
        "DELETE FROM customers WHERE id = 1",
    ])  # fmt: skip
    records = [orjson.loads(line) for line in await lines(agent, "/v1/events", 3)]
    assert [(r["type"], r["subject"]) for r in records] == [
        ("bridgehead.row.created", "1"), ("bridgehead.row.updated", "1"),
        ("bridgehead.row.deleted", "1"),
    ]  # fmt: skip
    assert records[2]["data"] == {"id": 1}
    assert records[0]["time"].endswith("Z")
