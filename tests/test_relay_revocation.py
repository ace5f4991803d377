# Revoking agents and listing them, end to end on 127.0.0.1: `bridgehead-relay agents revoke`
# (another process) drops a connected agent within about a second and keeps it out, the
# revocation file read afresh (as by a restarted relay) still refuses it, a certificate issued
# after the revocation is let back in, a certificate for another agent id never stands for
# this one, and `agents list` reads the running relay.
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentproc import free_port
from conftest import Caller
from polling import wait_for
from tunnelkit import Pki, relay_config, tunnel_section

from bridgehead.certs.pki import CLOCK_SKEW
from bridgehead.relay.admin import read_admin_token
from bridgehead.relay.app import Relay
from bridgehead.relay.registry import Registry
from bridgehead.relay.revocations import Revocations, RevocationsDamaged, watch

TOKEN = "cloud-token-0123456789"
RELAY = [sys.executable, "-m", "bridgehead.relay.cli"]


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 11)])
    db.close()


def relay_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAY, *args], capture_output=True, text=True, timeout=60, check=False)


def connected(relay: Relay, agent_id: str) -> int:
    return sum(v.connections for v in relay.registry.views() if v.agent_id == agent_id)


@pytest.fixture
async def relay(pki: Pki) -> Any:
    """A relay with its admin port on a known free port (the CLI reads it from relay.yaml)."""
    config = await asyncio.to_thread(relay_config, pki, TOKEN, admin=f"127.0.0.1:{free_port()}")
    started = Relay(config)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def start_agent(pki: Pki, relay: Relay, tmp_path: Path, run_agent: Any) -> Any:
    """A factory: an agent with the certificate for `agent_id`, tunnelled to the relay."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")

    async def start(agent_id: str, group: str | None = None) -> Caller:
        cert, key = await asyncio.to_thread(pki.agent, agent_id, agent_id, group)
        assert relay.agents_address is not None
        caller: Caller = await run_agent(
            {"db": {"sqlite": str(tmp_path / "t.db")}},
            {"t": {"source": "db", "table": "t", "key": ["id"]}},
            api_key=TOKEN,
            tunnel=tunnel_section(pki, relay.agents_address[1], cert, key),
        )
        return caller

    return start


async def through_relay(relay: Relay, pki: Pki, path: str) -> int:
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(f"{relay.callers_url}{path}", headers=headers) as response:
            return response.status


async def test_a_certificate_for_another_agent_id_never_stands_for_this_one(
    pki: Pki, relay: Relay, start_agent: Any
) -> None:
    """An agent holding plant-8's certificate is plant-8 to the relay, whatever it serves:
    requests for plant-7 find no agent (502), and a caller allowed only plant-7 may not
    reach plant-8 (403)."""
    await start_agent("plant-8")
    await wait_for(lambda: connected(relay, "plant-8") == 2)
    assert [v.agent_id for v in relay.registry.views()] == ["plant-8"]
    assert await through_relay(relay, pki, "/agents/plant-7/v1/t/1") == 502
    assert await through_relay(relay, pki, "/agents/plant-8/v1/t/1") == 403


async def test_revoking_drops_the_agent_and_keeps_it_out(
    pki: Pki, relay: Relay, start_agent: Any
) -> None:
    """`agents revoke` from another process drops plant-7's connections within about a
    second; its reconnections are refused while its certificate is the revoked one; a
    certificate issued after the revocation is let back in."""
    await start_agent("plant-7", "plants")
    await wait_for(lambda: connected(relay, "plant-7") == 2)
    assert await through_relay(relay, pki, "/agents/plant-7/v1/t/1") == 200
    config = str(pki.folder / "relay.yaml")
    result = await asyncio.to_thread(relay_command, "agents", "revoke", "plant-7", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "revoked plant-7" in result.stdout
    started = time.monotonic()
    await wait_for(lambda: connected(relay, "plant-7") == 0, seconds=3)
    assert time.monotonic() - started < 2.5
    await asyncio.sleep(1.5)  # the agent keeps dialling (backoff floor 1 s); all refused
    assert connected(relay, "plant-7") == 0
    assert await through_relay(relay, pki, "/agents/plant-7/v1/t/1") == 502
    await asyncio.sleep(1.1)  # certificates carry whole seconds: issue strictly after
    await asyncio.to_thread(pki.agent, "plant-7", "plant-7", "plants")  # enrolled again
    await wait_for(lambda: connected(relay, "plant-7") == 2, seconds=15)
    assert await through_relay(relay, pki, "/agents/plant-7/v1/t/1") == 200


async def test_agents_list_reads_the_running_relay(
    pki: Pki, relay: Relay, start_agent: Any
) -> None:
    """`agents list` shows the connected agents from the running relay (table and JSON);
    with no relay answering it says so and exits 1."""
    await start_agent("plant-7", "plants")
    await wait_for(lambda: connected(relay, "plant-7") == 2)
    config = str(pki.folder / "relay.yaml")
    table = await asyncio.to_thread(relay_command, "agents", "list", "-c", config)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["AGENT", "GROUP", "CONNECTIONS"]
    assert row.split()[:3] == ["plant-7", "plants", "2"]
    listing = await asyncio.to_thread(relay_command, "agents", "list", "-c", config, "--json")
    assert [(a["agent_id"], a["connections"]) for a in json.loads(listing.stdout)] == [
        ("plant-7", 2)
    ]
    await relay.stop()
    down = await asyncio.to_thread(relay_command, "agents", "list", "-c", config)
    assert down.returncode == 1
    assert "is it running?" in down.stderr


def test_revocations_outlive_restarts_and_refuse_by_issue_time(tmp_path: Path) -> None:
    """A revocation read back by a new relay refuses certificates issued until it was made,
    accepts later ones and other agents; a damaged file is an error, never an empty list."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    Revocations(tmp_path).revoke("plant-7", now)
    after_restart = Revocations(tmp_path)
    assert after_restart.reload()
    skew = CLOCK_SKEW  # certificates start this long before they are issued
    assert after_restart.refuses("plant-7", now - skew)
    assert after_restart.refuses("plant-7", now - skew - timedelta(days=30))
    assert not after_restart.refuses("plant-7", now - skew + timedelta(seconds=1))
    assert not after_restart.refuses("plant-8", now - skew - timedelta(days=1))
    assert (tmp_path / "revoked.json").stat().st_mode & 0o777 == 0o600
    for damage in (
        "{not json",
        '{"revoked": [{"agent_id": "plant-7", "at": "2026-11-24T12:00"}]}',
        '{"revoked": [{"agent_id": 7, "at": "2026-11-24T12:00:00+00:00"}]}',
    ):
        (tmp_path / "revoked.json").write_text(damage)
        with pytest.raises(RevocationsDamaged, match=r"revoked\.json is damaged"):
            Revocations(tmp_path).reload()


