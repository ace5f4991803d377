"""Benchmark: stream a 1,000,000-row, 6-column PostgreSQL table as NDJSON through the agent.

Prints rows/s for (a) a bare pyodbc `fetchmany` loop over the same query through psqlODBC,
the baseline, and (b) the agent streaming NDJSON to an HTTP client on 127.0.0.1, with the
ratio b/a and the agent's peak-RSS growth. Run from the repository root:

    .venv/bin/python bench/stream_pg.py [--rows 1000000]

It starts a throwaway PostgreSQL server (tests/dbservers.py) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import sys
import tempfile
import time
from pathlib import Path

import pyodbc
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from agentproc import AgentProcess, free_port
from dbservers import PostgresServer

KEY = "bench-key"
QUERY = 'SELECT "id", "name", "amount", "created", "flag", "ref" FROM "big" ORDER BY "id" ASC'


def load(connection_string: str, rows: int) -> None:
    db = pyodbc.connect(connection_string, autocommit=True)
    db.execute(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(12,2), "
        "created TIMESTAMPTZ NOT NULL, flag BOOLEAN, ref UUID)"
    )
    db.execute(
        "INSERT INTO big SELECT i, 'name ' || i, i / 100.0, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second', i % 2 = 0, "
        f"md5(i::text)::uuid FROM generate_series(1, {rows}) i"
    )
    db.execute("VACUUM ANALYZE big")
    db.close()


def bare_fetchmany(connection_string: str) -> tuple[int, float]:
    """The baseline: the same ordered query, fetched in batches, rows discarded."""
    db = pyodbc.connect(connection_string + ";UseDeclareFetch=1;Fetch=5000", autocommit=False)
    started = time.perf_counter()
    cursor = db.execute(QUERY)
    count = 0
    while batch := cursor.fetchmany(5000):
        count += len(batch)
    elapsed = time.perf_counter() - started
    db.close()
    return count, elapsed


def through_agent(port: int) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request(
        "GET",
        "/v1/big",
        headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"},
    )
    return counted(connection, started)


def counted(connection: http.client.HTTPConnection, started: float) -> tuple[int, float]:
    """The NDJSON lines of the answer to the request sent on `connection`, and the seconds
    since `started` until the last one came; the connection is closed."""
    response = connection.getresponse()
    assert response.status == 200, (response.status, response.read(300))
    lines = 0
    while chunk := response.read(1 << 18):
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    connection.close()
    return lines, elapsed


def agent_config(folder: Path, connection_string: str, rows: int, port: int) -> Path:
    config = {
        "sources": {"db": {"odbc": connection_string}},
        "resources": {"big": {"source": "db", "table": "big", "key": ["id"], "max_rows": rows}},
        "auth": {
            "api_keys": [
                {"name": "bench", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                 "scopes": ["big:read"]}
            ]
        },
        "listen": f"127.0.0.1:{port}",
        "admin": None,
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        server.create_database("bench")
        connection_string = server.odbc_connection_string("bench")
        load(connection_string, args.rows)
        bare_rows, bare_s = bare_fetchmany(connection_string)
        port = free_port()
        agent = AgentProcess(agent_config(Path(folder), connection_string, args.rows, port), port)
        try:
            before = agent.peak_rss_kib()
            agent_rows, agent_s = through_agent(port)
            grew = (agent.peak_rss_kib() - before) / 1024
        finally:
            agent.stop()
    assert bare_rows == agent_rows == args.rows, (bare_rows, agent_rows)
    bare_rate, agent_rate = bare_rows / bare_s, agent_rows / agent_s
    print(f"rows: {args.rows:,} x 6 columns (PostgreSQL via psqlODBC)")
    print(f"bare pyodbc fetchmany(5000): {bare_rate:10,.0f} rows/s  ({bare_s:.2f} s)")
    print(f"agent NDJSON over HTTP:      {agent_rate:10,.0f} rows/s  ({agent_s:.2f} s)")
    print(f"ratio agent/bare:            {agent_rate / bare_rate:10.2f}  (target >= 0.60)")
    print(f"agent peak RSS growth:       {grew:10.1f} MiB")


if __name__ == "__main__":
    main()
