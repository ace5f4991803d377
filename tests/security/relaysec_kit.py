# Helpers for the relay's security tests: a relay with extra config, a tunnelled SQLite
# agent whose rows say which agent answered, and raw TLS sockets to the caller port.
from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conftest import Caller
from tunnelkit import Pki, relay_config, tunnel_section

from bridgehead.relay.app import Relay

TOKEN = "cloud-token-0123456789"
SECOND = "second-caller-token-42"
RIVAL = "rival-caller-token-777"
CALLERS = [
    {"name": "cloud", "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
     "agents": ["plant-7"], "groups": ["plants"]},
    {"name": "second", "token_sha256": hashlib.sha256(SECOND.encode()).hexdigest(),
     "agents": ["plant-7"]},
    {"name": "rival", "token_sha256": hashlib.sha256(RIVAL.encode()).hexdigest(),
     "groups": ["rivals"]},
]  # fmt: skip
RESOURCES = {
    "t": {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]},
    "lines": {"source": "db", "table": "lines", "key": ["a", "b"]},
}


def make_db(path: Path, name: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?)", [(i, name, f"u{i}@x.test") for i in range(1, 51)]
        )
        db.execute("CREATE TABLE lines (a INTEGER, b INTEGER, note TEXT, PRIMARY KEY (a, b))")
        db.execute("INSERT INTO lines VALUES (1, 2, 'one-two')")
    db.close()


async def start_relay(pki: Pki, **extra: Any) -> Relay:
    extra.setdefault("callers", CALLERS)
    relay = Relay(await asyncio.to_thread(relay_config, pki, TOKEN, **extra))
    await relay.start()
    return relay


async def start_agent(
    pki: Pki, relay: Relay, run_agent: Any, folder: Path, *, name: str = "real",
    agent_id: str = "plant-7", group: str | None = "plants", connections: int = 1,
    api_key: str = TOKEN, pool_size: int = 4,
) -> Caller:  # fmt: skip
    """An agent tunnelled to `relay`; every row of its table `t` has `name` as its name; its
    source has `pool_size` connections."""
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    await asyncio.to_thread(make_db, folder / f"{name}.db", name)
    cert, key = await asyncio.to_thread(pki.agent, name, agent_id, group)
    assert relay.agents_address is not None
    tunnel = tunnel_section(pki, relay.agents_address[1], cert, key, connections=connections)
    caller: Caller = await run_agent(
        {"db": {"sqlite": str(folder / f"{name}.db"), "pool_size": pool_size}}, RESOURCES,
        api_key=api_key, tunnel=tunnel, limits={"requests_per_second": 100_000, "burst": 100_000},
    )  # fmt: skip
    return caller


def links_of(relay: Relay, agent_id: str = "plant-7") -> int:
    return sum(v.connections for v in relay.registry.views() if v.agent_id == agent_id)


async def tls_socket(
    relay: Relay, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TLS connection to the relay's caller port."""
    assert relay.callers_url is not None
    where = urlsplit(relay.callers_url)
    assert where.hostname is not None
    assert where.port is not None
    return await asyncio.open_connection(where.hostname, where.port, ssl=context)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading what it sends)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        return True
    return True