def test_revoke_refuses_a_bad_agent_id(pki: Pki) -> None:
    """An id that no certificate could carry is a usage error (exit 2) with the rule."""
    relay_config(pki, TOKEN)
    result = relay_command("agents", "revoke", "plant 7", "-c", str(pki.folder / "relay.yaml"))
    assert result.returncode == 2
    assert "is not valid: use 1 to 63 letters" in result.stderr


class StopWatching(Exception):
    """Raised by the test's sleep to end the watcher after a few polls."""


async def test_a_damaged_file_keeps_the_last_list_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the revocations file is damaged the watcher keeps the last good list and logs
    the problem once, not at every poll."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    revocations = Revocations(tmp_path)
    await asyncio.to_thread(revocations.revoke, "plant-7", now)
    await asyncio.to_thread((tmp_path / "revoked.json").write_text, "{damaged")
    polls = 0

    async def sleep(_: float) -> None:
        nonlocal polls
        polls += 1
        if polls > 4:
            raise StopWatching

    with pytest.raises(StopWatching):
        await watch(revocations, Registry(), sleep)
    reports = [r for r in caplog.records if "revocations not re-read" in r.getMessage()]
    assert len(reports) == 1
    assert revocations.refuses("plant-7", now - CLOCK_SKEW)


async def test_the_admin_token_sees_every_agent(pki: Pki, relay: Relay, start_agent: Any) -> None:
    """The admin token sees every agent; a wrong token is a 401."""
    await start_agent("plant-7", "plants")
    await wait_for(lambda: connected(relay, "plant-7") == 2)
    token = await asyncio.to_thread(read_admin_token, relay.config.state_path)
    async with aiohttp.ClientSession() as session:
        url = f"{relay.admin_url}/agents"
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200
            assert [a["agent_id"] for a in (await response.json())["agents"]] == ["plant-7"]
        async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
