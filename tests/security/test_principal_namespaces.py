# Principals are namespaced by how they authenticated: an API key named
# `tester` and a JWT whose `sub` is `tester` are two callers, for the idempotency store, the
# rate limiter and the audit log alike.
from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import Caller
from jwtkit import ISSUER, new_key, token, write_jwks


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()


async def start(tmp_path: Path, run_agent: Any, **extra: Any) -> tuple[Caller, str]:
    """An agent with the API key `tester` and a JWT whose subject is `tester` too."""
    key = new_key()
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    auth_jwt = await asyncio.to_thread(write_jwks, tmp_path / "jwks.json", key)
    api: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}},
        auth_jwt=auth_jwt,
        **extra,
    )
    return api, token(key, "tester", "t:read t:write")


async def test_a_jwt_subject_does_not_replay_an_api_keys_idempotent_answer(
    tmp_path: Path, run_agent: Any
) -> None:
    """The same Idempotency-Key and body from the JWT `sub: tester` inserts its own row
    rather than getting the answer the API key `tester` got; both are audited apart."""
    api, jwt_tester = await start(tmp_path, run_agent)
    headers = {"Idempotency-Key": "order-1"}
    status, _, first = await api.send("POST", "/v1/t", {"name": "a"}, **headers)
    assert status == 201, first
    status, replies, second = await api.send("POST", "/v1/t", {"name": "a"}, jwt_tester, **headers)
    assert status == 201, second
    assert "Idempotent-Replayed" not in replies
    assert second["id"] != first["id"]
    status, replies, again = await api.send("POST", "/v1/t", {"name": "a"}, jwt_tester, **headers)
    assert (status, again, replies.get("Idempotent-Replayed")) == (201, second, "true")
    assert api.agent is not None
    await api.agent.stop()
    log = tmp_path / "agent0" / "state" / "audit.log"
    lines = (await asyncio.to_thread(log.read_text)).splitlines()
    principals = [json.loads(line)["principal"] for line in lines]
    assert principals == ["key:tester", f"jwt:{ISSUER}#tester", f"jwt:{ISSUER}#tester"]


async def test_a_jwt_subject_has_its_own_rate_bucket(tmp_path: Path, run_agent: Any) -> None:
    """With a burst of one, the API key `tester` spending its token leaves the JWT
    `sub: tester` its own: 200, while the key's next request is 429."""
    limits = {"requests_per_second": 0.01, "burst": 1}
    api, jwt_tester = await start(tmp_path, run_agent, limits=limits)
    assert (await api.get("/v1/t"))[0] == 200
    assert (await api.get("/v1/t", key=jwt_tester))[0] == 200
    assert (await api.get("/v1/t"))[0] == 429
