"""Change events survive everything at once: a separate legacy application makes direct
changes (inserts, updates, deletes over 1,000 keys) in PostgreSQL, MariaDB and SQLite while
the relay is SIGKILLed and kept down, the receiver answers 500 for a while and then 429, and
the agent is SIGKILLed once mid-way. Afterwards the receiver holds every change at least once,
each verified by its signature, in order per key, and the last event per key matches the
table. Real processes throughout: the agent and the relay as `bridgehead run` and
`bridgehead-relay run`, the receiver a real HTTP server on 127.0.0.1.

Scale: `BRIDGEHEAD_CHAOS_CHANGES` changes per database (default 34,000: 102,000 in all) and
`BRIDGEHEAD_CHAOS_RELAY_DOWN` seconds without the relay (default 60)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyodbc
import pytest
import yaml
from agentproc import AgentProcess, free_port, listening, stop_process
from backends import Backend
from conftest import make_backend
from receiver import SECRET, Delivery, Receiver, receiving
from tunnelkit import Pki, make_pki

from bridgehead.adapters.types import TableRef
from bridgehead.agent.events.ddl import Capture, install_statements

CHANGES = int(os.environ.get("BRIDGEHEAD_CHAOS_CHANGES", "34000"))
RELAY_DOWN = float(os.environ.get("BRIDGEHEAD_CHAOS_RELAY_DOWN", "60"))
KEYS = 1000
TOKEN = "chaos-token"
LEGACY = Path(__file__).with_name("legacy_app.py")
DIALECTS = {"pg": "postgresql", "maria": "mysql", "lite": "sqlite"}
CREATE = "CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, note VARCHAR(40))"


@contextmanager
def threaded_receiver() -> Iterator[Receiver]:
    """The receiver on its own event loop in a thread (this test drives processes)."""
    loop = asyncio.new_event_loop()
    ready: list[Receiver] = []
    done = asyncio.Event()

    async def serve() -> None:
        async with receiving() as receiver:
            ready.append(receiver)
            await done.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(10)
        loop.close()


def phases(started: float) -> Callable[[Delivery], tuple[int, dict[str, str]]]:
    """500 from 3 s to 8 s after `started`, then 429 (Retry-After: 1) until 12 s, then 204."""

    def answer(delivery: Delivery) -> tuple[int, dict[str, str]]:
        age = time.monotonic() - started
        if 3 <= age < 8:
            return 500, {}
        if 8 <= age < 12:
            return 429, {"Retry-After": "1"}
        return 204, {}

    return answer


def relay_yaml(pki: Pki, folder: Path, agents_port: int, hook_url: str) -> Path:
    config = {
        "agents_listen": f"127.0.0.1:{agents_port}", "listen": f"127.0.0.1:{free_port()}",
        "admin": None, "tls": {"cert": str(pki.folder / "relay.pem"),
                               "key": str(pki.folder / "relay.key")},
        "ca": {"cert": str(pki.ca)}, "heartbeat": "1s", "dead_after": "3s",
        "webhooks": [{"name": "chaos", "agents": ["plant-7"], "url": hook_url,
                      "secret": SECRET, "retry_first": "200ms", "retry_max": "2s",
                      "parallel": 32}],
    }  # fmt: skip
    path = folder / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def agent_yaml(
    pki: Pki, folder: Path, sources: dict[str, Any], agents_port: int, port: int
) -> Path:
    cert, key = pki.agent("agent", "plant-7", "plants")
    resources = {
        f"{name}_items": {"source": name, "table": "items", "key": ["id"],
                          "events": {"capture": "triggers"}} for name in sources
    }  # fmt: skip
    scopes = ["events:read", *(f"{r}:read" for r in resources)]
    config = {
        "sources": sources, "resources": resources, "listen": f"127.0.0.1:{port}",
        "admin": None, "state_dir": str(folder / "state"), "events": {"interval": "100ms"},
        "auth": {"api_keys": [{"name": "k", "scopes": scopes,
                               "key_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}]},
        "tunnel": {"relay": f"127.0.0.1:{agents_port}", "connections": 1, "ca": str(pki.ca),
                   "cert": str(cert), "key": str(key), "heartbeat": "1s", "dead_after": "3s",
                   "backoff": {"base": "200ms", "cap": "1s"}},
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_relay(path: Path, port: int) -> subprocess.Popen[bytes]:
    relay = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.relay.cli", "run", "-c", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not listening(port):
        assert relay.poll() is None, "the relay exited at start"
        assert time.monotonic() < deadline, "the relay did not listen within 30 s"
        time.sleep(0.05)
    return relay


def table(backend: Backend) -> dict[int, int]:
    """id -> version, as the table holds it now."""
    if "sqlite" in backend.source:
        with sqlite3.connect(backend.source["sqlite"]) as db:
            rows = db.execute("SELECT id, version FROM items").fetchall()
        db.close()
    else:
        connection = pyodbc.connect(backend.source["odbc"], autocommit=True, timeout=10)
        rows = connection.execute("SELECT id, version FROM items").fetchall()
        connection.close()
    return {int(key): int(version) for key, version in rows}


def verdict(receiver: Receiver, resource: str, expected: int, rows: dict[int, int]) -> str:
    """What is still wrong with the deliveries of `resource` ("" once all is right)."""
    first_seen: dict[str, tuple[str, int, Any]] = {}
    for d in list(receiver.accepted):
        if d.headers["ce-source"].endswith(f"/resources/{resource}"):
            first_seen.setdefault(d.headers["ce-id"], (
                d.headers["ce-subject"], int(d.headers["ce-sequence"]), (d.headers["ce-type"],
                                                                         d.body)))  # fmt: skip
    if len(first_seen) < expected:
        return f"{resource}: {len(first_seen)} of {expected} changes delivered"
    per_key: dict[str, list[tuple[int, Any]]] = {}
    for subject, seq, event in first_seen.values():  # in the order first received
        per_key.setdefault(subject, []).append((seq, event))
    for subject, events in per_key.items():
        seqs = [seq for seq, _ in events]
        assert seqs == sorted(seqs), f"{resource}/{subject} arrived out of order: {seqs}"
        kind, body = max(events, key=lambda e: e[0])[1]
        if kind == "bridgehead.row.deleted":
            assert int(subject) not in rows, f"{resource}/{subject} deleted but in the table"
        else:
            assert body["version"] == rows[int(subject)], f"{resource}/{subject} differs"
    assert set(rows) <= {int(s) for s in per_key}, f"{resource}: rows with no event"
    return ""


def test_every_change_arrives_through_kills_outages_and_refusals(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pki = make_pki(tmp_path)
    backends = {
        "pg": make_backend("postgresql", request, tmp_path, "chaos_pg"),
        "maria": make_backend("mariadb", request, tmp_path, "chaos_maria"),
        "lite": make_backend("sqlite", request, tmp_path, "chaos_lite"),
    }
    for name, backend in backends.items():
        capture = Capture(f"{name}_items", TableRef("items"), ("id",))
        backend.run([CREATE, *install_statements(DIALECTS[name], [capture])])
    targets = {
        name: {"kind": "sqlite", "path": b.source["sqlite"]} if "sqlite" in b.source
        else {"kind": "odbc", "connection": b.source["odbc"]}
        for name, b in backends.items()
    }  # fmt: skip
    spec = tmp_path / "legacy.json"
    spec.write_text(json.dumps({"targets": targets, "changes": CHANGES, "keys": KEYS,
                                "done": str(tmp_path / "legacy.done")}))  # fmt: skip
    agents_port, port = free_port(), free_port()
    with threaded_receiver() as receiver:
        relay_file = relay_yaml(pki, tmp_path, agents_port, receiver.url)
        agent_file = agent_yaml(pki, tmp_path, {n: b.source for n, b in backends.items()},
                                agents_port, port)  # fmt: skip
        relay = start_relay(relay_file, agents_port)
        agent = AgentProcess(agent_file, port)
        legacy = subprocess.Popen([sys.executable, str(LEGACY), str(spec)])
        started = time.monotonic()
        receiver.answer = phases(started)
        try:
            time.sleep(14)
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            time.sleep(RELAY_DOWN / 3)
            agent.process.send_signal(signal.SIGKILL)  # mid-way, while the relay is down
            agent.process.wait(10)
            if agent.process.stderr is not None:
                agent.process.stderr.close()
            agent = AgentProcess(agent_file, port)
            time.sleep(RELAY_DOWN * 2 / 3)
            relay = start_relay(relay_file, agents_port)
            assert legacy.wait(600) == 0
            made = json.loads((tmp_path / "legacy.done").read_text())
            deadline = time.monotonic() + 600
            for name, backend in backends.items():
                rows = table(backend)
                while problem := verdict(receiver, f"{name}_items", made[name], rows):
                    assert time.monotonic() < deadline, problem
                    time.sleep(1)
            assert receiver.forged == 0
            assert receiver.refused > 0, "the receiver's refusals never happened"
        finally:
            stop_process(legacy)
            agent.stop()
            stop_process(relay)
