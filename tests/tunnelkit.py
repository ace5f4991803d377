# A relay and its PKI for tunnel tests: a CA, the relay's server certificate for 127.0.0.1,
# agent certificates (good, from another CA, expired), and a relay started on free ports.
from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import yaml
from polling import wait_for

from bridgehead.certs.pki import (
    Identity,
    create_ca,
    issue_agent_cert,
    issue_server_cert,
    write_key_pair,
)
from bridgehead.relay.app import Relay
from bridgehead.relay.config import RelayConfig, load_relay_config

if TYPE_CHECKING:
    from conftest import Caller  # conftest imports this module: only for the annotations


@dataclass
class Pki:
    folder: Path
    ca: Path
    ca_key_pem: bytes
    ca_cert_pem: bytes

    def agent(
        self, name: str, agent_id: str, group: str | None = None, **kw: Any
    ) -> tuple[Path, Path]:
        cert, key = issue_agent_cert(
            self.ca_cert_pem, self.ca_key_pem, Identity(agent_id, group), **kw
        )
        paths = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        write_key_pair(*paths, cert, key)
        return paths

    def caller_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_pki(folder: Path) -> Pki:
    ca_cert, ca_key = create_ca()
    write_key_pair(folder / "ca.pem", folder / "ca.key", ca_cert, ca_key)
    cert, key = issue_server_cert(ca_cert, ca_key, ["127.0.0.1", "localhost"])
    write_key_pair(folder / "relay.pem", folder / "relay.key", cert, key)
    return Pki(folder, folder / "ca.pem", ca_key, ca_cert)


def expired(pki: Pki, name: str, agent_id: str) -> tuple[Path, Path]:
    return pki.agent(name, agent_id, now=datetime.now(UTC) - timedelta(days=400), days=30)


def relay_config(pki: Pki, token: str, *, agents_port: int = 0, **extra: Any) -> RelayConfig:
    config = {
        "agents_listen": f"127.0.0.1:{agents_port}",
        "listen": "127.0.0.1:0",
        "admin": None,
        "tls": {"cert": str(pki.folder / "relay.pem"), "key": str(pki.folder / "relay.key")},
        "ca": {"cert": str(pki.ca)},
        "callers": [
            {"name": "cloud", "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
             "agents": ["plant-7", "ghost"], "groups": ["plants"]},
            {"name": "other", "token_sha256": hashlib.sha256(b"other-token").hexdigest(),
             "agents": ["elsewhere"]},
        ],
        "request_timeout": "5s",
        "heartbeat": "1s",
        "dead_after": "3s",
        **extra,
    }  # fmt: skip
    path = pki.folder / "relay.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_relay_config(path)


def tunnel_section(pki: Pki, port: int, cert: Path, key: Path, **extra: Any) -> dict[str, Any]:
    return {
        "relay": f"127.0.0.1:{port}",
        "connections": 2,
        "ca": str(pki.ca),
        "cert": str(cert),
        "key": str(key),
        "heartbeat": "1s",
        "dead_after": "3s",
        **extra,
    }


@asynccontextmanager
async def running_relay(pki: Pki, token: str, **extra: Any) -> AsyncIterator[Relay]:
    """A relay for `pki` that knows the caller `token`, started and then stopped."""
    config = await asyncio.to_thread(relay_config, pki, token, **extra)
    relay = Relay(config, config_file=pki.folder / "relay.yaml")
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


@asynccontextmanager
async def reached_both_ways(
    pki: Pki,
    relay: Relay,
    run_agent: Any,
    database: Path,
    resources: dict[str, Any],
    token: str,
    **extra: Any,
) -> AsyncIterator[tuple[Caller, Caller]]:
    """One agent (plant-7, group plants) serving the SQLite `database`, reached on its own
    listener and through `relay` with the same bearer token, once both its tunnel
    connections are up."""
    from conftest import Caller  # noqa: PLC0415 - conftest imports this module

    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    assert relay.agents_address is not None
    direct: Caller = await run_agent(
        {"db": {"sqlite": str(database)}}, resources, api_key=token,
        tunnel=tunnel_section(pki, relay.agents_address[1], cert, key), **extra,
    )  # fmt: skip
    await wait_for(lambda: sum(v.connections for v in relay.registry.views()) == 2)
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield direct, Caller(f"{relay.callers_url}/agents/plant-7", token, session, direct.agent)
