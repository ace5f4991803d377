# The relay's admin port as a monitor sees it: /readyz is 503 with a reason while the
# agents' CA file or the state folder cannot be read, 200 again once they can; /metrics is
# valid Prometheus text by promtool's own check.
from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tunnelkit import Pki, reached_both_ways, running_relay

from bridgehead.relay import readiness

TOKEN = "cloud-token-for-readiness"
PROMTOOL = shutil.which("promtool")


async def readyz(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(f"{url}/readyz") as response:
        return response.status, await response.json()


async def test_readyz_fails_while_the_ca_or_the_state_folder_cannot_be_read(pki: Pki) -> None:
    """Ready with both readable; 503 naming ca.cert when the CA file is gone, naming
    state_dir when the state folder is gone; ready again once each is back."""
    async with (
        running_relay(pki, TOKEN, admin="127.0.0.1:0") as relay,
        aiohttp.ClientSession() as s,
    ):
        assert relay.admin_url is not None
        assert await readyz(s, relay.admin_url) == (200, {"status": "ready"})
        moved = pki.ca.with_suffix(".moved")
        await asyncio.to_thread(pki.ca.rename, moved)
        status, body = await readyz(s, relay.admin_url)
        assert (status, body["status"]) == (503, "not ready")
        assert [reason.split()[0] for reason in body["reasons"]] == ["ca.cert"]
        await asyncio.to_thread(moved.rename, pki.ca)
        state = relay.config.state_path
        await asyncio.to_thread(state.rename, state.with_name("state.moved"))
        status, body = await readyz(s, relay.admin_url)
        assert status == 503
        assert "state_dir" in body["reasons"][0]
        assert "not a folder" in body["reasons"][0]
        await asyncio.to_thread(state.with_name("state.moved").rename, state)
        assert (await readyz(s, relay.admin_url))[0] == 200


def test_a_ca_file_that_is_not_pem_is_a_reason(tmp_path: Path) -> None:
    """A CA file holding something other than a PEM certificate is not ready, saying so."""
    (tmp_path / "ca.pem").write_text("not a certificate")
    assert readiness.problems(tmp_path / "ca.pem", tmp_path) == [
        f"ca.cert {tmp_path / 'ca.pem'} is not a PEM certificate"
    ]


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1)")
    db.close()


def promtool_check(text: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=text.decode(),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


async def test_relay_metrics_pass_promtool(pki: Pki, tmp_path: Path, run_agent: Any) -> None:
    """With an agent connected and requests answered, the relay's /metrics passes
    `promtool check metrics` (names, help, types, no lint problems)."""
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resources = {"t": {"source": "db", "table": "t", "key": ["id"]}}
    async with (
        running_relay(pki, TOKEN, admin="127.0.0.1:0") as relay,
        reached_both_ways(pki, relay, run_agent, tmp_path / "t.db", resources, TOKEN) as both,
    ):
        _, cloud = both
        assert (await cloud.get("/v1/t/1"))[0] == 200
        assert (await cloud.get("/v1/t/2"))[0] == 404
        assert relay.admin_url is not None
        async with aiohttp.ClientSession() as s, s.get(f"{relay.admin_url}/metrics") as response:
            text = await response.read()
    assert b"bridgehead_relay_requests_total" in text
    checked = await asyncio.to_thread(promtool_check, text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout
