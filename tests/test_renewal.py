"""Certificate renewal end to end on 127.0.0.1, a real relay and agent over real mutual TLS,
driven by an injected clock (no test waits out a lifetime): the agent renews over its own
tunnel connections with requests in flight and none fails, the relay then sees the new
serial, the previous pair is kept until the new one has connected; a revoked agent or
certificate is refused renewal and keeps its certificate, retrying with backoff and logging
each attempt; and a caller can never reach the control paths."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Caller, agent_config
from cryptography import x509
from polling import wait_for
from tunnelkit import Pki, relay_config, tunnel_section

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
from bridgehead.agent.tunnel.client import TunnelClient
from bridgehead.certs.pki import previous
from bridgehead.relay.app import Relay

TOKEN = "cloud-token-0123456789"
LIFETIME = timedelta(days=30)


class Clock:
    """The agent's wall clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def link_serials(relay: Relay, agent_id: str = "plant-7") -> list[int]:
    return sorted(link.serial for link in relay.registry.links()
                  if link.identity.agent_id == agent_id and not link.closed.is_set())  # fmt: skip


@pytest.fixture
async def relay(pki: Pki) -> AsyncIterator[Relay]:
    """A relay that can sign (ca.key), dating its certificates by the real time."""
    ca = {"cert": str(pki.ca), "key": str(pki.folder / "ca.key")}
    config = await asyncio.to_thread(relay_config, pki, TOKEN, ca=ca)
    started = Relay(config, clock=lambda: datetime.now(UTC))
    await started.start()
    yield started
    await started.stop()


StartAgent = Callable[..., Awaitable[tuple[Caller, TunnelClient, Path, Clock]]]


@pytest.fixture
async def start_agent(pki: Pki, relay: Relay, tmp_path: Path) -> AsyncIterator[StartAgent]:
    """A factory: an agent whose certificate was issued 21 days ago (30 days' lifetime), with
    its wall clock set 20 days back, so renewal is not due until the test moves the clock."""
    started: list[Agent] = []
    session = aiohttp.ClientSession()

    async def start(name: str = "a", agent_id: str = "plant-7") -> Any:
        folder = tmp_path / f"agent-{name}"
        await asyncio.to_thread(folder.mkdir)
        await asyncio.to_thread(make_db, folder / "t.db")
        issued = datetime.now(UTC) - timedelta(days=21)
        cert, key = await asyncio.to_thread(
            pki.agent, f"{name}-agent", agent_id, "plants", now=issued, days=LIFETIME.days
        )
        assert relay.agents_address is not None
        tunnel = tunnel_section(pki, relay.agents_address[1], cert, key)
        path = await asyncio.to_thread(
            agent_config, folder, {"db": {"sqlite": str(folder / "t.db")}},
            {"t": {"source": "db", "table": "t", "key": ["id"]}}, TOKEN, tunnel=tunnel,
            limits={"requests_per_second": 100_000, "burst": 100_000},
        )  # fmt: skip
        clock = Clock(datetime.now(UTC) - timedelta(days=20))
        agent = Agent(await asyncio.to_thread(load_config, path), wall_clock=clock,
                      renew_check=0.02)  # fmt: skip
        await agent.start()
        started.append(agent)
        assert agent.listen_url is not None
        assert agent.tunnel is not None
        return Caller(agent.listen_url, TOKEN, session, agent), agent.tunnel, cert, clock

    yield start
    for agent in started:
        await agent.stop()
    await session.close()


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 21)])
    db.close()


