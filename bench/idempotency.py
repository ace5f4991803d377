"""Benchmark: new-key write latency of the Idempotency-Key store from 0 to 1,000,000 keys.

For each size the store's SQLite file is pre-filled directly (keys spread over 1,000
principals, a tenth of them expired, as a busy agent leaves it), the store is opened, and
new keys are written the way a write with an `Idempotency-Key` writes them (claim, prepare,
finish), while the expiry task deletes expired keys in its batches. Prints p50, p99 and
writes/s per size, and the ratio of the largest size's p50 to the empty store's. Run from
the repository root:

    .venv/bin/python bench/idempotency.py [--sizes 0,10000,100000,1000000] [--writes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bridgehead.agent.api.idempotency import SCHEMA, IdempotencyStore
from bridgehead.agent.api.message import ApiResponse

TTL = 24 * 3600.0
PRINCIPALS = 1000


def prefill(path: Path, count: int, now: float) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    rows = (
        (
            f"key:p{i % PRINCIPALS}",
            f"old-{i}",
            "h",
            "done",
            201,
            "{}",
            b"{}",
            now - (TTL * 2 if i % 10 == 0 else i % 3600),
        )
        for i in range(count)
    )
    with db:
        db.executemany(
            "INSERT INTO writes (principal, key, request_hash, state, status, headers, body, "
            "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()


async def measure(path: Path, writes: int) -> list[float]:
    store = IdempotencyStore(path, TTL, max_keys=10_000_000)
    await store.open()
    expiry = asyncio.create_task(store.run_expiry())
    response = ApiResponse(201, {"Content-Type": "application/json"}, b'{"id": 1}')
    took: list[float] = []
    try:
        for i in range(writes):
            principal, key = f"key:p{i % PRINCIPALS}", f"new-{i}"
            started = time.perf_counter()
            assert await store.claim(principal, key, "h") is None
            await store.prepare(principal, key, response, {"op": "insert", "keys": [[i]]})
            await store.finish(principal, key, response)
            took.append(time.perf_counter() - started)
    finally:
        expiry.cancel()
        await asyncio.gather(expiry, return_exceptions=True)
        await store.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,10000,100000,1000000")
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    p50s: list[float] = []
    print(f"{'stored keys':>12} {'prefill s':>10} {'p50 ms':>8} {'p99 ms':>8} {'writes/s':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "idempotency.db"
            started = time.perf_counter()
            prefill(path, size, time.time())
            filled = time.perf_counter() - started
            took = sorted(asyncio.run(measure(path, args.writes)))
        p50 = statistics.median(took) * 1000
        p99 = took[int(len(took) * 0.99) - 1] * 1000
        p50s.append(p50)
        rate = len(took) / sum(took)
        print(f"{size:>12,} {filled:>10.1f} {p50:>8.2f} {p99:>8.2f} {rate:>9.0f}")
    print(f"p50 at the largest size / p50 empty: {p50s[-1] / p50s[0]:.2f}")


if __name__ == "__main__":
    main()
