"""Import jobs against real databases and an HTTP file server started here: upsert counts
inserted, updated and unchanged rows, and a rerun of the same input writes nothing (a
trigger counts the writes); mirror deletes only within its scope; bad rows are rejected with
their line numbers; past max_rejects an atomic run applies nothing; a connection cut
mid-file is resumed with Range; an agent killed mid-import resumes and the table ends equal
to the input."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentproc import AgentProcess, free_port, stop_process
from aiohttp import web
from backends import Backend
from conftest import Caller, make_backend
from jobkit import on_loopback, run_job

DATABASES = itertools.count()
TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER count_updates AFTER UPDATE ON places BEGIN "
        "UPDATE writes SET n = n + 1; END",
        "CREATE TRIGGER count_inserts AFTER INSERT ON places BEGIN "
        "UPDATE writes SET n = n + 1; END",
    ],
    "postgresql": [
        "CREATE FUNCTION count_write() RETURNS trigger AS $$ BEGIN "
        "UPDATE writes SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER count_writes AFTER INSERT OR UPDATE ON places "
        "FOR EACH ROW EXECUTE FUNCTION count_write()",
    ],
    "mariadb": [
        "CREATE TRIGGER count_updates AFTER UPDATE ON places FOR EACH ROW "
        "UPDATE writes SET n = n + 1",
        "CREATE TRIGGER count_inserts AFTER INSERT ON places FOR EACH ROW "
        "UPDATE writes SET n = n + 1",
    ],
}


class Files:
    """Serves `name` from a folder (aiohttp's FileResponse: ETag, Range, If-Range); a name
    listed in `cut` is sent only half the first time, then the connection is dropped."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.url = folder, ""
        self.cut: set[str] = set()
        self.ranges: list[str | None] = []

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.ranges.append(request.headers.get("Range"))
        path = self.folder / name
        if name in self.cut:
            self.cut.discard(name)
            data = await asyncio.to_thread(path.read_bytes)
            stat = await asyncio.to_thread(path.stat)
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            response = web.StreamResponse(headers={"Content-Length": str(len(data)), "ETag": etag})
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.FileResponse(path)


@pytest.fixture
async def files(tmp_path: Path) -> AsyncIterator[Files]:
    folder = tmp_path / "served"
    await asyncio.to_thread(folder.mkdir)
    found = Files(folder)
    app = web.Application()
    app.router.add_get("/{name}", found.serve)
    async with on_loopback(app) as found.url:
        yield found


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    b = make_backend(request.param, request, tmp_path, f"import_{next(DATABASES)}")
    b.run([
        "CREATE TABLE places (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
        "country CHAR(2) NOT NULL, population INTEGER)",
        "CREATE TABLE writes (n INTEGER NOT NULL)", "INSERT INTO writes VALUES (0)",
        *TRIGGERS[b.name],
    ])  # fmt: skip
    return b


def csv_of(rows: list[tuple[Any, ...]]) -> str:
    lines = ["id,name,country,population"]
    lines += [",".join("" if v is None else str(v) for v in row) for row in rows]
    return "\r\n".join(lines) + "\r\n"


def import_job(url: str, **extra: Any) -> dict[str, Any]:
    fmt = extra.pop("format", "csv")
    return {"import": {"from": {"url": url, "format": fmt}, "into": "places", **extra}}


async def agent_for(run_agent: Any, backend: Backend, jobs: dict[str, Any]) -> Caller:
    resources = {"places": {"source": "db", "table": "places", "key": ["id"],
                            "operations": ["read", "insert", "update", "delete"]}}  # fmt: skip
    return await run_agent({"db": backend.source}, resources, jobs=jobs)  # type: ignore[no-any-return]


async def table(agent: Caller) -> list[tuple[Any, ...]]:
    status, _, body = await agent.get("/v1/places", {"limit": "1000", "order": "id"})
    assert status == 200, body
    return [(r["id"], r["name"], r["country"], r["population"]) for r in body["items"]]


def writes(backend: Backend) -> int:
    if backend.name == "sqlite":
        with sqlite3.connect(backend.source["sqlite"]) as db:
            found = int(db.execute("SELECT n FROM writes").fetchone()[0])
        db.close()
        return found
    import pyodbc  # noqa: PLC0415 - the ODBC backends only

    connection = pyodbc.connect(backend.source["odbc"], autocommit=True, timeout=10)
    try:
        return int(connection.execute("SELECT n FROM writes").fetchone()[0])
    finally:
        connection.close()


START = [(1, "London", "GB", 8_800_000), (2, "Leeds", "GB", 800_000), (3, "Paris", "FR", None)]


async def test_upsert_counts_and_a_rerun_writes_nothing(
    backend: Backend, files: Files, run_agent: Any
) -> None:
    """The first run inserts three rows; the second input changes one, adds one and repeats
    one: 1 updated (in the changed column only), 1 inserted, 2 unchanged; running that input
    again changes nothing and no trigger fires."""
    path = files.folder / "places.csv"
    await asyncio.to_thread(path.write_text, csv_of(START))
    job = import_job(f"{files.url}/places.csv", mode="upsert", chunk_rows=2)
    agent = await agent_for(run_agent, backend, {"places_in": job})
    first = await run_job(agent, "places_in")
    assert (first["status"], first["inserted"], first["read"]) == ("succeeded", 3, 3), first
    changed = [START[0], (2, "Leeds", "GB", 812_000), START[2], (4, "Lyon", "FR", 520_000)]
    await asyncio.to_thread(path.write_text, csv_of(changed))
    second = await run_job(agent, "places_in")
    counts = [second[k] for k in ("read", "inserted", "updated", "unchanged", "rejected")]
    assert counts == [4, 1, 1, 2, 0], second
    assert await table(agent) == changed
    before = await asyncio.to_thread(writes, backend)
    again = await run_job(agent, "places_in")
    assert (again["unchanged"], again["inserted"], again["updated"]) == (4, 0, 0)
    assert await asyncio.to_thread(writes, backend) == before
    assert again["checksum"] == second["checksum"]


async def test_mirror_deletes_only_within_its_scope(
    backend: Backend, files: Files, run_agent: Any
) -> None:
    """Mirroring the GB rows: London stays, Leeds (absent from the input) goes, Paris is out
    of scope and stays although the input does not hold it."""
    await asyncio.to_thread((files.folder / "all.csv").write_text, csv_of(START))
    await asyncio.to_thread((files.folder / "gb.csv").write_text, csv_of(START[:1]))
    jobs = {
        "load": import_job(f"{files.url}/all.csv"),
        "gb": import_job(f"{files.url}/gb.csv", mode="mirror", scope="country=eq.GB"),
    }
    agent = await agent_for(run_agent, backend, jobs)
    assert (await run_job(agent, "load"))["inserted"] == 3
    mirrored = await run_job(agent, "gb")
    assert (mirrored["status"], mirrored["deleted"], mirrored["unchanged"]) == ("succeeded", 1, 1)
    assert await table(agent) == [START[0], START[2]]


async def test_bad_rows_are_rejected_with_their_line_numbers(
    backend: Backend, files: Files, run_agent: Any
) -> None:
    """A population that is not a number (line 3), a row without its key (line 4) and an
    NDJSON line that is not JSON are rejected by line with the reason; the good rows load."""
    text = csv_of([START[0], (2, "Leeds", "GB", "many"), ("", "Nowhere", "GB", 1), START[2]])
    await asyncio.to_thread((files.folder / "bad.csv").write_text, text)
    lines = b'{"id": 1, "name": "London", "country": "GB"}\n{"id": 2, "name": \n'
    await asyncio.to_thread((files.folder / "bad.ndjson").write_bytes, lines)
    jobs = {
        "csv": import_job(f"{files.url}/bad.csv", max_rejects=5),
        "ndjson": import_job(f"{files.url}/bad.ndjson", format="ndjson", max_rejects=5),
    }
    agent = await agent_for(run_agent, backend, jobs)
    report = await run_job(agent, "csv")
    assert (report["status"], report["inserted"], report["rejected"]) == ("succeeded", 2, 2)
    assert [r["line"] for r in report["rejects"]] == [3, 4]
    assert "column 'population'" in report["rejects"][0]["reason"]
    assert "no value for the key column 'id'" in report["rejects"][1]["reason"]
    report = await run_job(agent, "ndjson")
    assert [(r["line"], r["reason"][:8]) for r in report["rejects"]] == [(2, "not JSON")]


async def test_past_max_rejects_an_atomic_run_applies_nothing(
    backend: Backend, files: Files, run_agent: Any
) -> None:
    """Two bad rows with max_rejects 1 and atomic: the run fails saying so, and not one of
    the good rows, applied in earlier chunks of the same transaction, is in the table."""
    rows = [START[0], (2, "Leeds", "GB", "x"), START[2], (4, "Lyon", "FR", "y")]
    await asyncio.to_thread((files.folder / "p.csv").write_text, csv_of(rows))
    job = import_job(f"{files.url}/p.csv", atomic=True, max_rejects=1, chunk_rows=1)
    agent = await agent_for(run_agent, backend, {"p": job})
    report = await run_job(agent, "p")
    assert report["status"] == "failed"
    assert "2 rows rejected, more than max_rejects (1)" in report["error"]
    assert "nothing was applied" in report["error"]
    assert await table(agent) == []


async def test_a_connection_cut_mid_file_is_resumed_with_range(
    tmp_path: Path, files: Files, run_agent: Any, request: pytest.FixtureRequest
) -> None:
    """The server drops the connection half way through a 5,000-row file: the feed asks
    again with Range from its last whole record, and the table ends equal to the file."""
    backend = make_backend("sqlite", request, tmp_path, "cut")
    await asyncio.to_thread(backend.run, [
        "CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "country TEXT NOT NULL, population INTEGER)",
    ])  # fmt: skip
    rows = [(i, f"town {i}", "GB", i * 10) for i in range(1, 5001)]
    await asyncio.to_thread((files.folder / "big.csv").write_text, csv_of(rows))
    files.cut.add("big.csv")
    agent = await agent_for(run_agent, backend, {"big": import_job(f"{files.url}/big.csv")})
    report = await run_job(agent, "big")
    assert (report["status"], report["inserted"], report["read"]) == ("succeeded", 5000, 5000)
    assert files.ranges[0] is None
    assert str(files.ranges[1]).startswith("bytes=")
    _, _, body = await agent.get("/v1/places", {"limit": "1", "order": "id.desc"})
    assert body["items"][0]["id"] == 5000


