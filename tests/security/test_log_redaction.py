# Nothing secret reaches the agent's log: a battery of malformed requests
# carrying the test config's API key and a JWT, failures whose messages quote the caller's
# credentials, and a duplicate-key write whose driver message quotes the row's value; then
# every line logged (text and JSON) is searched for each token, key, password and value.
from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from backends import odbc_run
from conftest import Caller
from dbservers import PostgresServer
from jwtkit import new_key, token, write_jwks
from rawhttp import exchange

from bridgehead.agent.api.auth import Authenticator
from bridgehead.common import logs, redact


def malformed(credential: str) -> list[bytes]:
    """Requests aiohttp's parser refuses, each with the credential in its header block."""
    auth = f"Authorization: Bearer {credential}"
    head = f"GET /v1/t HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    return [
        f"{head}X-Folded: a\r\n  folded\r\n\r\n".encode(),  # obs-fold
        f"GET /v1/t?x={credential} HTTP/1.1 extra\r\n{auth}\r\n\r\n".encode(),  # request line
        f"GE\x01T /v1/t HTTP/1.1\r\n{auth}\r\n\r\n".encode(),  # a control byte in the method
        f"POST /v1/t HTTP/1.1\r\n{auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"zz\r\n{auth}\r\n".encode(),  # invalid chunked encoding
        f"{head}X-Big: {credential} {'a' * 20_000}\r\n\r\n".encode(),  # oversized header
        f"POST /v1/t HTTP/1.1\r\n{auth}\r\nContent-Length: -5\r\n\r\n{auth}".encode(),
        f"POST /v1/t HTTP/1.1\r\n{auth}\r\nContent-Length: 1x\r\n\r\n".encode(),
        f"{head}X-Bad\x00Name: {credential}\r\n\r\n".encode(),  # NUL in a header name
    ]


async def start(tmp_path: Any, run_agent: Any, pg: PostgresServer, db: str) -> tuple[Caller, str]:
    """An agent with a PostgreSQL table (key: text) and a JWT issuer; the API and a JWT."""
    await asyncio.to_thread(pg.create_database, db)
    conn = pg.odbc_connection_string(db)
    await asyncio.to_thread(odbc_run(conn, []), ["CREATE TABLE t (id TEXT PRIMARY KEY, n INT)"])
    key = new_key()
    auth_jwt = await asyncio.to_thread(write_jwks, tmp_path / "jwks.json", key)
    resource = {"source": "pg", "table": "t", "key": ["id"], "operations": ["read", "insert"]}
    api: Caller = await run_agent({"pg": {"odbc": conn}}, {"t": resource}, auth_jwt=auth_jwt)
    return api, token(key, "svc-crm", "t:read t:write")


def readable(log: str) -> str:
    """The log with each JSON line's escapes undone, so both formats are searched alike."""
    lines = []
    for line in log.splitlines():
        try:
            lines.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            lines.append(line)
    return "\n".join(lines)


# Rendering a traceback reads source lines (linecache) on the loop: allowed here, where the
# rendering itself is what is tested.
@pytest.mark.allow_blocking
@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
async def test_no_credential_or_row_value_is_logged(
    tmp_path: Any,
    run_agent: Any,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    restored_logging: None,
    json_lines: bool,
) -> None:
    """Malformed requests are logged without their bytes, failures without the credentials
    their messages quote, driver messages without row values; what happened is still said."""
    api, jwt_token = await start(tmp_path, run_agent, postgres_server, f"logred{int(json_lines)}")
    logs.configure(json=json_lines)
    for credential in (api.key, jwt_token):
        for raw in malformed(credential):
            response = await exchange(api.base, raw)
            assert response is None or 400 <= response.status < 500, (raw[:40], response)
    duplicate = f"dupe-{secrets.token_hex(6)}"
    assert (await api.send("POST", "/v1/t", {"id": duplicate, "n": 1}))[0] == 201
    status, _, problem = await api.send("POST", "/v1/t", {"id": duplicate, "n": 2}, jwt_token)
    assert status == 409, problem

    def broken(self: Authenticator, headers: Any) -> Any:
        raise RuntimeError(f"authenticator failed on {headers['authorization']}")

    monkeypatch.setattr(Authenticator, "authenticate", broken)
    for credential in (api.key, jwt_token):
        assert (await api.get("/v1/t", key=credential))[0] == 500
    log = readable(capfd.readouterr().err)
    assert "malformed request refused with 400 (BadHttpMessage)" in log
    assert "authenticator failed on Bearer [redacted]" in log  # the failure is still told
    assert "Key (id)=(…) already exists" in log  # the constraint's column stays
    secret_parts = [api.key, jwt_token, *jwt_token.split("."), postgres_server.password]
    for secret in [*secret_parts, duplicate]:
        assert secret not in log


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (
            "DETAIL:  Key (id, code)=(7, s3cr3t) already exists.",
            "Key (id, code)=(…) already exists",
        ),
        ("DETAIL:  Failing row contains (7, null, s3cr3t).", "Failing row contains (…)"),
        ('invalid input syntax for type integer: "s3cr3t"', 'for type integer: "…"'),
        ("Duplicate entry 's3cr3t-7' for key 'PRIMARY'", "Duplicate entry '…' for key 'PRIMARY'"),
        ("Incorrect decimal value: 's3cr3t' for column `t`.`n` at row 1", "value: '…' for column"),
        ("connect failed: DRIVER={x};UID=gw;PWD={s3cr3t};", "PWD=[redacted]"),
    ],
)
def test_driver_messages_keep_names_and_lose_values(message: str, kept: str) -> None:
    """PostgreSQL's and MariaDB's messages keep constraint and column names, not the values."""
    scrubbed = redact.scrub(message)
    assert kept in scrubbed
    assert "s3cr3t" not in scrubbed
