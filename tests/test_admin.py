# The admin listener end to end: a real agent on 127.0.0.1 with SQLite or a throwaway
# PostgreSQL through its ODBC driver, a real relay over mutual TLS. /healthz, /readyz,
# /status.json and /metrics; the token rule; readiness following a database and a relay
# that go away and come back; the metrics text checked by prometheus-client and promtool.
from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dbservers import PostgresServer
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families
from tunnelkit import Pki, running_relay, tunnel_section

from bridgehead.adapters.base import SourceSettings
from bridgehead.adapters.probe import probe, probe_sql
from bridgehead.adapters.sqlite import SQLiteAdapter
from bridgehead.agent import audit
from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
from bridgehead.agent.config.load import parse_config
from bridgehead.common.config.document import ConfigError

ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKEN = "cloud-token-0123456789"
SECURITY = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 11)])
    db.close()


async def sqlite_agent(run_agent: Any, tmp_path: Path, admin: Any, **extra: Any) -> Any:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    return await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": {"source": "db", "table": "t", "key": ["id"]}},
        admin=admin,
        **extra,
    )


async def admin_get(url: str, token: str | None = ADMIN_TOKEN) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, r.headers.copy(), body


def admin_url(caller: Any) -> str:
    assert caller.agent is not None
    assert caller.agent.admin_url is not None
    return str(caller.agent.admin_url)


async def test_endpoints_answer_with_strict_headers(run_agent: Any, tmp_path: Path) -> None:
    """Every admin endpoint answers with no-store, nosniff, DENY and a CSP that allows
    nothing; /healthz says alive, /readyz lists passing checks, /status.json counts the
    requests served, with their latency."""
    api = await sqlite_agent(run_agent, tmp_path, {"address": "127.0.0.1:0", "token": ADMIN_TOKEN})
    for _ in range(3):
        status, _, _ = await api.get("/v1/t/1")
        assert status == 200
    base = admin_url(api)
    for path in ("/healthz", "/readyz", "/status.json", "/metrics", "/nothing"):
        status, headers, _ = await admin_get(base + path)
        assert status == (404 if path == "/nothing" else 200), path
        for name, value in SECURITY.items():
            assert headers[name] == value, (path, name)
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert (await admin_get(base + "/healthz"))[2] == {"status": "alive"}
    _, _, ready = await admin_get(base + "/readyz")
    assert ready["ready"] is True
    assert [c["name"] for c in ready["checks"]] == ["source:db", "audit", "idempotency"]
    _, _, doc = await admin_get(base + "/status.json")
    assert (doc["state"], doc["ready"], doc["tunnel"]) == ("ok", True, None)
    assert doc["sources"][0]["dbms"] == "sqlite"
    assert doc["sources"][0]["dbms_version"] == sqlite3.sqlite_version
    assert doc["sources"][0]["pool"]["size"] == 4
    (reads,) = [r for r in doc["requests"] if r["target"] == "t"]
    assert (reads["operation"], reads["requests"], reads["errors"]) == ("read", 3, 0)
    assert reads["p50_ms"] > 0
    assert doc["config"]["file"] is None
    assert doc["version"]


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789", ADMIN_TOKEN[:-1]])
async def test_a_token_guards_every_path(run_agent: Any, tmp_path: Path, token: str | None) -> None:
    """With a token set, a request without it or with another is refused (401 with a
    challenge and the same headers) on every path, /healthz included."""
    api = await sqlite_agent(run_agent, tmp_path, {"address": "127.0.0.1:0", "token": ADMIN_TOKEN})
    for path in ("/healthz", "/readyz", "/status.json", "/metrics"):
        status, headers, _ = await admin_get(admin_url(api) + path, token)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Cache-Control"] == "no-store"


