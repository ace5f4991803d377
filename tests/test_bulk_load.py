"""Bulk loads: `POST /v1/{resource}` with an NDJSON or CSV body, on the local listener and
through the relay's tunnel. Rows are inserted, or upserted with `Prefer:
resolution=merge-duplicates`, unchanged rows not written (no trigger fires); one bad row,
one conflicting row or one row past `limits.max_bulk_rows` and nothing is loaded; a body
larger than the tunnel's stream window streams through with the relay held back by flow
control; a 500,000-row body is loaded in bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from agentproc import free_port, listening, stop_process
from conftest import Caller
from tunnelkit import Pki, reached_both_ways, running_relay

TOKEN = "bulk-load-token"
NDJSON = "application/x-ndjson"
RESOURCES = {"places": {"source": "db", "table": "places", "key": ["id"],
                        "operations": ["read", "insert", "update"]}}  # fmt: skip


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT NOT NULL, population INTEGER);
            CREATE TABLE writes (n INTEGER NOT NULL); INSERT INTO writes VALUES (0);
            CREATE TRIGGER counted_update AFTER UPDATE ON places
                BEGIN UPDATE writes SET n = n + 1; END;
            CREATE TRIGGER counted_insert AFTER INSERT ON places
                BEGIN UPDATE writes SET n = n + 1; END;
        """)
    db.close()


def ndjson(rows: range, name: str = "town") -> bytes:
    return b"".join(
        orjson.dumps({"id": i, "name": f"{name} {i}", "population": i}) + b"\n" for i in rows
    )


