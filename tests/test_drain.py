"""SIGTERM drains: `bridgehead run` stops taking connections, lets a 100,000-row stream in
flight finish (the client gets every row), and exits 0; a stream still running when
`shutdown_grace` is up is cut and the process exits anyway, in bounded time."""

from __future__ import annotations

import hashlib
import http.client
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from polling import refused_within

KEY = "drain-test-key-0123456789"
ROWS = 100_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drain") / "t.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)",
                       ((i, f"row {i} " + "x" * 40) for i in range(1, ROWS + 1)))  # fmt: skip
    db.close()
    return path


@pytest.fixture
def agent(
    tmp_path: Path, database: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port, grace = free_port(), getattr(request, "param", "30s")
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "sources": {"db": {"sqlite": str(database)}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"], "max_rows": ROWS}},
        "auth": {"api_keys": [{"name": "k", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                               "scopes": ["t:read"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None, "shutdown_grace": grace,
        "state_dir": str(tmp_path / "state"),
    }))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(config)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield process, port
    if process.poll() is None:
        process.kill()
    process.communicate()


def stream(port: int) -> http.client.HTTPResponse:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/t",
        headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"},
    )
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=30)  # noqa: S310
    return response


@pytest.mark.allow_blocking  # a client reading slowly from the test's thread
def test_sigterm_lets_a_stream_in_flight_finish(agent: tuple[subprocess.Popen[str], int]) -> None:
    """The stream begun before SIGTERM is delivered whole; new connections are refused once
    the drain starts; the process exits 0."""
    process, port = agent
    response, rows, signalled = stream(port), 0, False
    while chunk := response.read(1 << 16):
        rows += chunk.count(b"\n")
        if not signalled and rows > 1000:
            process.send_signal(signal.SIGTERM)
            signalled = True
            assert refused_within(port, 10)  # no longer accepting
        time.sleep(0.01)  # a slow reader: the agent is done writing long before it is read
    assert rows == ROWS
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


@pytest.mark.parametrize("agent", ["1s"], indirect=True)
@pytest.mark.allow_blocking  # a client that stops reading, from the test's thread
def test_past_the_grace_a_stream_is_cut_and_the_process_exits(
    agent: tuple[subprocess.Popen[str], int],
) -> None:
    """A client that stops reading cannot hold the agent up: after shutdown_grace (1 s here)
    its stream is cut and the process exits 0 within a few seconds."""
    process, port = agent
    response = stream(port)
    response.read(1 << 16)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert time.monotonic() - started < 8
    response.close()