async def test_off_loopback_the_token_digest_is_required(run_agent: Any, tmp_path: Path) -> None:
    """An admin listener on all interfaces, with the token's SHA-256 in the config, serves
    the right token and refuses any other."""
    digest = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    admin = {"address": "0.0.0.0:0", "token_sha256": digest}
    api = await sqlite_agent(run_agent, tmp_path, admin)
    url = admin_url(api).replace("0.0.0.0", "127.0.0.1")  # noqa: S104
    assert (await admin_get(url + "/healthz"))[0] == 200
    assert (await admin_get(url + "/healthz", None))[0] == 401


@pytest.mark.parametrize("admin", ["0.0.0.0:8471", "192.0.2.10:8471", {"address": "[::]:8471"}])
def test_off_loopback_without_a_token_is_a_config_error(tmp_path: Path, admin: Any) -> None:
    """An admin address off loopback without a token is refused when the config is loaded
    (so by `check` and at start), with a sentence saying what to add."""
    import yaml  # noqa: PLC0415 - only this test writes YAML by hand

    config = {"sources": {"db": {"sqlite": "t.db"}}, "admin": admin}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "agent.yaml")
    (problem,) = info.value.problems
    assert problem.path == "admin"
    assert "is not loopback, so it needs a token" in problem.message
    assert "token_sha256" in problem.message


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_parse_and_pass_promtool(run_agent: Any, tmp_path: Path) -> None:
    """/metrics is Prometheus text that prometheus-client parses with the request, row,
    source, pool, audit and store figures, and that `promtool check metrics` accepts."""
    api = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0")
    assert (await api.get("/v1/t/2"))[0] == 200
    assert (await api.get("/v1/t/999"))[0] == 404
    assert (await api.get("/v1/nope%0A"))[0] == 404
    status, headers, text = await admin_get(admin_url(api) + "/metrics", None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    samples = metric_samples(text)
    ok = (("operation", "read"), ("resource", "t"), ("status", "200"))
    assert samples["bridgehead_requests_total", ok] == 1
    missing = (("operation", "read"), ("resource", "t"), ("status", "404"))
    assert samples["bridgehead_requests_total", missing] == 1
    other = [k for k in samples if k[0] == "bridgehead_requests_total" and "(other)" in str(k)]
    assert other, "an unknown resource name is counted as (other), not as its own label"
    assert samples["bridgehead_rows_served_total", (("operation", "read"), ("resource", "t"))] == 1
    count = (("operation", "read"), ("resource", "t"))
    assert samples["bridgehead_request_duration_seconds_count", count] == 2
    assert samples["bridgehead_source_up", (("source", "db"),)] == 1
    assert samples["bridgehead_pool_size", (("source", "db"),)] == 4
    assert samples["bridgehead_audit_write_failures_total", ()] == 0
    assert ("bridgehead_idempotency_keys", ()) in samples
    assert ("bridgehead_fallback_values_total", (("column", "id"), ("resource", "t"))) in samples
    await asyncio.to_thread(promtool_check, text)


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == "", "promtool reports lint problems"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, so stopping it spares every other test."""
    with PostgresServer() as server:
        server.create_database("admin_probe")
        yield server


@pytest.mark.allow_blocking  # pg_ctl stop/start run here, between the agent's requests
async def test_readyz_follows_a_postgresql_source(
    own_postgres: PostgresServer, run_agent: Any, tmp_path: Path
) -> None:
    """/readyz is 503 naming source:pg while its PostgreSQL server is stopped, and 200
    again once it is back; /status.json shows it down, then up."""
    api = await run_agent(
        {"pg": {"odbc": own_postgres.odbc_connection_string("admin_probe"), "query_timeout": "5s"}},
        {},
        admin="127.0.0.1:0",
    )
    url = admin_url(api)
    assert (await admin_get(url + "/readyz", None))[0] == 200
    await asyncio.to_thread(own_postgres.pause)
    _status, _, body = await poll_until(url + "/readyz", 503)
    (failed,) = [c for c in body["checks"] if not c["ok"]]
    assert failed["name"] == "source:pg"
    assert failed["reason"]
    _, _, doc = await admin_get(url + "/status.json", None)
    assert doc["state"] == "down"
    assert doc["sources"][0]["up"] is False
    await asyncio.to_thread(own_postgres.resume)
    await poll_until(url + "/readyz", 200)
    _, _, doc = await admin_get(url + "/status.json", None)
    assert (doc["state"], doc["sources"][0]["dbms"]) == ("ok", "postgresql")
    assert doc["sources"][0]["dbms_version"].startswith("15.")  # psqlODBC's SQL_DBMS_VER
    assert doc["sources"][0]["last_error"] == failed["reason"]


async def poll_until(url: str, wanted: int, seconds: float = 20) -> tuple[int, Any, Any]:
    found: list[tuple[int, Any, Any]] = []

    async def check() -> bool:
        found.append(await admin_get(url, None))
        return found[-1][0] == wanted

    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling the agent's own HTTP answer, bounded
            await asyncio.sleep(0.2)
    return found[-1]


async def test_readyz_follows_the_tunnel(pki: Pki, run_agent: Any, tmp_path: Path) -> None:
    """With a tunnel configured /readyz is 200 while a connection is up, 503 naming the
    tunnel while the relay is gone, and 200 again once it is back on the same port; the
    status document shows each connection, its reconnects and the certificate."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    async with running_relay(pki, TOKEN) as relay:
        assert relay.agents_address is not None
        port = relay.agents_address[1]
        tunnel = tunnel_section(pki, port, cert, key, backoff={"base": "0.05s", "cap": "0.2s"})
        api = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0", tunnel=tunnel)
        url = admin_url(api)
        await poll_until(url + "/readyz", 200)
        _, _, doc = await admin_get(url + "/status.json", None)
        assert doc["certificate"]["agent_id"] == "plant-7"
        assert doc["certificate"]["days_to_expiry"] > 1
        assert doc["tunnel"]["relay"] == f"127.0.0.1:{port}"
    _, _, body = await poll_until(url + "/readyz", 503)
    (failed,) = [c for c in body["checks"] if not c["ok"]]
    assert failed["name"] == "tunnel"
    assert "no tunnel connection" in failed["reason"]
    async with running_relay(pki, TOKEN, agents_port=port):
        await poll_until(url + "/readyz", 200)
        _, _, doc = await admin_get(url + "/status.json", None)
        connections = doc["tunnel"]["connections"]
        assert [c["state"] for c in connections] == ["up", "up"]
        assert all(c["reconnects"] >= 1 for c in connections)
        _, _, text = await admin_get(url + "/metrics", None)
        samples = metric_samples(text)
        assert samples["bridgehead_tunnel_connections", (("state", "up"),)] == 2
        assert samples["bridgehead_tunnel_reconnects_total", ()] >= 2
        assert samples["bridgehead_certificate_expiry_seconds", ()] > 86400


async def test_two_agents_keep_their_own_metrics(run_agent: Any, tmp_path: Path) -> None:
    """Two agents in one process each count only their own requests."""
    first = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0")
    second_dir = tmp_path / "second"
    await asyncio.to_thread(second_dir.mkdir)
    second = await sqlite_agent(run_agent, second_dir, "127.0.0.1:0")
    await first.get("/v1/t/1")
    await first.get("/v1/t/2")
    await second.get("/v1/t/3")
    key = (
        "bridgehead_requests_total",
        (("operation", "read"), ("resource", "t"), ("status", "200")),
    )
    for caller, count in ((first, 2), (second, 1)):
        _, _, text = await admin_get(admin_url(caller) + "/metrics", None)
        assert metric_samples(text)[key] == count
    assert isinstance(first.agent, Agent)


def parsed_admin(tmp_path: Path, admin_yaml: str, environ: dict[str, str]) -> Any:
    text = f"sources:\n  db: {{sqlite: t.db}}\nadmin: {admin_yaml}\n"
    return parse_config(text, tmp_path / "agent.yaml", environ=environ).admin


def test_the_token_may_come_from_the_environment(tmp_path: Path) -> None:
    """`token: ${env:NAME}` is read from the environment and kept as its SHA-256 digest."""
    admin = parsed_admin(
        tmp_path, "{address: 0.0.0.0:8471, token: '${env:ADMIN}'}", {"ADMIN": ADMIN_TOKEN}
    )
    assert admin.digest == hashlib.sha256(ADMIN_TOKEN.encode()).digest()
    assert str(admin) == "0.0.0.0:8471"
    assert ADMIN_TOKEN not in repr(admin)


@pytest.mark.parametrize(
    ("admin_yaml", "message"),
    [
        (f"{{address: 127.0.0.1:1, token: {ADMIN_TOKEN}, token_sha256: '{'a' * 64}'}}", "not both"),
        ("{address: 127.0.0.1:1, token: short}", "too short"),
    ],
)
def test_token_mistakes_are_config_errors(tmp_path: Path, admin_yaml: str, message: str) -> None:
    """A token given twice (plain and as a digest) or too short to resist guessing is refused."""
    with pytest.raises(ConfigError) as info:
        parsed_admin(tmp_path, admin_yaml, {})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [("postgresql", "SELECT 1"), ("oracle", "SELECT 1 FROM DUAL"),
     ("db2", "SELECT 1 FROM SYSIBM.SYSDUMMY1"), ("access", "SELECT 1"), ("mssql", "SELECT 1")],
)  # fmt: skip
def test_each_dialect_has_a_probe_statement(dialect: str, sql: str) -> None:
    """The probe is SELECT 1, or the dialect's own where SELECT needs a FROM."""
    assert probe_sql(dialect) == sql


