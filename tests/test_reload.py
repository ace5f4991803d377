"""SIGHUP reloads the config: a valid one serves the next request (a new resource, a new
key) while requests keep running and none fails; an invalid one, or one changing what needs
a restart, is refused with every reason logged and the old config kept."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config

OLD, NEW = "old-key-0123456789abcdef", "new-key-0123456789abcdef"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_data(folder: Path, port: int = 0, *, more: bool = False) -> dict[str, Any]:
    scopes = ["t:read", "u:read"] if more else ["t:read"]
    keys = [{"name": "old", "key_sha256": digest(OLD), "scopes": scopes}]
    resources: dict[str, Any] = {"t": {"source": "db", "table": "t", "key": ["id"]}}
    if more:
        keys.append({"name": "new", "key_sha256": digest(NEW), "scopes": ["u:read"]})
        resources["u"] = {"source": "db", "table": "u", "key": ["id"]}
    return {
        "sources": {"db": {"sqlite": str(folder / "t.db")}}, "resources": resources,
        "auth": {"api_keys": keys}, "listen": f"127.0.0.1:{port}", "admin": None,
        "state_dir": str(folder / "state"),
    }  # fmt: skip


def make_folder(folder: Path) -> Path:
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 51)])
        db.execute("INSERT INTO u VALUES (7)")
    db.close()
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config_data(folder)))
    return path


async def steady_reads(url: str, stop: asyncio.Event) -> list[int]:
    """GET the old resource over and over until `stop`; the statuses seen."""
    statuses: list[int] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {OLD}"}) as session:
        while not stop.is_set():
            async with session.get(f"{url}/v1/t?limit=20") as response:
                await response.read()
                statuses.append(response.status)
    return statuses


async def status_of(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{url}/v1/u/7") as response,
    ):
        await response.read()
        return response.status


async def test_reload_applies_a_good_config_and_keeps_the_old_on_a_bad_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While reads run: the new resource and key serve after a good reload; a config with
    an unknown key, and one moving the listener, are refused (each reason logged) and the
    running config keeps serving; no read fails."""
    path = await asyncio.to_thread(make_folder, tmp_path)
    agent = Agent(await asyncio.to_thread(load_config, path), config_file=path)
    await agent.start()
    assert agent.listen_url is not None
    stop = asyncio.Event()
    reads = asyncio.create_task(steady_reads(agent.listen_url, stop))
    try:
        assert await status_of(agent.listen_url, NEW) == 401
        await asyncio.to_thread(path.write_text, yaml.safe_dump(config_data(tmp_path, more=True)))
        assert await agent.reload()
        assert await status_of(agent.listen_url, NEW) == 200

        caplog.set_level(logging.ERROR, "bridgehead")
        bad = {**config_data(tmp_path, more=True), "colour": "blue"}
        await asyncio.to_thread(path.write_text, yaml.safe_dump(bad))
        assert not await agent.reload()
        moved = config_data(tmp_path, port=1, more=True)
        await asyncio.to_thread(path.write_text, yaml.safe_dump(moved))
        assert not await agent.reload()
        assert await status_of(agent.listen_url, NEW) == 200  # the good config still serves
    finally:
        stop.set()
        statuses = await reads
        await agent.stop()
    assert statuses
    assert set(statuses) == {200}
    refusals = [r.getMessage() for r in caplog.records if "reload of" in r.getMessage()]
    assert len(refusals) == 2
    assert "unknown key 'colour'" in refusals[0]
    assert "listen changed, which needs a restart" in refusals[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(port: int, key: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/u/7",
                                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.allow_blocking  # drives `bridgehead run` and polls it from the test's thread
def test_sighup_reloads_the_running_agent(tmp_path: Path) -> None:
    """`kill -HUP` on `bridgehead run` applies the edited config; a broken edit is logged and
    the process keeps serving; SIGTERM still exits 0."""
    path, port = make_folder(tmp_path), free_port()
    path.write_text(yaml.safe_dump(config_data(tmp_path, port)))
    process = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(path)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert poll(lambda: get(port, OLD) != 0, 30)  # answering (u is not served yet)
        path.write_text(yaml.safe_dump(config_data(tmp_path, port, more=True)))
        process.send_signal(signal.SIGHUP)
        assert poll(lambda: get(port, NEW) == 200, 10)
        path.write_text("sources: [not, a, mapping\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert get(port, NEW) == 200
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == 0, errors
    assert "reload of" in errors
    assert "refused; the running config stays" in errors


def poll(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
