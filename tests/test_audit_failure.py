# While the audit log cannot write, the agent serves no data request: every access must be
# audited, so requests are refused with a 503 problem before they reach a database — with an
# injected write failure, and with a real full disk (a small tmpfs, as root).
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller

from bridgehead.agent import audit


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()


def count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM t").fetchone()
    db.close()
    return int(rows)


async def start(run_agent: Any, db: Path, **extra: Any) -> Caller:
    await asyncio.to_thread(make_db, db)
    resources = {"t": {"source": "db", "table": "t", "operations": ["read", "insert"]}}
    caller: Caller = await run_agent({"db": {"sqlite": str(db)}}, resources, **extra)
    return caller


async def until_failed(api: Caller) -> None:
    assert api.agent is not None
    assert api.agent._audit is not None
    async with asyncio.timeout(10):
        while api.agent._audit.failure is None:  # noqa: ASYNC110 - the writer task's state
            await asyncio.sleep(0.02)


async def refused(api: Caller, db: Path) -> None:
    """A write and a read are both a 503 problem, and the write reached no database."""
    before = await asyncio.to_thread(count, db)
    for method, path, body in (("POST", "/v1/t", {"id": 2, "name": "b"}), ("GET", "/v1/t", None)):
        status, headers, problem = await api.send(method, path, body)
        assert status == 503, problem
        assert headers["Content-Type"] == "application/problem+json"
        assert headers["X-Request-Id"]
        assert headers["Retry-After"] == "30"
        assert "audit log cannot write" in problem["detail"]
    assert await asyncio.to_thread(count, db) == before


async def test_a_failing_audit_log_stops_data_requests(
    tmp_path: Path, run_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the audit log fails to write, data requests are refused before they touch the
    database, always as problem+json with X-Request-Id."""
    api = await start(run_agent, tmp_path / "t.db")

    def no_space(self: Any, records: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit._AuditFile, "append", no_space)
    status, _, _ = await api.send("POST", "/v1/t", {"id": 1, "name": "a"})
    assert status == 201  # committed before the log failed: the answer stands
    await until_failed(api)
    await refused(api, tmp_path / "t.db")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs the test mounts (root only), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()


@pytest.mark.allow_blocking  # the full-disk write happens on the audit writer's thread
async def test_a_full_disk_stops_data_requests(
    tmp_path: Path, run_agent: Any, small_disk: Path
) -> None:
    """With the state folder on a full filesystem, the write that hit it is answered, and
    every request after it is refused, writing nothing."""
    api = await start(run_agent, tmp_path / "t.db", state_dir=str(small_disk / "state"))
    await asyncio.to_thread(fill, small_disk)
    for n in range(1, 50):  # until the log's next batch meets the full disk
        status, _, _ = await api.send("POST", "/v1/t", {"id": n, "name": "x" * 1000})
        if status != 201:
            break
        assert api.agent is not None
        assert api.agent._audit is not None
        await asyncio.sleep(0.05)
        if api.agent._audit.failure is not None:
            break
    await until_failed(api)
    await refused(api, tmp_path / "t.db")
