# A dead network path for real: the relay runs in a network namespace the test makes, reached
# over a veth pair, and taking the namespace's end of the link down drops every packet with no
# FIN or RST (as a failed router or a NAT that forgot the flow does). The agent must notice by
# its PING deadline, keep dialling while the path is gone, and be back once it returns. Needs
# root and iproute2 (`ip netns`); skipped, with the reason, where a namespace cannot be made.
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentproc import free_port, listening, stop_process
from polling import settle
from tunnelkit import Pki, relay_config, tunnel_section

from bridgehead.certs.pki import issue_server_cert, write_key_pair

TOKEN = "cloud-token-0123456789"


@dataclass(frozen=True)
class Namespace:
    name: str
    inside: str
    """The namespace's end of the veth pair."""
    address: str
    """The namespace's address, reached from the test's own namespace over the veth pair."""

    def link(self, state: str) -> None:
        ip("-n", self.name, "link", "set", self.inside, state)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A namespace joined to this one by a veth pair on a private /30; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    tag = secrets.token_hex(3)
    name, outside, inside = f"bh-{tag}", f"bh{tag}o", f"bh{tag}i"
    net = 16 + secrets.randbelow(200)
    here, there = f"10.231.{net}.1", f"10.231.{net}.2"
    try:
        ip("netns", "add", name)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", name)
        ip("addr", "add", f"{here}/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", name, "addr", "add", f"{there}/30", "dev", inside)
        ip("-n", name, "link", "set", inside, "up")
        ip("-n", name, "link", "set", "lo", "up")
    except (OSError, subprocess.CalledProcessError) as exc:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            ip("netns", "del", name)
        pytest.skip(f"cannot make a network namespace here: {getattr(exc, 'stderr', exc)}")
    try:
        yield Namespace(name, inside, there)
    finally:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            ip("link", "del", outside)
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            ip("netns", "del", name)


@pytest.fixture
def relay_in(netns: Namespace, pki: Pki) -> Iterator[tuple[int, int]]:
    """`bridgehead-relay run` inside the namespace; (agent port, caller port) on its address."""
    cert, key = issue_server_cert(pki.ca_cert_pem, pki.ca_key_pem, [netns.address])
    write_key_pair(pki.folder / "inside.pem", pki.folder / "inside.key", cert, key)
    agents_port, callers_port = free_port(), free_port()
    relay_config(
        pki, TOKEN,
        agents_listen=f"{netns.address}:{agents_port}", listen=f"{netns.address}:{callers_port}",
        tls={"cert": str(pki.folder / "inside.pem"), "key": str(pki.folder / "inside.key")},
        heartbeat="60s", dead_after="60s",
    )  # fmt: skip
    log = (pki.folder / "relay.log").open("wb")
    command = ["ip", "netns", "exec", netns.name, sys.executable, "-m", "bridgehead.relay.cli",
               "run", "-c", str(pki.folder / "relay.yaml")]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 30
        while not listening(callers_port, netns.address):
            assert process.poll() is None, (pki.folder / "relay.log").read_text()
            assert time.monotonic() < deadline, "the relay in the namespace did not start"
            time.sleep(0.05)
        yield agents_port, callers_port
    finally:
        stop_process(process, grace=10)
        log.close()


async def test_a_path_that_drops_every_packet_is_noticed_and_replaced(
    netns: Namespace, relay_in: tuple[int, int], pki: Pki, tmp_path: Path, run_agent: Any
) -> None:
    """With the link to the relay down (packets dropped, nothing sent back), the agent's
    connection is closed by its PING deadline (dead_after 2 s, heartbeat 0.5 s), not by the
    kernel (which would take many minutes); once the link is up again a new connection
    carries requests."""
    agents_port, callers_port = relay_in
    await asyncio.to_thread((tmp_path / "t.db").write_bytes, b"")
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    tunnel = tunnel_section(pki, agents_port, cert, key, relay=f"{netns.address}:{agents_port}",
                            connections=1, heartbeat="0.5s", dead_after="2s")  # fmt: skip
    caller = await run_agent({"db": {"sqlite": str(tmp_path / "t.db")}}, {}, api_key=TOKEN,
                             tunnel=tunnel)  # fmt: skip
    client = caller.agent.tunnel
    assert await settle(lambda: client.status.connected == 1, 10)
    (old,) = client.live
    assert await settle(lambda: old.liveness.rtt is not None, 5)  # PINGs answered
    await asyncio.to_thread(netns.link, "down")
    dropped = time.monotonic()
    try:
        noticed = await settle(lambda: old not in client.live, 5)
        took = time.monotonic() - dropped
        assert noticed, "the dead path was still in use 5 s after the link went down"
        assert 1.4 < took < 3.5, f"closed after {took:.2f} s (dead_after 2 s, heartbeat 0.5 s)"
        assert client.status.connected == 0
    finally:
        await asyncio.to_thread(netns.link, "up")
    assert await settle(lambda: client.status.connected == 1, 20), client.status.last_error
    context = await asyncio.to_thread(pki.caller_context)
    url = f"https://{netns.address}:{callers_port}/agents/plant-7/v1/openapi.json"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 200
