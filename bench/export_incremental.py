"""Benchmark: export 1,000,000 changed PostgreSQL rows by an incremental export job.

The table is (id bigint primary key, name text, country char(2), amount numeric(12,2),
updated_at timestamp), every row changed since the job's (empty) watermark. Two ways of
taking all of them out of an in-process `Agent` are timed in the same run:

- the baseline: the agent's own NDJSON stream of the resource (`GET /v1/items` with
  `Accept: application/x-ndjson`), read by an aiohttp client that counts the lines;
- an export job (`incremental: updated_at`, NDJSON chunks of `--chunk-rows`, 10,000 by
  default), started with `POST /v1/jobs/NAME/runs` and polled until it ends, POSTing each
  chunk to an aiohttp receiver on 127.0.0.1 that counts the rows and answers 204.

Both must deliver every row once (the receiver's count, the report's `exported`), or the
run aborts. Prints rows/s for each and the ratio export/stream. Run from the repository root:

    .venv/bin/python bench/export_incremental.py [--rows 1000000] [--chunk-rows 10000]

It starts a throwaway PostgreSQL server (tests/dbservers.py) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyodbc
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dbservers import PostgresServer

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config

KEY = "bench-key"
JOB = "out"


def load(connection_string: str, rows: int) -> None:
    db = pyodbc.connect(connection_string, autocommit=True)
    db.execute(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, country CHAR(2) NOT "
        "NULL, amount NUMERIC(12,2) NOT NULL, updated_at TIMESTAMP NOT NULL)"
    )
    db.execute(
        "INSERT INTO items SELECT i, 'name ' || i, "
        "(ARRAY['GB','FR','DE','ES','IT','NL','SE','PL','US','JP'])[i % 10 + 1], "
        "(i * 37 % 10000000) / 100.0, TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL '1 second' "
        f"FROM generate_series(1, {rows}) i"
    )
    db.execute("CREATE INDEX items_updated ON items (updated_at, id)")
    db.execute("VACUUM ANALYZE items")
    db.close()


class Receiver:
    """The ingest endpoint: counts the rows of each chunk and answers 204."""

    def __init__(self) -> None:
        self.rows = self.chunks = 0

    async def ingest(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.rows += body.count(b"\n")
        self.chunks += 1
        return web.Response(status=204)


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/ingest", receiver.ingest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/ingest"


def agent_config(
    folder: Path, connection_string: str, rows: int, url: str, chunk_rows: int
) -> Path:
    config = {
        "sources": {"db": {"odbc": connection_string}},
        "resources": {"items": {"source": "db", "table": "items", "key": ["id"],
                                "max_rows": rows}},
        "jobs": {JOB: {"export": {"from": "items", "incremental": "updated_at",
                                  "to": {"url": url, "format": "ndjson",
                                         "chunk_rows": chunk_rows}}}},
        "auth": {
            "api_keys": [
                {"name": "bench", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                 "scopes": ["items:read", f"jobs:{JOB}"]}
            ]
        },
        "listen": "127.0.0.1:0",
        "admin": None,
        "state_dir": str(folder / "state"),
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def stream(session: aiohttp.ClientSession, base: str) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"}
    started = time.perf_counter()
    lines = 0
    async with session.get(f"{base}/v1/items", headers=headers) as answer:
        if answer.status != 200:
            raise SystemExit(f"the stream answered {answer.status}: {await answer.text()}")
        async for chunk in answer.content.iter_chunked(1 << 18):
            lines += chunk.count(b"\n")
    return lines, time.perf_counter() - started


async def export(session: aiohttp.ClientSession, base: str) -> tuple[dict[str, Any], float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    started = time.perf_counter()
    async with session.post(f"{base}/v1/jobs/{JOB}/runs", json={}, headers=headers) as answer:
        run = await answer.json()
        if answer.status != 202:
            raise SystemExit(f"the job did not start: {answer.status} {run}")
    while True:
        await asyncio.sleep(0.1)
        async with session.get(f"{base}/v1/jobs/{JOB}/runs/{run['id']}",
                               headers=headers) as answer:  # fmt: skip
            report: dict[str, Any] = await answer.json()
        if report["status"] != "running":
            return report, time.perf_counter() - started


async def measure(
    folder: Path, connection_string: str, rows: int, chunk_rows: int
) -> tuple[int, float, int, float, dict[str, Any]]:
    receiver = Receiver()
    runner, url = await serve(receiver)
    config = agent_config(folder, connection_string, rows, url, chunk_rows)
    agent = Agent(await asyncio.to_thread(load_config, config))
    await agent.start()
    assert agent.listen_url is not None
    try:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            streamed, stream_s = await stream(session, agent.listen_url)
            report, export_s = await export(session, agent.listen_url)
    finally:
        await agent.stop()
        await runner.cleanup()
    if report["status"] != "succeeded":
        raise SystemExit(f"the export job failed: {report.get('error')}")
    return streamed, stream_s, receiver.rows, export_s, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    args = parser.parse_args()
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        server.create_database("bench")
        connection_string = server.odbc_connection_string("bench")
        load(connection_string, args.rows)
        streamed, stream_s, received, export_s, report = asyncio.run(
            measure(Path(folder), connection_string, args.rows, args.chunk_rows)
        )
    found = (streamed, received, report["exported"])
    if found != (args.rows,) * 3:
        raise SystemExit(f"mismatch: (streamed, received, exported) {found}, not {args.rows}")
    stream_rate, export_rate = streamed / stream_s, received / export_s
    print(f"rows: {args.rows:,} x 5 columns (PostgreSQL via psqlODBC), export chunk_rows "
          f"{args.chunk_rows} ({report['chunks']} chunks)")  # fmt: skip
    print(f"agent NDJSON stream (GET):      {stream_rate:10,.0f} rows/s  ({stream_s:.2f} s)")
    print(f"incremental export job (POST):  {export_rate:10,.0f} rows/s  ({export_s:.2f} s)")
    print(f"ratio export/stream:            {export_rate / stream_rate:10.2f}")


if __name__ == "__main__":
    main()