def existing(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO places VALUES (100, 'existing', 1)")
    db.close()


def count(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT count(*) FROM places").fetchone()[0]
        writes = db.execute("SELECT n FROM writes").fetchone()[0]
    db.close()
    return int(rows), int(writes)


async def post(caller: Caller, body: bytes, media: str = NDJSON, **headers: str) -> tuple[int, Any]:
    sent = {"Authorization": f"Bearer {caller.key}", "Content-Type": media, **headers}
    data = io.BytesIO(body)
    async with caller.session.post(f"{caller.base}/v1/places", data=data, headers=sent) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "places.db"
    await asyncio.to_thread(make_db, path)
    return path


async def test_ndjson_inserts_and_csv_merges_duplicates(database: Path, run_agent: Any) -> None:
    """10,000 NDJSON rows are inserted in one load; a CSV load with merge-duplicates then
    updates the one changed row, adds one and leaves the rest unwritten (the trigger that
    counts writes moves by two)."""
    agent = await run_agent({"db": {"sqlite": str(database)}}, RESOURCES)
    status, counts = await post(agent, ndjson(range(1, 10_001)))
    assert (status, counts) == (200, {"read": 10_000, "inserted": 10_000, "updated": 0,
                                      "unchanged": 0})  # fmt: skip
    assert await asyncio.to_thread(count, database) == (10_000, 10_000)
    csv = b"id,name,population\r\n1,town 1,1\r\n2,renamed,2\r\n3,town 3,3\r\n10001,new,7\r\n"
    status, counts = await post(agent, csv, "text/csv",
                                Prefer="resolution=merge-duplicates")  # fmt: skip
    assert (status, counts) == (200, {"read": 4, "inserted": 1, "updated": 1, "unchanged": 2})
    assert await asyncio.to_thread(count, database) == (10_001, 10_002)


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (
            ndjson(range(1, 4)) + b'{"id": 4, "population": "many"}\n',
            {},
            400,
            "1 rows rejected, nothing was loaded: line 4: column 'population'",
        ),
        (
            ndjson(range(1, 3)) + ndjson(range(100, 101), "other"),
            {},
            400,
            "line 3: a different row with this key exists",
        ),
        (ndjson(range(1, 30)), {}, 413, "more than limits.max_bulk_rows (25) rows"),
        (ndjson(range(1, 3)), {"Idempotency-Key": "k1"}, 400, "takes no Idempotency-Key"),
    ],
    ids=["a-bad-value", "a-conflict-without-merge", "past-max-bulk-rows", "idempotency-key"],
)
async def test_one_bad_row_and_nothing_is_loaded(
    database: Path, run_agent: Any, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    """Row 100 exists already with another name; each load here fails whole, saying why,
    and the table (rows and write count) is exactly as before."""
    await asyncio.to_thread(existing, database)
    agent = await run_agent({"db": {"sqlite": str(database)}}, RESOURCES,
                            limits={"max_bulk_rows": 25})  # fmt: skip
    before = await asyncio.to_thread(count, database)
    got, problem = await post(agent, body, **headers)
    assert got == status, problem
    assert says in problem["detail"]
    assert await asyncio.to_thread(count, database) == before


async def test_a_bulk_load_streams_through_the_tunnel(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """50,000 rows (about 3 MB, several times the tunnel's 1 MiB stream window) through the
    relay: the agent takes the body as it comes, giving flow-control credit back as it
    applies it, and answers with the counts; a repeat with merge-duplicates writes nothing."""
    body = ndjson(range(1, 50_001))
    assert len(body) > 2 * (1 << 20)
    async with (
        running_relay(pki, TOKEN, limits={"max_body_bytes": 64 << 20}) as relay,
        reached_both_ways(pki, relay, run_agent, database, RESOURCES, TOKEN) as (_, cloud),
    ):
        status, counts = await post(cloud, body)
        assert (status, counts["inserted"]) == (200, 50_000), counts
        status, counts = await post(cloud, body, Prefer="resolution=merge-duplicates")
        assert (status, counts["unchanged"], counts["updated"]) == (200, 50_000, 0)
    assert await asyncio.to_thread(count, database) == (50_000, 50_000)


@pytest.mark.allow_blocking  # a client in the test's thread, an agent in its own process
def test_half_a_million_rows_load_in_bounded_memory(tmp_path: Path) -> None:
    """A 500,000-row body (about 30 MB) posted to an agent process: all rows are loaded and
    the agent's peak memory grows by less than 16 MiB over what a 1,000-row load took."""
    database = tmp_path / "places.db"
    make_db(database)
    port, key = free_port(), "bulk-memory-key"
    config = {
        "sources": {"db": {"sqlite": str(database)}}, "resources": RESOURCES,
        "auth": {"api_keys": [{"name": "k", "key_sha256": hashlib.sha256(key.encode()).hexdigest(),
                               "scopes": ["places:read", "places:write"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None, "state_dir": str(tmp_path / "state"),
    }  # fmt: skip
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(tmp_path / "agent.yaml")],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert time.monotonic() < deadline, "the agent did not start listening"
            assert process.poll() is None, "the agent exited"
            time.sleep(0.05)

        def load(rows: range) -> dict[str, Any]:
            async def send() -> dict[str, Any]:
                headers = {"Authorization": f"Bearer {key}", "Content-Type": NDJSON}

                async def pieces() -> Any:
                    for start in range(rows.start, rows.stop, 10_000):
                        yield ndjson(range(start, min(start + 10_000, rows.stop)))

                async with aiohttp.ClientSession() as session, session.post(
                    f"http://127.0.0.1:{port}/v1/places", data=pieces(), headers=headers,
                    timeout=aiohttp.ClientTimeout(total=300),
                ) as answer:  # fmt: skip
                    assert answer.status == 200, await answer.text()
                    return dict(await answer.json())

            return asyncio.run(send())

        def peak_kib() -> int:
            status = Path(f"/proc/{process.pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
            return int(line.split()[1])

        assert load(range(1, 1001))["inserted"] == 1000
        small = peak_kib()
        assert load(range(1001, 500_001))["inserted"] == 499_000
        grown = peak_kib() - small
    finally:
        process.send_signal(signal.SIGTERM)
        stop_process(process)
        assert process.stderr is not None
        process.stderr.close()
    assert count(database)[0] == 500_000
    assert grown < 16 * 1024, f"peak RSS grew {grown} KiB loading 499,000 rows"
    assert os.path.getsize(database) > 10 << 20
