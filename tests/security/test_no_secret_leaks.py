# No secret of the configs reaches a log file or a support bundle. One world full of them:
# a PostgreSQL source whose password comes from ${env:}, an admin token stored as an enc:
# value, the API key (also the cloud caller's relay token), all behind a real relay over
# mutual TLS; a full exchange is logged as JSON lines to a file at DEBUG, then
# `bridgehead diag` bundles the running agent, and every line and file is searched.
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentproc import free_port
from backends import odbc_run
from dbservers import PostgresServer
from polling import wait_for
from tunnelkit import Pki, running_relay, tunnel_section

from bridgehead.agent.diag import bundle
from bridgehead.certs.secretbox import SecretBox
from bridgehead.common import logs
from bridgehead.common.config.base import LoggingConfig

TOKEN = "cloud-and-api-key-" + secrets.token_hex(8)


def readable(text: str) -> str:
    """JSON lines with their escapes undone, so secrets are searched as written."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            lines.append(line)
    return "\n".join(lines)


async def pg_source(pg: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    await asyncio.to_thread(pg.create_database, "leaks")
    conn = pg.odbc_connection_string("leaks")
    await asyncio.to_thread(odbc_run(conn, []), ["CREATE TABLE t (id TEXT PRIMARY KEY, n INT)"])
    monkeypatch.setenv("BH_LEAKS_PG_PASSWORD", pg.password)
    return {"odbc": conn.replace(f"PWD={pg.password}", "PWD=${env:BH_LEAKS_PG_PASSWORD}")}


async def exchange(cloud: str, admin: str, admin_token: str, context: Any) -> None:
    """Reads, a write, a duplicate (its driver message quotes the value), refusals."""
    duplicate = {"id": "dupe-" + secrets.token_hex(4), "n": 1}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as s:
        for method, path, body, headers, expected in [
            ("GET", "/v1/t", None, auth, 200),
            ("POST", "/v1/t", duplicate, auth, 201),
            ("POST", "/v1/t", duplicate, auth, 409),
            ("GET", "/v1/t/nope", None, auth, 404),
            ("GET", "/v1/t", None, {"Authorization": "Bearer wrong-" + TOKEN}, 401),
        ]:
            async with s.request(method, cloud + path, json=body, headers=headers) as r:
                assert r.status == expected, (method, path, await r.text())
        for token, expected in ((admin_token, 200), ("wrong-" + admin_token, 401)):
            headers = {"Authorization": f"Bearer {token}"}
            async with s.get(f"{admin}/status.json", headers=headers) as r:
                assert r.status == expected


async def test_no_secret_in_the_logs_or_the_diag_bundle(
    pki: Pki,
    tmp_path: Path,
    run_agent: Any,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    restored_logging: None,
) -> None:
    """The API key, the caller token, the DB password, the admin token (stored enc:) and
    its enc: value appear in no log line and in no file of the bundle; the bundle still
    shows the source answering, the tunnel passing and the agent running."""
    log_file = tmp_path / "logs" / "all.log"
    await asyncio.to_thread(logs.apply, LoggingConfig(level="DEBUG", file=log_file))
    admin_token = "admin-" + secrets.token_hex(12)
    state = tmp_path / "agent-state"
    sealed = await asyncio.to_thread(SecretBox(state).seal, admin_token)
    admin = f"127.0.0.1:{await asyncio.to_thread(free_port)}"
    source = await pg_source(postgres_server, monkeypatch)
    resource = {"source": "pg", "table": "t", "key": ["id"], "operations": ["read", "insert"]}
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    async with running_relay(pki, TOKEN) as relay:
        assert relay.agents_address is not None
        await run_agent(
            {"pg": source}, {"t": resource}, api_key=TOKEN,
            tunnel=tunnel_section(pki, relay.agents_address[1], cert, key),
            admin={"address": admin, "token": sealed}, state_dir=str(state),
            logging={"file": str(log_file), "level": "DEBUG"},
        )  # fmt: skip
        await wait_for(lambda: sum(v.connections for v in relay.registry.views()) == 2)
        context = await asyncio.to_thread(pki.caller_context)
        cloud = f"{relay.callers_url}/agents/plant-7"
        await exchange(cloud, f"http://{admin}", admin_token, context)
        zip_path = await bundle.build(tmp_path / "agent0" / "agent.yaml", tmp_path / "d.zip")
    await asyncio.to_thread(logs.close)
    found = await asyncio.to_thread(read_all, log_file, zip_path)
    secrets_ = {
        "API key / caller token": TOKEN,
        "its SHA-256": hashlib.sha256(TOKEN.encode()).hexdigest(),
        "DB password": postgres_server.password,
        "admin token": admin_token,
        "enc: value": sealed.removeprefix("enc:"),
    }
    assert found["log"].count("\n") > 20  # the exchange was logged
    for where, text in found.items():
        for name, secret in secrets_.items():
            assert secret not in text, f"the {name} is in {where}"
    summary = found["summary.txt"]
    assert "sources.pg: ok" in summary
    assert "tunnel: ok" in summary
    assert "agent: running" in summary
    assert json.loads(found["status.json"])["sources"]


def read_all(log_file: Path, zip_path: Path) -> dict[str, str]:
    texts = {"log": readable(log_file.read_text(encoding="utf-8"))}
    with zipfile.ZipFile(zip_path) as bundle_zip:
        for name in bundle_zip.namelist():
            texts[name] = readable(bundle_zip.read(name).decode("utf-8"))
    return texts
