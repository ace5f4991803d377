# No secret reaches the log, whatever optional packages are installed: structlog renders an
# exception's local variables through `rich` when it can import it (schemathesis brings it),
# and the frames of a failing request hold its headers and the agent's configuration.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller
from dbservers import PostgresServer

from bridgehead.agent.api.auth import Authenticator
from bridgehead.common import logs

FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdmMtY3JtIn0.c2lnbmF0dXJlLXNlY3JldA"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()


# Rendering a traceback reads source lines (linecache) on the loop: allowed here, where the
# rendering itself is what is tested.
@pytest.mark.allow_blocking
@pytest.mark.parametrize("json_lines", [False, True])
async def test_a_failing_request_logs_no_secret(
    tmp_path: Path,
    run_agent: Any,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    restored_logging: None,
    json_lines: bool,
) -> None:
    """A 500 is logged with its traceback but without locals: no API key, JWT or password."""
    import rich  # noqa: F401, PLC0415 - the package that made structlog print locals

    await asyncio.to_thread(make_db, tmp_path / "t.db")
    await asyncio.to_thread(postgres_server.create_database, f"logsecrets{int(json_lines)}")
    sources = {
        "db": {"sqlite": str(tmp_path / "t.db")},
        "pg": {"odbc": postgres_server.odbc_connection_string(f"logsecrets{int(json_lines)}")},
    }
    api: Caller = await run_agent(sources, {"t": {"source": "db", "table": "t"}})
    logs.configure(json=json_lines)

    def broken(self: Authenticator, headers: Any) -> Any:
        raise RuntimeError("authenticator failed")

    monkeypatch.setattr(Authenticator, "authenticate", broken)
    for credential in (api.key, FAKE_JWT):
        status, _, body = await api.get("/v1/t", key=credential)
        assert status == 500, body
    log = capfd.readouterr().err
    assert "authenticator failed" in log  # the failure itself is logged, with its traceback
    assert "Traceback" in log
    for secret in (api.key, FAKE_JWT, postgres_server.password):
        assert secret not in log
