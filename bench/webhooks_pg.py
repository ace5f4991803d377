"""Benchmark: change events from PostgreSQL triggers to a webhook receiver, through the relay.

A throwaway PostgreSQL server (tests/dbservers.py) with the outbox and triggers that
`bridgehead events install` makes; `bridgehead run` and `bridgehead-relay run` as processes,
connected by the tunnel on 127.0.0.1; a webhook receiver in this process (aiohttp) that checks
the Standard Webhooks signature of every `--verify-every`th delivery. A separate writer process
changes rows directly, each change stamped with the wall-clock time of its statement.

Prints:
- commit-to-webhook latency p50 / p99 at a steady `--rate` changes/s (one row per statement,
  each its own transaction) for `--seconds`;
- the sustained maximum events/s: a backlog of `--burst` changes made at once (set-based
  UPDATEs), delivered as fast as the pipeline goes, measured from the first delivery of the
  burst to its last.

Targets: p50 within the capture interval (`--interval`) + 100 ms; at least 5,000 events/s.
Run from the repository root:

    .venv/bin/python bench/webhooks_pg.py [--rate 1000 --seconds 20 --burst 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pyodbc
import yaml
from aiohttp import web
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from agentproc import AgentProcess, free_port, listening, stop_process
from dbservers import PostgresServer
from receiver import SECRET
from tunnelkit import make_pki

from bridgehead.adapters.types import TableRef
from bridgehead.agent.events.ddl import Capture, install_statements

KEY = "bench-key"
KEYS = 1000
WRITER = r"""
import sys, time, pyodbc
conn, rate, seconds, keys = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
db = pyodbc.connect(conn, autocommit=True)
start, n = time.perf_counter(), 0
while (elapsed := time.perf_counter() - start) < seconds:
    due = n / rate
    if due > elapsed:
        time.sleep(due - elapsed)
    db.execute("UPDATE items SET version = version + 1, sent_at = ? WHERE id = ?",
               (time.time(), n % keys))
    n += 1