async def test_probe_opens_a_source_and_reports_a_missing_one(tmp_path: Path) -> None:
    """A source never opened is opened by its probe (learning its dialect); one that
    cannot be reached is a failed result with the reason, not an exception."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    good = SQLiteAdapter(SourceSettings("db", "sqlite", str(tmp_path / "t.db")))
    gone = SQLiteAdapter(SourceSettings("gone", "sqlite", str(tmp_path / "missing.db")))
    try:
        result = await probe(good)
        assert result.ok
        assert good.dialect.name == "sqlite"
        missing = await probe(gone)
        assert not missing.ok
        assert "no SQLite database" in (missing.error or "")
    finally:
        await good.close()
        await gone.close()


async def test_readyz_and_status_report_a_failed_audit_log(
    run_agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the audit log fails to write, /readyz is 503 naming audit with the error, the
    state is down, the failure is counted in /metrics, and the refused request appears in
    the last errors with its request id."""
    api = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0")

    def no_space(self: Any, records: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit._AuditFile, "append", no_space)
    assert (await api.get("/v1/t/1"))[0] == 200
    assert api.agent is not None
    await wait_for(lambda: api.agent._audit.failure is not None)
    status, _, _ = await api.get("/v1/t/1", **{"X-Request-Id": "after-the-failure"})
    assert status == 503
    url = admin_url(api)
    status, _, body = await poll_until(url + "/readyz", 503)
    (failed,) = [c for c in body["checks"] if not c["ok"]]
    assert failed["name"] == "audit"
    assert "No space left on device" in failed["reason"]
    _, _, doc = await admin_get(url + "/status.json", None)
    assert doc["state"] == "down"
    assert "audit log stopped writing" in doc["reason"]
    assert doc["errors"][0]["request_id"] == "after-the-failure"
    assert doc["errors"][0]["status"] == 503
    _, _, text = await admin_get(url + "/metrics", None)
    assert metric_samples(text)["bridgehead_audit_write_failures_total", ()] == 1
