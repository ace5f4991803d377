# Every data access through the API leaves one audit record, and `bridgehead audit verify`
# proves the file untouched or names the first line that was changed.
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 6)])
    db.close()


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_each_access_is_audited_and_the_chain_verifies(
    tmp_path: Path, run_agent: Any
) -> None:
    """List, get, insert, a denied call and a 404 each write one record with who, what, rows."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    api = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}},
    )
    await api.get("/v1/t", {"limit": "3"}, **{"X-Request-Id": "req-list"})
    await api.get("/v1/t/2")
    await api.send("POST", "/v1/t", [{"id": 10, "name": "a"}, {"id": 11, "name": "b"}])
    await api.get("/v1/t", key="nobody-key")
    await api.get("/v1/t/99")
    assert api.agent is not None
    await api.agent.stop()
    log = tmp_path / "agent0" / "state" / "audit.log"
    records = await asyncio.to_thread(read_lines, log)
    summary = [
        (r["principal"], r["target"], r["operation"], r["rows"], r["status"]) for r in records
    ]
    assert summary == [
        ("key:tester", "t", "list", 3, 200),
        ("key:tester", "t", "read", 1, 200),
        ("key:tester", "t", "insert", 2, 201),
        ("key:nobody", "t", "list", 0, 403),
        ("key:tester", "t", "read", 0, 404),
    ]
    assert records[0]["request_id"] == "req-list"
    assert {r["via"] for r in records} == {"local"}
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bridgehead.agent.cli", "audit", "verify", str(log)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "5 records, chain intact" in verified.stdout
    text = await asyncio.to_thread(log.read_text)
    await asyncio.to_thread(log.write_text, text.replace('"rows":3', '"rows":1', 1))
    tampered = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bridgehead.agent.cli", "audit", "verify", str(log)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tampered.returncode == 1
    assert "line 2:" in tampered.stderr