print(n)
"""


class Receiver:
    """Deliveries as they arrive: (received at, sent_at of the change, sequence)."""

    def __init__(self, verify_every: int) -> None:
        self.hook, self.verify_every = Webhook(SECRET), verify_every
        self.arrivals: list[tuple[float, float, int]] = []
        self.forged = 0
        self.url = ""

    async def take(self, request: web.Request) -> web.Response:
        body = await request.read()
        received = time.time()
        sequence = int(request.headers["ce-sequence"])
        if sequence % self.verify_every == 0:
            try:
                self.hook.verify(body, dict(request.headers))
            except Exception:
                self.forged += 1
        self.arrivals.append((received, float(orjson.loads(body)["sent_at"]), sequence))
        return web.Response(status=204)

    def serve_in_thread(self) -> threading.Event:
        started, stop = threading.Event(), threading.Event()

        async def run() -> None:
            app = web.Application()
            app.router.add_post("/hook", self.take)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}/hook"
            started.set()
            while not stop.is_set():  # noqa: ASYNC110 - a threading.Event, set from outside
                await asyncio.sleep(0.05)
            await runner.cleanup()

        threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()
        started.wait(10)
        return stop


def prepare(connection_string: str) -> None:
    db = pyodbc.connect(connection_string, autocommit=True)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
               "sent_at DOUBLE PRECISION NOT NULL)")  # fmt: skip
    db.execute(f"INSERT INTO items SELECT i, 0, 0 FROM generate_series(0, {KEYS - 1}) i")
    for statement in install_statements("postgresql", [Capture("items", TableRef("items"),
                                                               ("id",))]):  # fmt: skip
        db.execute(statement)
    db.close()


def configs(
    folder: Path, connection_string: str, hook_url: str, interval: str
) -> tuple[Path, Path, int, int]:
    pki = make_pki(folder)
    cert, key = pki.agent("agent", "bench", None)
    agents_port, port = free_port(), free_port()
    relay = {
        "agents_listen": f"127.0.0.1:{agents_port}", "listen": f"127.0.0.1:{free_port()}",
        "admin": None, "tls": {"cert": str(folder / "relay.pem"), "key": str(folder / "relay.key")},
        "ca": {"cert": str(pki.ca)},
        "webhooks": [{"name": "bench", "agents": ["bench"], "url": hook_url, "secret": SECRET,
                      "parallel": 64}],
    }  # fmt: skip
    agent = {
        "sources": {"db": {"odbc": connection_string}},
        "resources": {"items": {"source": "db", "table": "items", "key": ["id"],
                                "events": {"capture": "triggers"}}},
        "auth": {"api_keys": [{"name": "bench", "scopes": ["events:read", "items:read"],
                               "key_sha256": hashlib.sha256(KEY.encode()).hexdigest()}]},
        "listen": f"127.0.0.1:{port}", "admin": None, "state_dir": str(folder / "state"),
        "events": {"interval": interval},
        "tunnel": {"relay": f"127.0.0.1:{agents_port}", "connections": 1, "ca": str(pki.ca),
                   "cert": str(cert), "key": str(key)},
    }  # fmt: skip
    (folder / "relay.yaml").write_text(yaml.safe_dump(relay))
    (folder / "agent.yaml").write_text(yaml.safe_dump(agent))
    return folder / "relay.yaml", folder / "agent.yaml", agents_port, port


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def steady(receiver: Receiver, connection_string: str, args: argparse.Namespace) -> list[float]:
    before = len(receiver.arrivals)
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, connection_string, str(args.rate), str(args.seconds),
         str(KEYS)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    made = int(writer.stdout)
    wait_until(lambda: len(receiver.arrivals) - before >= made, 120, "the steady deliveries")
    return [(got - sent) * 1000 for got, sent, _ in receiver.arrivals[before : before + made]]


def burst(receiver: Receiver, connection_string: str, count: int) -> tuple[int, float]:
    db = pyodbc.connect(connection_string, autocommit=True)
    before = len(receiver.arrivals)
    for _ in range(count // KEYS):
        db.execute("UPDATE items SET version = version + 1, sent_at = ?", (time.time(),))
    db.close()
    made = (count // KEYS) * KEYS
    wait_until(lambda: len(receiver.arrivals) - before >= made, 600, "the burst's deliveries")
    arrivals = receiver.arrivals[before : before + made]
    return made, arrivals[-1][0] - arrivals[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--interval", default="100ms")
    parser.add_argument("--verify-every", type=int, default=10)
    args = parser.parse_args()
    receiver = Receiver(args.verify_every)
    stop = receiver.serve_in_thread()
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        server.create_database("bench")
        connection_string = server.odbc_connection_string("bench")
        prepare(connection_string)
        files = configs(Path(folder), connection_string, receiver.url, args.interval)
        relay_file, agent_file, agents_port, port = files
        relay = subprocess.Popen([sys.executable, "-m", "bridgehead.relay.cli", "run", "-c",
                                  str(relay_file)], stderr=subprocess.DEVNULL)  # fmt: skip
        wait_until(lambda: listening(agents_port), 30, "the relay")
        agent = AgentProcess(agent_file, port)
        try:
            latencies = steady(receiver, connection_string, args)
            made, took = burst(receiver, connection_string, args.burst)
        finally:
            agent.stop()
            stop_process(relay)
            stop.set()
    interval_ms = float(args.interval.removesuffix("ms"))
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    print(f"trigger capture on PostgreSQL, events.interval {args.interval}, through the relay")
    print(
        f"steady {args.rate:,.0f} changes/s for {args.seconds:g} s: {len(latencies):,} deliveries"
    )
    print(f"  commit-to-webhook p50 {p50:8.1f} ms   (target <= {interval_ms + 100:.0f} ms)")
    print(f"  commit-to-webhook p99 {p99:8.1f} ms")
    print(f"burst of {made:,} changes: {made / took:10,.0f} events/s delivered  (target >= 5,000)")
    print(f"signatures checked: every {args.verify_every}th, forged: {receiver.forged}")
    print(json.dumps({"p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                      "events_per_s": round(made / took)}))  # fmt: skip


if __name__ == "__main__":
    main()
