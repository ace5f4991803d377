"""Enrollment end to end on 127.0.0.1: `token create` on a real relay, `bridgehead enroll` on a
real agent, then a request through the relay with the enrolled certificate. Every refusal is
one sentence on both sides and writes nothing; a relay with another CA never sees the token."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from polling import wait_for
from tunnelkit import Pki, make_pki, running_relay

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
from bridgehead.agent.enroll import EnrollRefused, enroll_command
from bridgehead.certs.enrollment import ENROLL_ALPN, EnrollmentToken, line
from bridgehead.common.config.base import HostPort
from bridgehead.relay.app import Relay
from bridgehead.relay.enrollment import create_token
from bridgehead.relay.tokens import TokenStore

TOKEN = "cloud-token-0123456789"
CONFIG = """\
# The plant's agent: comments like this one survive enrollment.
sources:
  db:
    sqlite: t.db   # the line-side database

resources:
  t: {source: db, table: t}

auth:
  api_keys:
    - name: cloud
      key_sha256: "%s"
      scopes: ["t:read"]

listen: 127.0.0.1:0
admin: null
"""


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    (tmp_path / "relay").mkdir()
    return make_pki(tmp_path / "relay")


@pytest.fixture
async def relay(pki: Pki) -> AsyncIterator[Relay]:
    ca = {"cert": str(pki.ca), "key": str(pki.folder / "ca.key")}
    async with running_relay(pki, TOKEN, ca=ca) as started:
        yield started


@pytest.fixture
def agent_yaml(tmp_path: Path) -> Path:
    folder = tmp_path / "agent"
    folder.mkdir()
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 6)])
    db.close()
    path = folder / "agent.yaml"
    path.write_text(CONFIG % hashlib.sha256(TOKEN.encode()).hexdigest())
    return path


async def token_for(relay: Relay, agent: str = "plant-7", **kw: Any) -> str:
    assert relay.agents_address is not None
    address = HostPort(host="127.0.0.1", port=relay.agents_address[1])
    return await asyncio.to_thread(create_token, relay.config, agent, kw.pop("group", "plants"),
                        kw.pop("ttl", timedelta(hours=1)), address=address, **kw)  # fmt: skip


async def enroll(token: str, config: Path) -> str:
    return await asyncio.to_thread(enroll_command, token, config)


def untouched(config: Path) -> bool:
    """Nothing was written: no certificate folder, the config as it was."""
    return not (config.parent / "certs").exists() and "tunnel:" not in config.read_text()


async def text_of(path: Path) -> str:
    return await asyncio.to_thread(path.read_text)


async def test_enroll_then_serve_through_the_relay(relay: Relay, agent_yaml: Path) -> None:
    """The enrolled agent connects with its new certificate and answers through the relay;
    its key is 0600, and agent.yaml keeps its comments and gains the tunnel section."""
    said = await enroll(await token_for(relay), agent_yaml)

    assert "enrolled as agent plant-7 in group plants" in said
    text = await text_of(agent_yaml)
    assert "# The plant's agent: comments like this one survive enrollment." in text
    assert "sqlite: t.db   # the line-side database" in text
    key = agent_yaml.parent / "certs" / "agent.key"
    assert (await asyncio.to_thread(key.stat)).st_mode & 0o777 == 0o600
    config = await asyncio.to_thread(load_config, agent_yaml)
    assert config.tunnel is not None
    assert config.tunnel.cert == agent_yaml.parent / "certs" / "agent.pem"
    agent = Agent(config)
    await agent.start()
    try:
        await wait_for(lambda: sum(v.connections for v in relay.registry.views()) == 2)
        context = ssl.create_default_context(cafile=str(relay.config.ca.cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            url = f"{relay.callers_url}/agents/plant-7/v1/t"
            async with s.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                body = await response.json()
        assert response.status == 200, body
        assert [row["id"] for row in body["items"]] == [1, 2, 3, 4, 5]
    finally:
        await agent.stop()


async def test_a_token_enrolls_once(
    relay: Relay, agent_yaml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same token a second time is refused, saying it is used, on both sides."""
    token = await token_for(relay)
    await enroll(token, agent_yaml)
    before = await text_of(agent_yaml)
    caplog.set_level(logging.WARNING, "bridgehead.relay")

    with pytest.raises(EnrollRefused, match="this enrollment token is used"):
        await enroll(token, agent_yaml)

    assert await text_of(agent_yaml) == before
    assert "enrollment refused: this enrollment token is used" in caplog.text


