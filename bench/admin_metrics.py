"""Benchmark: what the admin figures (rolling window, Prometheus counters and histogram,
last errors) cost a keyed GET. One agent on a SQLite file answers keyed GETs over its local
listener; rounds with the request observer on and off alternate in the same run, so both
see the same machine state. Prints the p50 of each and their ratio, and the observer's own
cost per request. Run from the repository root:

    .venv/bin/python bench/admin_metrics.py [--rounds 10] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import yaml

from bridgehead.agent.admin.observer import RequestObserver
from bridgehead.agent.app import Agent
from bridgehead.agent.audit import AuditRecord
from bridgehead.agent.config import load_config

KEY = "bench-key-0123456789"


def prepare(folder: Path) -> Path:
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", i / 3) for i in range(1000)])
    db.close()
    config = {
        "sources": {"db": {"sqlite": "t.db"}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"]}},
        "auth": {"api_keys": [{"name": "b", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                               "scopes": ["t:read"]}]},
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "limits": {"requests_per_second": 1e9, "burst": 1_000_000_000},
    }  # fmt: skip
    (folder / "agent.yaml").write_text(yaml.safe_dump(config))
    return folder / "agent.yaml"


async def round_p50(session: aiohttp.ClientSession, url: str, count: int) -> float:
    times = []
    headers = {"Authorization": f"Bearer {KEY}"}
    for i in range(count):
        started = time.perf_counter()
        async with session.get(f"{url}/v1/t/{i % 1000}", headers=headers) as r:
            await r.read()
            assert r.status == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def observer_cost(observer: RequestObserver, count: int = 100_000) -> float:
    rec = AuditRecord(datetime.now(UTC), "r", "b", "t", "read", 1, 200, 0.4, "local")
    started = time.perf_counter()
    for _ in range(count):
        observer(rec)
    return (time.perf_counter() - started) / count


async def main(rounds: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        agent = Agent(load_config(prepare(Path(folder))))
        await agent.start()
        assert agent.listen_url is not None
        observe = RequestObserver.__call__
        on: list[float] = []
        off: list[float] = []
        try:
            async with aiohttp.ClientSession() as session:
                await round_p50(session, agent.listen_url, 500)  # warm-up
                for n in range(rounds * 2):
                    enabled = n % 2 == 0
                    RequestObserver.__call__ = observe if enabled else (lambda self, rec: None)  # type: ignore[method-assign]
                    (on if enabled else off).append(
                        await round_p50(session, agent.listen_url, requests)
                    )
        finally:
            RequestObserver.__call__ = observe  # type: ignore[method-assign]
            await agent.stop()
        with_metrics, without = statistics.median(on), statistics.median(off)
        print(f"keyed GET p50 with metrics:    {with_metrics * 1e6:8.1f} µs")
        print(f"keyed GET p50 without metrics: {without * 1e6:8.1f} µs")
        print(f"ratio with/without: {with_metrics / without:.3f}")
        print(f"observer cost per request: {observer_cost(agent.observer) * 1e6:.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
