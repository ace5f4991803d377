# One request, one id: the cloud caller's X-Request-Id (or the one the relay makes) reaches
# the agent through the tunnel, comes back in the answer, is in the agent's audit record and
# on the relay's and the agent's log lines; `run` of both commands logs where `logging:` says.
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentproc import AgentProcess, free_port, stop_process
from tunnelkit import Pki, make_pki, reached_both_ways, relay_config, running_relay

from bridgehead.common import logs
from bridgehead.common.config.base import LoggingConfig

TOKEN = "cloud-token-for-request-ids"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 4)])
    db.close()


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.usefixtures("restored_logging")
async def test_a_callers_id_goes_through_relay_and_agent_into_the_audit(
    pki: Pki, tmp_path: Path, run_agent: Any
) -> None:
    """A valid X-Request-Id sent to the relay is the agent's answer's, its audit record's and
    both ends' log lines'; with none sent, the relay's fresh id is used the same way."""
    log_file = tmp_path / "logs" / "both.log"
    await asyncio.to_thread(logs.apply, LoggingConfig(level="DEBUG", file=log_file))
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resources = {"t": {"source": "db", "table": "t", "key": ["id"]}}
    async with (
        running_relay(pki, TOKEN) as relay,
        reached_both_ways(pki, relay, run_agent, tmp_path / "t.db", resources, TOKEN) as both,
    ):
        direct, cloud = both
        status, headers, _ = await cloud.get("/v1/t/1", **{"X-Request-Id": "cloud-trace-7"})
        assert (status, headers["X-Request-Id"]) == (200, "cloud-trace-7")
        status, headers, _ = await cloud.get("/v1/t/2")
        made = headers["X-Request-Id"]
        assert status == 200
        assert len(made) == 24
        assert direct.agent is not None
        await direct.agent.stop()
    await asyncio.to_thread(logs.close)
    audit = await asyncio.to_thread(json_lines, tmp_path / "agent0" / "state" / "audit.log")
    assert [(r["request_id"], r["via"], r["status"]) for r in audit] == [
        ("cloud-trace-7", "relay", 200),
        (made, "relay", 200),
    ]
    lines = await asyncio.to_thread(json_lines, log_file)
    for request_id in ("cloud-trace-7", made):
        loggers = {line["logger"] for line in lines if line.get("request_id") == request_id}
        assert {"bridgehead.relay", "bridgehead.requests"} <= loggers, (request_id, loggers)


def agent_yaml(folder: Path, port: int, log_file: Path) -> Path:
    config = {
        "sources": {"db": {"sqlite": str(folder / "t.db")}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"]}},
        "auth": {"api_keys": [{"name": "k", "key_sha256": "a" * 64, "scopes": ["t:read"]}]},
        "listen": f"127.0.0.1:{port}",
        "admin": None,
        "logging": {"level": "debug", "file": str(log_file), "max_bytes": 100_000},
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for_line(path: Path, text: str, seconds: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return json_lines(path)
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never logged to {path}")


def test_bridgehead_run_logs_json_lines_to_the_configured_file(tmp_path: Path) -> None:
    """`bridgehead run` with `logging: {file: ...}` writes JSON lines there, at the level
    given, each line of a request with its id."""
    make_db(tmp_path / "t.db")
    port, log_file = free_port(), tmp_path / "agent.log"
    agent = AgentProcess(agent_yaml(tmp_path, port, log_file), port)
    try:
        status, _, _ = agent.request("GET", "/v1/t/1", "wrong-key", **{"X-Request-Id": "r-1"})
        assert status == 401
        lines = wait_for_line(log_file, '"request_id": "r-1"')
    finally:
        agent.stop()
    assert any(line["event"].startswith("listening on") for line in lines)
    assert any(line.get("request_id") == "r-1" and line["level"] == "debug" for line in lines)


def test_bridgehead_relay_run_logs_to_the_configured_file(tmp_path: Path) -> None:
    """`bridgehead-relay run` with `logging:` writes its JSON lines to that file."""
    pki = make_pki(tmp_path)
    log_file = tmp_path / "relay.log"
    relay_config(pki, TOKEN, logging={"file": str(log_file), "level": "INFO"})
    process = subprocess.Popen(
        [sys.executable, "-m", "bridgehead.relay.cli", "run", "-c", str(pki.folder / "relay.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        lines = wait_for_line(log_file, "relay: agents on")
    finally:
        stop_process(process)
        assert process.stderr is not None
        process.stderr.close()
    assert [line["level"] for line in lines if "relay: agents on" in line["event"]] == ["info"]