@pytest.mark.parametrize("point", ["import-chunk-applied"])
def test_an_agent_killed_mid_import_resumes_and_the_table_equals_the_input(
    tmp_path: Path, point: str
) -> None:
    """Database to database: 5,000 rows from one SQLite source into another, killed after
    its first chunk is committed and checkpointed; the restarted agent resumes run 1 and the
    target ends holding exactly the source's rows."""
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    rows = [(i, f"town {i}", "GB", i) for i in range(1, 5001)]
    for path in (source, target):
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT, country TEXT, "
                       "population INTEGER)")  # fmt: skip
            if path == source:
                db.executemany("INSERT INTO places VALUES (?, ?, ?, ?)", rows)
        db.close()
    port, key = free_port(), "import-kill-key"
    digest = hashlib.sha256(key.encode()).hexdigest()
    config = {
        "sources": {"crm": {"sqlite": str(source)}, "erp": {"sqlite": str(target)}},
        "resources": {
            "crm_places": {"source": "crm", "table": "places", "key": ["id"]},
            "places": {"source": "erp", "table": "places", "key": ["id"],
                       "operations": ["read", "insert", "update"]},
        },
        "jobs": {"sync": {"import": {"from": {"resource": "crm_places"}, "into": "places",
                                     "chunk_rows": 1000}}},
        "auth": {"api_keys": [{"name": "ops", "key_sha256": digest, "scopes": ["jobs:sync"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None,
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    doomed = AgentProcess(path, port, env={"BRIDGEHEAD_FAILPOINT": point})
    status, _, started = doomed.request("POST", "/v1/jobs/sync/runs", key)
    assert (status, started["id"]) == (202, 1)
    assert doomed.process.wait(30) == -signal.SIGKILL
    assert doomed.process.stderr is not None
    doomed.process.stderr.close()
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT count(*) FROM places").fetchone()[0] == 1000
    db.close()

    again = AgentProcess(path, port)
    try:
        deadline = time.monotonic() + 60
        while (report := again.request("GET", "/v1/jobs/sync/runs/1", key)[2])["status"] != (
            "succeeded"
        ):  # fmt: skip
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
    finally:
        stop_process(again.process)
        assert again.process.stderr is not None
        again.process.stderr.close()
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT * FROM places ORDER BY id").fetchall() == rows
    db.close()
    assert report["read"] == 5000
    assert report["inserted"] == 5000


def test_a_million_row_csv_imports_in_bounded_memory(tmp_path: Path) -> None:
    """`bridgehead jobs run` imports a 1,000,000-row CSV served over HTTP into SQLite: every
    row arrives, and the process's peak memory is that of a 1,000-row import give or take
    16 MiB: the input streams through in chunks, nothing grows with it."""
    served = tmp_path / "served"
    served.mkdir()
    for name, count in (("small.csv", 1000), ("big.csv", 1_000_000)):
        with (served / name).open("w") as out:
            out.write("id,name,country,population\r\n")
            out.writelines(f"{i},town {i},GB,{i}\r\n" for i in range(1, count + 1))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def peak_kib(name: str) -> int:
        """Import `name` into a fresh table; the peak RSS of the process that did it."""
        target = tmp_path / f"{name}.db"
        with sqlite3.connect(target) as db:
            db.execute("CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT, country TEXT, "
                       "population INTEGER)")  # fmt: skip
        db.close()
        config = {
            "sources": {"db": {"sqlite": str(target)}},
            "resources": {"places": {"source": "db", "table": "places", "key": ["id"],
                                     "operations": ["read", "insert", "update"]}},
            "jobs": {"load": {"import": {"from": {"url": f"{base}/{name}"}, "into": "places"}}},
            "listen": None, "admin": None, "state_dir": str(tmp_path / f"{name}-state"),
        }  # fmt: skip
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        process = subprocess.Popen(
            [sys.executable, "-m", "bridgehead.agent.cli", "jobs", "run", "load", "-c", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out, err = process.communicate()
        assert process.returncode == 0, err.decode()
        assert b"succeeded" in out
        return usage.ru_maxrss

    try:
        small, big = peak_kib("small.csv"), peak_kib("big.csv")
    finally:
        server.shutdown()
        server.server_close()
    with sqlite3.connect(tmp_path / "big.csv.db") as db:
        count, total = db.execute("SELECT count(*), sum(id) FROM places").fetchone()
    db.close()
    assert (count, total) == (1_000_000, 1_000_000 * 1_000_001 // 2)
    assert big - small < 16 * 1024, f"peak RSS {small} KiB for 1,000 rows, {big} KiB for 1M"


async def test_a_named_query_of_another_source_feeds_an_import(
    tmp_path: Path, run_agent: Any
) -> None:
    """Database to database through a named query: the CRM's GB customers, renamed to the
    target's columns by the query's SQL, mirrored into the ERP's places table."""
    crm, erp = tmp_path / "crm.db", tmp_path / "erp.db"

    def make() -> None:
        with sqlite3.connect(crm) as db:
            db.execute("CREATE TABLE towns (code INTEGER PRIMARY KEY, title TEXT, cc TEXT)")
            towns = [(1, "London", "GB"), (2, "Leeds", "GB"), (3, "Paris", "FR")]
            db.executemany("INSERT INTO towns VALUES (?, ?, ?)", towns)
        db.close()
        with sqlite3.connect(erp) as db:
            db.execute("CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                       "country TEXT NOT NULL, population INTEGER)")  # fmt: skip
            db.execute("INSERT INTO places VALUES (9, 'Old', 'GB', NULL)")
        db.close()

    await asyncio.to_thread(make)
    queries = {"gb_towns": {"source": "crm", "sql": "SELECT code AS id, title AS name, "
                            "cc AS country FROM towns WHERE cc = 'GB' ORDER BY code"}}  # fmt: skip
    resources = {"places": {"source": "db", "table": "places", "key": ["id"],
                            "operations": ["read", "insert", "update", "delete"]}}  # fmt: skip
    jobs = {"sync": {"import": {"from": {"query": "gb_towns"}, "into": "places",
                                "mode": "mirror", "scope": "country=eq.GB"}}}  # fmt: skip
    agent = await run_agent({"db": {"sqlite": str(erp)}, "crm": {"sqlite": str(crm)}},
                            resources, jobs=jobs, queries=queries)  # fmt: skip
    report = await run_job(agent, "sync")
    assert [report[k] for k in ("status", "read", "inserted", "deleted")] == [
        "succeeded", 2, 2, 1]  # fmt: skip
    assert await table(agent) == [(1, "London", "GB", None), (2, "Leeds", "GB", None)]
