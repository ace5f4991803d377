"""Benchmark: upsert 1,000,000 rows into a PostgreSQL table through an import job of the agent.

The table is (id bigint primary key, name text, country char(2), amount numeric(12,2),
updated_at timestamp). The rows come as a CSV file that a small aiohttp file server on
127.0.0.1 serves; three ways of writing them are timed in the same run, each from an empty
table and then again with 10% of the rows changed:

- the agent: an in-process `Agent` with a `jobs:` import job (mode upsert, chunk_rows 1000
  unless `--chunk-rows`), started with `POST /v1/jobs/NAME/runs` and polled until it ends;
  it reads each chunk's existing rows and writes only new and changed ones;
- bare pyodbc through psqlODBC, the baseline: the CSV parsed with `csv`, then
  `INSERT ... ON CONFLICT (id) DO UPDATE SET ...` by `executemany` (fast_executemany off, as
  psqlODBC needs) in batches of 1000, each committed; it rewrites every row;
- `COPY ... FROM STDIN` through the psql binary, the physical limit: straight into the table
  when it is empty, into a temporary table and one set-based `INSERT ... ON CONFLICT` after.

After each pass of each method the table's count and checksum must equal those the COPY
left, and the agent's counts (inserted, updated, unchanged) must be what the input holds;
a mismatch aborts. Prints rows/s for each, the ratios agent/bare (target >= 0.5) and
agent/COPY, and the agent's peak-RSS growth (VmHWM, reset through /proc/self/clear_refs
before each of its runs). Run from the repository root:

    .venv/bin/python bench/bulk_upsert_pg.py [--rows 1000000] [--chunk-rows 1000]

It starts a throwaway PostgreSQL server (tests/dbservers.py) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
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
JOB = "load"
COLUMNS = ("id", "name", "country", "amount", "updated_at")
COUNTRIES = ("GB", "FR", "DE", "ES", "IT", "NL", "SE", "PL", "US", "JP")
START = dt.datetime(2026, 1, 1)
TABLE = (
    "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, country CHAR(2) NOT NULL, "
    "amount NUMERIC(12,2) NOT NULL, updated_at TIMESTAMP NOT NULL)"
)
ON_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country, "
    "amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at"
)
UPSERT = f"INSERT INTO items VALUES (?, ?, ?, ?, ?) {ON_CONFLICT}"
STAGED_UPSERT = f"INSERT INTO items SELECT * FROM stage {ON_CONFLICT}"
CHECKSUM = (
    "SELECT count(*), md5(string_agg(concat_ws(',', id, name, country, amount, updated_at), "
    "'|' ORDER BY id)) FROM items"
)
BATCH = 1000


def row(i: int, changed: bool) -> tuple[int, str, str, str, str]:
    """Row `i` of the input; `changed` gives its second version (every tenth row differs)."""
    bump = changed and i % 10 == 0
    amount = Decimal((i * 37) % 10_000_000) / 100 + (1 if bump else 0)
    stamp = START + dt.timedelta(seconds=i, days=1 if bump else 0)
    name = f"name {i}" + (" v2" if bump else "")
    return i, name, COUNTRIES[i % len(COUNTRIES)], f"{amount:.2f}", stamp.isoformat(" ")


def write_csv(path: Path, rows: int, changed: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        writer.writerows(row(i, changed) for i in range(1, rows + 1))


def checksum(connection_string: str) -> tuple[int, str]:
    db = pyodbc.connect(connection_string, autocommit=True)
    count, digest = db.execute(CHECKSUM).fetchone()
    db.close()
    return int(count), str(digest)


def reset(connection_string: str) -> None:
    db = pyodbc.connect(connection_string, autocommit=True)
    db.execute("TRUNCATE items")
    db.execute("VACUUM ANALYZE items")
    db.close()


# -- the baseline: bare pyodbc executemany ---------------------------------------------------


def parsed(path: Path) -> Iterator[tuple[int, str, str, Decimal, dt.datetime]]:
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        next(reader)
        for i, name, country, amount, stamp in reader:
            yield int(i), name, country, Decimal(amount), dt.datetime.fromisoformat(stamp)


def bare_upsert(connection_string: str, path: Path) -> float:
    db = pyodbc.connect(connection_string, autocommit=False)
    cursor = db.cursor()
    cursor.fast_executemany = False
    started = time.perf_counter()
    batch: list[tuple[Any, ...]] = []
    for values in parsed(path):
        batch.append(values)
        if len(batch) == BATCH:
            cursor.executemany(UPSERT, batch)
            db.commit()
            batch = []
    if batch:
        cursor.executemany(UPSERT, batch)
        db.commit()
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


# -- the physical limit: COPY through psql ---------------------------------------------------


def copy_in(server: PostgresServer, path: Path, empty: bool) -> float:
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql is not installed (the Debian package postgresql-client)")
    argv = [psql, "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user, "-d", "bench"]
    argv += ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1"]
    options = "WITH (FORMAT csv, HEADER true)"
    if empty:
        argv += ["-c", f"COPY items FROM STDIN {options}"]
    else:
        argv += ["-c", "CREATE TEMPORARY TABLE stage (LIKE items)"]
        argv += ["-c", f"COPY stage FROM STDIN {options}"]
        argv += ["-c", STAGED_UPSERT]
    env = {**os.environ, "PGPASSWORD": server.password}
    started = time.perf_counter()
    with path.open("rb") as source:
        subprocess.run(argv, stdin=source, env=env, check=True)
    return time.perf_counter() - started


# -- the agent: an import job ----------------------------------------------------------------


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """VmHWM back to the current RSS, so the next peak is this run's own."""
    with contextlib.suppress(OSError):  # not Linux, or a kernel without it: the life's peak
        Path("/proc/self/clear_refs").write_text("5")