def altered(token: str, **fields: Any) -> str:
    decoded = EnrollmentToken.decode(token)
    return EnrollmentToken(**{**decoded.__dict__, **fields}).encode()


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("expired", "this enrollment token is expired"),
        ("revoked", "this enrollment token is revoked"),
        ("forged", "the relay does not know this enrollment token"),
        ("wrong-fingerprint", "is not the one that made this token"),
        ("wrong-agent", "not for this agent's key and id"),
        ("not-a-token", "is not a Bridgehead enrollment token"),
    ],
)
async def test_refusals_write_nothing(relay: Relay, agent_yaml: Path, case: str, says: str) -> None:
    """Each bad token is refused with one sentence naming the reason; no file is written."""
    now = datetime.now(UTC)
    token = await token_for(relay, now=now - timedelta(hours=2) if case == "expired" else now)
    if case == "revoked":
        store = TokenStore(relay.config.state_path)
        await asyncio.to_thread(store.revoke, EnrollmentToken.decode(token).id, now)
    bad = {
        "forged": lambda: altered(token, secret="guessed-" + "x" * 30),
        "wrong-fingerprint": lambda: altered(token, ca="0" * 64),
        "wrong-agent": lambda: altered(token, agent="plant-8"),
        "not-a-token": lambda: "bhe1.bm90IGpzb24",
    }.get(case, lambda: token)()

    with pytest.raises(EnrollRefused, match=says):
        await enroll(bad, agent_yaml)

    assert await asyncio.to_thread(untouched, agent_yaml)


def mitm_context(folder: Path) -> ssl.SSLContext:
    """TLS as a relay with a CA of its own would offer it, for the enrollment ALPN."""
    folder.mkdir()
    other = make_pki(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(other.folder / "relay.pem", other.folder / "relay.key")
    context.set_alpn_protocols([ENROLL_ALPN])
    return context


async def test_a_relay_with_another_ca_never_gets_the_token(
    relay: Relay, agent_yaml: Path, tmp_path: Path
) -> None:
    """A man in the middle with its own CA, even one that forwards the real relay's CA
    certificate, is refused before the agent sends anything: it receives no byte."""
    context = await asyncio.to_thread(mitm_context, tmp_path / "mitm")
    received: list[bytes] = []
    real_ca = await text_of(relay.config.ca.cert)

    async def intercept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line({"ca": real_ca}))
        await writer.drain()
        received.append(await reader.read())
        writer.close()

    server = await asyncio.start_server(intercept, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    token = altered(await token_for(relay), relay=f"127.0.0.1:{port}")
    try:
        with pytest.raises(EnrollRefused, match="its CA did not issue"):
            await enroll(token, agent_yaml)
        await wait_for(lambda: received, 5)
    finally:
        server.close()
        await server.wait_closed()

    assert received == [b""]
    assert await asyncio.to_thread(untouched, agent_yaml)


async def test_the_command_line_says_one_sentence(relay: Relay, agent_yaml: Path) -> None:
    """`bridgehead enroll` prints the result on success, and a refusal as one sentence on
    stderr with exit 2 and no traceback."""
    token = await token_for(relay)
    argv = [sys.executable, "-m", "bridgehead.agent.cli", "enroll", token, "-c", str(agent_yaml)]

    async def run() -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return subprocess.CompletedProcess(argv, process.returncode, out.decode(), err.decode())

    first, again = await run(), await run()

    assert first.returncode == 0, first.stderr
    assert "enrolled as agent plant-7" in first.stdout
    assert again.returncode == 2
    assert again.stderr.startswith("bridgehead: the relay refused to enroll this agent:")
    assert again.stderr.count("\n") == 1
    assert "Traceback" not in again.stderr


async def test_an_existing_tunnel_section_is_updated_in_place(
    relay: Relay, agent_yaml: Path
) -> None:
    """Enrolling again, or over a tunnel section the operator wrote, changes only the relay
    and the certificate paths: its other keys and its comments stay, and there is one
    `tunnel:` in the file."""
    written = (
        "tunnel:\n  relay: old-relay.example.com:8443   # the old relay\n"
        "  connections: 3\n  ca: old/ca.pem\n  cert: old/agent.pem\n  key: old/agent.key\n"
    )
    await asyncio.to_thread(agent_yaml.write_text, await text_of(agent_yaml) + written)

    await enroll(await token_for(relay), agent_yaml)

    text = await text_of(agent_yaml)
    assert text.count("tunnel:") == 1
    assert "connections: 3" in text
    config = await asyncio.to_thread(load_config, agent_yaml)
    assert config.tunnel is not None
    assert config.tunnel.connections == 3
    assert relay.agents_address is not None
    assert config.tunnel.relay.port == relay.agents_address[1]
    assert config.tunnel.key == agent_yaml.parent / "certs" / "agent.key"


async def test_a_fault_on_the_relay_is_one_sentence_not_a_dropped_connection(
    relay: Relay, agent_yaml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the relay cannot use its own token store (here a folder where the file should
    be), the agent hears that the fault is the relay's, the relay logs what it is, and the
    agent writes nothing."""
    token = await token_for(relay)
    store = TokenStore(relay.config.state_path).path

    def break_store() -> None:
        store.unlink()
        store.mkdir()

    await asyncio.to_thread(break_store)
    with pytest.raises(EnrollRefused, match="a fault on the relay: its log says what"):
        await enroll(token, agent_yaml)
    assert "enrollment failed on this relay" in caplog.text
    assert str(store) in caplog.text
    assert await asyncio.to_thread(untouched, agent_yaml)
