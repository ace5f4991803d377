"""Bridgehead under systemd: `bridgehead run` tells a real NOTIFY_SOCKET READY, then WATCHDOG
pings from its event loop, then STOPPING when SIGTERM drains it; a stalled loop stops the
pings; the shipped unit passes `systemd-analyze verify` and its security review."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bridgehead.common.sdnotify import Notifier, watchdog_interval

UNIT = Path(__file__).parent.parent / "packaging" / "linux" / "bridgehead.service"


class Listener:
    """A datagram socket standing in for systemd's, recording what arrives and when."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def names(self) -> list[str]:
        return [m.split("=", 1)[0] for _, text in self.messages for m in text.splitlines()]

    def wait_for(self, name: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while name not in self.names():
            assert time.monotonic() < deadline, f"no {name} within {seconds} s: {self.names()}"
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    heard = Listener(tmp_path / "notify.sock")
    yield heard
    heard.close()


def agent_config(folder: Path) -> Path:
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.close()
    config = folder / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "sources": {"db": {"sqlite": str(folder / "t.db")}},
        "resources": {"t": {"source": "db", "table": "t"}},
        "listen": "127.0.0.1:0", "admin": None, "state_dir": str(folder / "state"),
    }))  # fmt: skip
    return config


@pytest.mark.allow_blocking  # drives a subprocess and a socket from the test's own thread
def test_run_reports_ready_watchdog_and_stopping_in_order(
    tmp_path: Path, listener: Listener
) -> None:
    """READY=1 (with a STATUS) once the agent serves, WATCHDOG=1 about every half interval
    while it runs, STOPPING=1 once SIGTERM starts the drain, then exit 0."""
    config = agent_config(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "300000"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(config)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        listener.wait_for("READY", 30)
        time.sleep(0.6)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
        listener.wait_for("STOPPING", 5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    names = listener.names()
    assert names.index("READY") < names.index("WATCHDOG") < names.index("STOPPING")
    assert names.count("WATCHDOG") >= 3
    assert any(text.startswith("READY=1\nSTATUS=") for _, text in listener.messages)


@pytest.mark.allow_blocking  # stalls the event loop on purpose
def test_a_stalled_loop_sends_no_pings(tmp_path: Path, listener: Listener) -> None:
    """The pings come from the event loop: while it is blocked none arrive, so systemd's
    watchdog sees the hang."""
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "100000"}
    notifier = Notifier(env)

    async def stall() -> None:
        pinging = asyncio.create_task(notifier.keep_alive())
        await asyncio.sleep(0.3)
        time.sleep(0.6)  # noqa: ASYNC251 - the loop hangs, on purpose
        await asyncio.sleep(0.3)
        pinging.cancel()

    asyncio.run(stall())
    times = [at for at, text in listener.messages if text == "WATCHDOG=1"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert max(gaps) >= 0.5  # the stall
    assert sorted(gaps)[len(gaps) // 2] < 0.2  # otherwise every half interval


def test_without_systemd_nothing_is_sent() -> None:
    """Outside systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC) the notifier does nothing."""
    notifier = Notifier({})
    notifier.ready("serving")
    assert notifier.address is None
    assert notifier.watchdog is None
    assert watchdog_interval({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}) is None


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_the_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (ExecStart pointed at this install) and its
    offline security review scores it 2.0 or better ("OK" or "SAFE")."""
    unit = tmp_path / "bridgehead.service"
    here = shutil.which("bridgehead") or str(Path(sys.executable).parent / "bridgehead")
    unit.write_text(UNIT.read_text().replace("/usr/bin/bridgehead", here))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0
    assert "Type=notify" in UNIT.read_text()
    assert "WatchdogSec=" in UNIT.read_text()