def agent_config(folder: Path, connection_string: str, url: str, chunk_rows: int) -> Path:
    config = {
        "sources": {"db": {"odbc": connection_string}},
        "resources": {"items": {"source": "db", "table": "items", "key": ["id"],
                                "operations": ["read", "insert", "update"]}},
        "jobs": {JOB: {"import": {"from": {"url": url, "format": "csv"}, "into": "items",
                                  "mode": "upsert", "chunk_rows": chunk_rows}}},
        "auth": {
            "api_keys": [
                {"name": "bench", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                 "scopes": ["items:read", "items:write", f"jobs:{JOB}"]}
            ]
        },
        "listen": "127.0.0.1:0",
        "admin": None,
        "state_dir": str(folder / "state"),
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def run_job(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with session.post(f"{base}/v1/jobs/{JOB}/runs", json={}, headers=headers) as answer:
        started = await answer.json()
        if answer.status != 202:
            raise SystemExit(f"the job did not start: {answer.status} {started}")
    while True:
        await asyncio.sleep(0.1)
        async with session.get(f"{base}/v1/jobs/{JOB}/runs/{started['id']}",
                               headers=headers) as answer:  # fmt: skip
            report: dict[str, Any] = await answer.json()
        if report["status"] != "running":
            return report


async def serve_files(folder: Path) -> tuple[web.AppRunner, str]:
    app = web.Application()

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(folder / request.match_info["name"])

    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def through_agent(
    folder: Path,
    connection_string: str,
    chunk_rows: int,
    passes: list[Path],
    check: Callable[[int, dict[str, Any]], None],
) -> list[tuple[float, float, dict[str, Any]]]:
    """Each pass as one run of the import job, `check`ed after it: (seconds, peak-RSS growth
    in MiB, report)."""
    served = folder / "served"
    served.mkdir()
    files, base_url = await serve_files(served)
    target = served / "input.csv"
    config = agent_config(folder, connection_string, f"{base_url}/input.csv", chunk_rows)
    agent = Agent(await asyncio.to_thread(load_config, config))
    await agent.start()
    assert agent.listen_url is not None
    results = []
    try:
        async with aiohttp.ClientSession() as session:
            for n, source in enumerate(passes):
                target.unlink(missing_ok=True)
                target.symlink_to(source)
                reset_peak()
                before = memory_kib("VmRSS")
                started = time.perf_counter()
                report = await run_job(session, agent.listen_url)
                elapsed = time.perf_counter() - started
                grew = (memory_kib("VmHWM") - before) / 1024
                if report["status"] != "succeeded":
                    raise SystemExit(f"the import job failed: {report.get('error')}")
                await asyncio.to_thread(check, n, report)
                results.append((elapsed, grew, report))
    finally:
        await agent.stop()
        await files.cleanup()
    return results


def expect(what: str, found: Any, wanted: Any) -> None:
    if found != wanted:
        raise SystemExit(f"mismatch: {what}: {found!r}, expected {wanted!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=1000)
    args = parser.parse_args()
    rows = args.rows
    changed = len(range(10, rows + 1, 10))
    with PostgresServer() as server, tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        first, second = folder / "first.csv", folder / "second.csv"
        write_csv(first, rows, changed=False)
        write_csv(second, rows, changed=True)
        server.create_database("bench")
        connection_string = server.odbc_connection_string("bench")
        db = pyodbc.connect(connection_string, autocommit=True)
        db.execute(TABLE)
        db.close()

        copy_s = [copy_in(server, first, empty=True)]
        truth = [checksum(connection_string)]
        expect("rows after COPY", truth[0][0], rows)
        copy_s.append(copy_in(server, second, empty=False))
        truth.append(checksum(connection_string))
        expect("rows after COPY (second pass)", truth[1][0], rows)
        if truth[0] == truth[1] and rows >= 10:
            raise SystemExit("mismatch: the second pass changed nothing")

        reset(connection_string)
        bare_s = []
        for n, path in enumerate((first, second)):
            bare_s.append(bare_upsert(connection_string, path))
            expect(f"bare pyodbc pass {n + 1} (count, md5)", checksum(connection_string), truth[n])

        def check(n: int, report: dict[str, Any]) -> None:
            expect(f"agent pass {n + 1} (count, md5)", checksum(connection_string), truth[n])
            wanted = (rows, 0, 0) if n == 0 else (0, changed, rows - changed)
            found = (report["inserted"], report["updated"], report["unchanged"])
            expect(f"agent pass {n + 1} (inserted, updated, unchanged)", found, wanted)

        reset(connection_string)
        agent_runs = asyncio.run(
            through_agent(folder, connection_string, args.chunk_rows, [first, second], check)
        )

    print(f"rows: {rows:,} x 5 columns (PostgreSQL via psqlODBC), agent chunk_rows "
          f"{args.chunk_rows}")  # fmt: skip
    labels = ("empty table (all inserts)", f"second pass ({changed:,} rows changed)")
    for n, label in enumerate(labels):
        agent_s, grew, _ = agent_runs[n]
        agent_rate, bare_rate, copy_rate = rows / agent_s, rows / bare_s[n], rows / copy_s[n]
        print(f"{label}:")
        print(f"  COPY FROM STDIN (psql):        {copy_rate:10,.0f} rows/s  ({copy_s[n]:.2f} s)")
        print(f"  bare pyodbc executemany(1000): {bare_rate:10,.0f} rows/s  ({bare_s[n]:.2f} s)")
        print(f"  agent import job (upsert):     {agent_rate:10,.0f} rows/s  ({agent_s:.2f} s)")
        print(f"  ratio agent/bare:              {agent_rate / bare_rate:10.2f}  (target >= 0.50)")
        print(f"  ratio agent/COPY:              {agent_rate / copy_rate:10.2f}")
        print(f"  agent peak RSS growth:         {grew:10.1f} MiB")


if __name__ == "__main__":
    main()