async def through_relay(
    session: aiohttp.ClientSession, relay: Relay, path: str, method: str = "GET"
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.request(method, f"{relay.callers_url}{path}", headers=headers) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
async def callers(pki: Pki) -> AsyncIterator[aiohttp.ClientSession]:
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


async def test_renewal_swaps_the_certificate_with_requests_in_flight(
    relay: Relay, start_agent: StartAgent, callers: aiohttp.ClientSession
) -> None:
    """Once the clock passes 2/3 of the lifetime the agent renews over its tunnel while
    callers keep sending: every request answers 200, the relay then sees only the new
    serial on both connections, the new certificate lasts `enrollment.lifetime` and is for
    a new key, and the previous pair, kept at the swap, is gone once the new one connected."""
    _, client, cert, clock = await start_agent()
    await wait_for(lambda: len(link_serials(relay)) == 2)
    old = await asyncio.to_thread(serial_of, cert)
    old_key = await asyncio.to_thread(Path(str(cert).replace(".pem", ".key")).read_bytes)
    kept_at_swap: list[bool] = []
    rotate = client.rotate_if_renewed

    def kept() -> bool:
        return previous(cert).exists() and serial_of(previous(cert)) == old

    async def rotate_after_looking() -> bool:  # the pair is written; no connection used it yet
        kept_at_swap.append(await asyncio.to_thread(kept))
        return await rotate()

    client.rotate_if_renewed = rotate_after_looking  # type: ignore[method-assign]
    assert client.renewal_status().attempts == 0
    stop = asyncio.Event()

    async def keep_calling(n: int) -> list[int]:
        statuses = []
        while not stop.is_set():
            statuses.append((await through_relay(callers, relay, f"/agents/plant-7/v1/t/{n}"))[0])
        return statuses

    load = [asyncio.create_task(keep_calling(1 + n % 20)) for n in range(30)]
    await asyncio.sleep(0.2)  # requests in flight on both connections
    clock.now = datetime.now(UTC)  # 21 days into a 30-day lifetime: renewal is due
    await wait_for(lambda: len(link_serials(relay)) == 2 and old not in link_serials(relay), 20)
    await asyncio.sleep(0.2)
    stop.set()
    statuses = [s for task in load for s in await task]

    assert len(statuses) > 60
    assert set(statuses) == {200}
    new = await asyncio.to_thread(serial_of, cert)
    assert link_serials(relay) == [new, new]
    assert kept_at_swap == [True]
    for _ in range(100):  # removed just after the new certificate's first connection
        if not await asyncio.to_thread(previous(cert).exists):
            break
        await asyncio.sleep(0.05)
    assert not await asyncio.to_thread(previous(cert).exists)
    issued = x509.load_pem_x509_certificate(await asyncio.to_thread(cert.read_bytes))
    lasts = issued.not_valid_after_utc - datetime.now(UTC)
    assert LIFETIME - timedelta(minutes=1) < lasts <= LIFETIME
    key = Path(str(cert).replace(".pem", ".key"))
    assert await asyncio.to_thread(key.read_bytes) != old_key
    status = client.renewal_status()
    assert (status.not_after, status.attempts, status.last_error) == (
        issued.not_valid_after_utc, 0, None,
    )  # fmt: skip


@pytest.mark.parametrize("revoked", ["agent", "serial"])
async def test_a_revoked_certificate_is_not_renewed(
    relay: Relay, start_agent: StartAgent, caplog: pytest.LogCaptureFixture, revoked: str
) -> None:
    """With the revocation watcher held (so the links stay up), a revoked agent id or
    certificate serial is refused renewal: the agent keeps its certificate and no previous
    pair, logs each attempt with the time left, and retries only after a backoff delay."""
    caplog.set_level(logging.INFO)
    assert relay._watcher is not None
    relay._watcher.cancel()
    _, client, cert, clock = await start_agent()
    await wait_for(lambda: len(link_serials(relay)) == 2)
    old = await asyncio.to_thread(serial_of, cert)
    serial = old if revoked == "serial" else None
    await asyncio.to_thread(relay.revocations.revoke, "plant-7", serial=serial)

    clock.now = datetime.now(UTC)
    await wait_for(lambda: client.renewal_status().attempts == 1)
    status = client.renewal_status()
    assert status.last_error is not None
    assert "is revoked" in status.last_error
    assert status.next_attempt is not None
    assert status.next_attempt - clock.now >= timedelta(seconds=30)  # half of the first ceiling
    await asyncio.sleep(0.2)  # several checks of the schedule: not due again yet
    assert client.renewal_status().attempts == 1
    clock.now += timedelta(hours=2)  # past the longest delay
    await wait_for(lambda: client.renewal_status().attempts == 2)

    assert await asyncio.to_thread(serial_of, cert) == old
    assert not await asyncio.to_thread(previous(cert).exists)
    assert link_serials(relay) == [old, old]
    assert client.renewal_status().failures == 2  # what the renewal-failures metric counts
    failures = [r.getMessage() for r in caplog.records if "renewal failed" in r.getMessage()]
    assert len(failures) == 2
    assert "(attempt 1)" in failures[0]
    assert "(attempt 2)" in failures[1]
    assert "expires in 9." in failures[0] or "expires in 8." in failures[0]
    starts = [r for r in caplog.records if "renewing the certificate" in r.getMessage()]
    assert len(starts) == 2
    refusals = [r for r in caplog.records if "renewal refused" in r.getMessage()]
    assert len(refusals) == 2
    assert f"serial {old:x}" in refusals[0].getMessage()


async def test_revoking_one_serial_cuts_only_that_certificate(
    pki: Pki, relay: Relay, start_agent: StartAgent, callers: aiohttp.ClientSession
) -> None:
    """Two agents hold two certificates for the same id: `agents revoke ID --serial S` drops
    the connections presenting S at once and keeps refusing it, while the other
    certificate's connections stay and go on serving."""
    first = await start_agent("a")
    second = await start_agent("b")
    await wait_for(lambda: len(link_serials(relay)) == 4)
    stolen = await asyncio.to_thread(serial_of, first[2])
    kept = await asyncio.to_thread(serial_of, second[2])
    config = str(pki.folder / "relay.yaml")
    result = await asyncio.create_subprocess_exec(
        *RELAY, "agents", "revoke", "plant-7", "--serial", f"{stolen:x}", "-c", config,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(result.communicate(), 60)
    assert result.returncode == 0, err
    assert f"revoked certificate serial {stolen:x} of plant-7" in out.decode()

    await wait_for(lambda: link_serials(relay) == [kept, kept], 3)
    await asyncio.sleep(1.5)  # the first agent keeps dialling: refused each time
    assert link_serials(relay) == [kept, kept]
    assert (await through_relay(callers, relay, "/agents/plant-7/v1/t/3"))[0] == 200


RELAY = [sys.executable, "-m", "bridgehead.relay.cli"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/agents/plant-7/.bridgehead/renewal"),
        ("POST", "/agents/plant-7/.bridgehead/certificate"),
        ("GET", "/agents/plant-7/%2Ebridgehead/renewal"),
        ("GET", "/agents/plant-7//.bridgehead/renewal"),
        ("GET", "/groups/plants/.BridgeHead/renewal"),
    ],
)
async def test_callers_cannot_reach_the_control_paths(
    relay: Relay, start_agent: StartAgent, callers: aiohttp.ClientSession, method: str, path: str
) -> None:
    """A caller's request for any spelling of /.bridgehead/ is a 404 problem from the relay;
    no stream reaches the agent, whose renewal state is untouched."""
    _, client, _, _ = await start_agent()
    await wait_for(lambda: len(link_serials(relay)) == 2)
    status, body = await through_relay(callers, relay, path, method)
    assert status == 404
    assert body["title"] == "Not Found"
    assert "reserved for the relay" in body["detail"]
    assert sum(len(c.streams) for c in client.live) == 0
    assert client.renewal_status().attempts == 0
