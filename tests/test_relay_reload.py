# SIGHUP on the relay (`systemctl reload bridgehead-relay`): changed callers and
# request_timeout apply to the next request while the agents' tunnel connections stay up; a
# config that does not load, or that changes a setting owning a socket or a file, is refused
# with the reason logged, and the running config keeps serving.
from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from tunnelkit import Pki, reached_both_ways, running_relay

TOKEN = "cloud-token-before-the-reload"
NEW_TOKEN = "cloud-token-after-the-reload"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
    db.close()


def rewrite(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def swap_token(data: dict[str, Any]) -> None:
    data["callers"][0]["token_sha256"] = hashlib.sha256(NEW_TOKEN.encode()).hexdigest()
    data["request_timeout"] = "7s"


async def test_a_reload_swaps_the_callers_and_keeps_the_tunnels(
    pki: Pki, tmp_path: Path, run_agent: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent's own API key is both tokens, so only the relay decides. Before: TOKEN
    passes, NEW_TOKEN is a 401. After the reload: the reverse, over the very same two tunnel
    connections, and request_timeout is the new one."""
    caplog.set_level(logging.INFO, logger="bridgehead.relay")
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resources = {"t": {"source": "db", "table": "t", "key": ["id"]}}
    keys = {"api_keys": [
        {"name": name, "key_sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": ["t:read"]}
        for name, key in (("before", TOKEN), ("after", NEW_TOKEN))
    ]}  # fmt: skip
    async with (
        running_relay(pki, TOKEN) as relay,
        reached_both_ways(
            pki, relay, run_agent, tmp_path / "t.db", resources, TOKEN, auth=keys
        ) as (_, cloud),  # fmt: skip
    ):
        links = set(relay.registry.links())
        assert (await cloud.get("/v1/t/1"))[0] == 200
        assert (await cloud.get("/v1/t/1", key=NEW_TOKEN))[0] == 401

        await asyncio.to_thread(rewrite, pki.folder / "relay.yaml", swap_token)
        assert await relay.reload() is True
        assert (await cloud.get("/v1/t/1", key=NEW_TOKEN))[0] == 200
        status, _, body = await cloud.get("/v1/t/1")
        assert status == 401, body
        assert set(relay.registry.links()) == links
        assert not any(link.closed.is_set() for link in links)
        assert relay.config.request_timeout == 7.0
    assert "relay.yaml applied (2 callers)" in caplog.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda data: data.update(listen="127.0.0.1:1"), "listen changed, which needs a restart"),
        (lambda data: data["callers"][0].update(token_sha256="not hex"), "token_sha256"),
    ],
    ids=["a-socket-setting", "a-config-that-does-not-load"],
)
async def test_a_refused_reload_keeps_the_running_callers(
    pki: Pki, change: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_relay(pki, TOKEN) as relay:
        before = relay.config
        await asyncio.to_thread(rewrite, pki.folder / "relay.yaml", swap_token)
        await asyncio.to_thread(rewrite, pki.folder / "relay.yaml", change)
        assert await relay.reload() is False
        assert relay.config is before
        assert relay.callers is not None
        assert [c.name for c in relay.callers.config.callers] == ["cloud", "other"]
    assert "the running config stays" in caplog.text
    assert reason in caplog.text
