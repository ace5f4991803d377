"""Export jobs against real databases and a real HTTP receiver started here: each data-loss
bug batch tools are known for, as its own test. Rows sharing one `updated_at` across chunk
boundaries go out exactly once; a bulk update's single timestamp is exported once and then
not again; a run that fails mid-way keeps its watermark at the last acknowledged chunk and
the next run sends the rest, once; a row changed during a run is sent by this run or the
next; a row committed late with an older stamp, inside `lag`, is not passed over. Also: the
folder sink, dry runs, the reports and the 409 for a second run."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from agentproc import AgentProcess, free_port, stop_process
from aiohttp import web
from backends import Backend
from conftest import Caller, make_backend
from jobkit import on_loopback, run_job
from polling import wait_for

from bridgehead.agent.jobs.store import JobStore

DATABASES = itertools.count()
STAMP = datetime(2026, 3, 1, 12, 0, 0)
SQLITE_ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, updated_at TIMESTAMP)"


@dataclass
class Receiver:
    """An ingest endpoint: records each chunk by its Idempotency-Key (a chunk sent again
    under the same key is kept once, as a careful receiver does)."""

    url: str = ""
    chunks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail: Callable[[str], bool] = lambda key: False
    on_chunk: Callable[[str], Any] | None = None

    async def ingest(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        if self.fail(key):
            return web.Response(status=503, headers={"Retry-After": "0"})
        lines = (await request.read()).splitlines()
        self.chunks[key] = [orjson.loads(line) for line in lines]
        if self.on_chunk is not None:
            await self.on_chunk(key)
        return web.Response(status=204)

    def ids(self) -> list[int]:
        return sorted(row["id"] for rows in self.chunks.values() for row in rows)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/ingest", found.ingest)
    async with on_loopback(app) as base:
        found.url = f"{base}/ingest"
        yield found


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    b = make_backend(request.param, request, tmp_path, f"export_{next(DATABASES)}")
    b.run([
        f"CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(40), "
        f"updated_at {b.types['ts']} NOT NULL)",
        "CREATE INDEX items_walk ON items (updated_at, id)",
    ])  # fmt: skip
    return b


def fill(backend: Backend, count: int, stamp: datetime, start: int = 1) -> None:
    text = stamp.isoformat(" ")
    for first in range(start, start + count, 1000):
        values = ", ".join(
            f"({i}, 'item {i}', '{text}')" for i in range(first, min(first + 1000, start + count))
        )
        backend.run([f"INSERT INTO items (id, label, updated_at) VALUES {values}"])


def export_job(receiver: Receiver, chunk_rows: int, **extra: Any) -> dict[str, Any]:
    return {"export": {
        "from": "items", "incremental": "updated_at", "lag": extra.pop("lag", "5s"),
        "to": {"url": receiver.url, "format": "ndjson", "chunk_rows": chunk_rows,
               "attempts": extra.pop("attempts", 3)},
    }, **extra}  # fmt: skip


async def agent_for(run_agent: Any, backend: Backend, jobs: dict[str, Any]) -> Caller:
    resources = {"items": {"source": "db", "table": "items", "key": ["id"], "max_rows": 1000}}
    return await run_agent({"db": backend.source}, resources, jobs=jobs)  # type: ignore[no-any-return]


async def test_rows_sharing_one_timestamp_cross_chunk_boundaries_once(
    backend: Backend, receiver: Receiver, run_agent: Any
) -> None:
    """10,000 rows with one updated_at, in chunks of 999: every row arrives exactly once,
    each chunk under its own key; a second run finds nothing new."""
    await asyncio.to_thread(fill, backend, 10_000, STAMP)
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 999)})
    first = await run_job(agent)
    assert first["status"] == "succeeded", first
    assert (first["exported"], first["chunks"]) == (10_000, 11)
    assert receiver.ids() == list(range(1, 10_001))
    assert sorted(receiver.chunks) == sorted(f"out/{first['id']}/{n}" for n in range(11))
    assert first["watermark_before"] is None
    second = await run_job(agent)
    assert (second["status"], second["exported"]) == ("succeeded", 0)
    assert second["watermark_before"] == first["watermark_after"]
    assert len(receiver.ids()) == 10_000


async def test_a_bulk_update_is_exported_once_then_not_again(
    backend: Backend, receiver: Receiver, run_agent: Any
) -> None:
    """A bulk update stamping every row with one new time: the next run sends each row once
    more, the run after nothing."""
    count = 100_000 if backend.name == "sqlite" else 20_000
    await asyncio.to_thread(fill, backend, count, STAMP)
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 10_000)})
    assert (await run_job(agent))["exported"] == count
    later = (STAMP + timedelta(hours=1)).isoformat(" ")
    await asyncio.to_thread(backend.run, [f"UPDATE items SET updated_at = '{later}'"])
    receiver.chunks.clear()
    assert (await run_job(agent))["exported"] == count
    assert receiver.ids() == list(range(1, count + 1))
    assert (await run_job(agent))["exported"] == 0


async def test_a_failed_run_keeps_its_watermark_and_the_next_sends_the_rest_once(
    backend: Backend, receiver: Receiver, run_agent: Any
) -> None:
    """The receiver refuses the third chunk every time: the run fails naming it, its
    watermark stays at the end of chunk 1, and once the receiver takes chunks again the next
    run sends only the rows not yet taken; every row arrives exactly once."""
    await asyncio.to_thread(fill, backend, 5_000, STAMP)
    broken = True
    receiver.fail = lambda key: broken and key.endswith("/2")
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 1000, attempts=2)})
    failed = await run_job(agent)
    assert failed["status"] == "failed"
    assert "chunk 2 not taken after 2 attempts" in failed["error"]
    assert (failed["exported"], failed["chunks"]) == (2000, 2)
    assert failed["watermark_after"][1] == 2000
    broken = False
    retried = await run_job(agent)
    assert retried["status"] == "succeeded", retried
    assert retried["watermark_before"] == failed["watermark_after"]
    assert retried["exported"] == 3000
    assert receiver.ids() == list(range(1, 5001))


async def test_a_row_changed_during_a_run_is_not_lost(
    backend: Backend, receiver: Receiver, run_agent: Any
) -> None:
    """While the first chunk is being taken, row 1 (already sent) and row 4,000 (not yet)
    change: each new version is sent by this run or the next, none is lost."""
    await asyncio.to_thread(fill, backend, 5_000, STAMP)
    changed = (STAMP + timedelta(seconds=30)).isoformat(" ")

    async def change(key: str) -> None:
        if key.endswith("/0"):
            await asyncio.to_thread(backend.run, [
                f"UPDATE items SET label = 'changed', updated_at = '{changed}' "
                "WHERE id IN (1, 4000)"
            ])  # fmt: skip

    receiver.on_chunk = change
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 1000)})
    await run_job(agent)
    await run_job(agent)
    rows = [row for rows in receiver.chunks.values() for row in rows]
    assert {row["id"] for row in rows} == set(range(1, 5001))
    assert {row["id"] for row in rows if row["label"] == "changed"} == {1, 4000}


async def test_a_late_commit_inside_lag_is_not_passed_over(
    backend: Backend, receiver: Receiver, run_agent: Any
) -> None:
    """With lag 2s, a row stamped just now waits for a later run; a row then committed with
    an older stamp (its transaction began earlier) is still sent, because the watermark
    never passed it."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    await asyncio.to_thread(fill, backend, 10, now - timedelta(minutes=5))
    await asyncio.to_thread(fill, backend, 1, now, start=11)
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 100, lag="2s")})
    assert (await run_job(agent))["exported"] == 10
    await asyncio.to_thread(fill, backend, 1, now - timedelta(seconds=1), start=12)
    await asyncio.sleep(2.5)
    late = await run_job(agent)
    assert late["exported"] == 2
    assert receiver.ids() == list(range(1, 13))


async def test_the_folder_sink_dry_runs_and_a_second_run(
    tmp_path: Path, receiver: Receiver, run_agent: Any, request: pytest.FixtureRequest
) -> None:
    """`to: {dir:}` writes each chunk as a whole file named by job, run and chunk; a dry run
    counts and writes nothing; while a run is under way a second is a 409; GET /v1/jobs
    lists the job with its last run, and a caller without the scope does not see it."""
    backend = make_backend("sqlite", request, tmp_path, "folder")
    await asyncio.to_thread(
        backend.run,
        ["CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, updated_at TIMESTAMP)"],
    )
    await asyncio.to_thread(fill, backend, 2500, STAMP)
    out = tmp_path / "exports"
    jobs = {"files": {"export": {"from": "items", "to": {"dir": str(out), "format": "csv",
                                                         "chunk_rows": 1000}}}}  # fmt: skip
    agent = await agent_for(run_agent, backend, jobs)
    dry = await run_job(agent, "files", dry_run=True)
    assert (dry["status"], dry["dry_run"], dry["read"], dry["exported"]) == (
        "succeeded", True, 2500, 0)  # fmt: skip
    assert not await asyncio.to_thread(out.exists)
    report = await run_job(agent, "files")
    names = sorted(p.name for p in await asyncio.to_thread(lambda: list(out.iterdir())))
    assert names == [f"files-{report['id']}-{n:06d}.csv" for n in range(3)]
    first = (await asyncio.to_thread((out / names[0]).read_text)).splitlines()
    assert first[0] == "id,label,updated_at"
    assert len(first) == 1001

    status, _, listed = await agent.get("/v1/jobs")
    assert status == 200
    assert [(j["name"], j["last_run"]["id"]) for j in listed["items"]] == [("files", report["id"])]
    status, _, runs = await agent.get("/v1/jobs/files/runs")
    assert [r["id"] for r in runs["items"]] == [report["id"], dry["id"]]
    assert (await agent.get("/v1/jobs/nope/runs"))[0] == 404
    assert (await agent.get("/v1/jobs/files/runs/99"))[0] == 404


async def test_a_second_run_while_one_is_under_way_is_a_409(
    tmp_path: Path, receiver: Receiver, run_agent: Any, request: pytest.FixtureRequest
) -> None:
    backend = make_backend("sqlite", request, tmp_path, "busy")
    await asyncio.to_thread(
        backend.run,
        ["CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, updated_at TIMESTAMP)"],
    )
    await asyncio.to_thread(fill, backend, 3, STAMP)
    release = asyncio.Event()

    async def hold(key: str) -> None:
        await release.wait()

    receiver.on_chunk = hold
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 1)})
    status, _, started = await agent.send("POST", "/v1/jobs/out/runs")
    assert status == 202, started
    await wait_for(lambda: receiver.chunks, 10)
    status, _, refused = await agent.send("POST", "/v1/jobs/out/runs")
    assert status == 409
    assert "has a run under way" in refused["detail"]
    release.set()


@pytest.mark.parametrize("point", ["export-chunk-sent", "export-checkpointed"])
def test_an_agent_killed_mid_run_resumes_it_and_the_result_is_whole(
    tmp_path: Path, point: str
) -> None:
    """SIGKILL right after the sink took the first chunk (its checkpoint not yet written),
    or right after that checkpoint: the restarted agent resumes run 1 under the same number,
    the chunk files are those of an uninterrupted run (the first one at most written twice,
    with the same bytes), and every row is in them exactly once."""
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, updated_at TIMESTAMP)")
        rows = [(i, f"item {i}", STAMP.isoformat(" ")) for i in range(1, 5001)]
        db.executemany("INSERT INTO items VALUES (?, ?, ?)", rows)
    db.close()
    port, key = free_port(), "kill-test-key"
    out = tmp_path / "exports"
    config = {
        "sources": {"db": {"sqlite": str(tmp_path / "t.db")}},
        "resources": {"items": {"source": "db", "table": "items", "key": ["id"]}},
        "jobs": {"out": {"export": {"from": "items", "incremental": "updated_at",
                                    "to": {"dir": str(out), "chunk_rows": 1000}}}},
        "auth": {"api_keys": [{"name": "ops", "key_sha256": sha256(key.encode()).hexdigest(),
                               "scopes": ["jobs:out"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None,
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))

    doomed = AgentProcess(path, port, env={"BRIDGEHEAD_FAILPOINT": point})
    status, _, started = doomed.request("POST", "/v1/jobs/out/runs", key)
    assert (status, started["id"]) == (202, 1)
    assert doomed.process.wait(30) == -signal.SIGKILL
    assert doomed.process.stderr is not None
    doomed.process.stderr.close()

    again = AgentProcess(path, port)
    try:
        deadline = time.monotonic() + 60
        while (report := again.request("GET", "/v1/jobs/out/runs/1", key)[2])["status"] != (
            "succeeded"
        ):  # fmt: skip
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
        assert again.request("GET", "/v1/jobs/out/runs", key)[2]["items"][0]["id"] == 1
    finally:
        stop_process(again.process)
        assert again.process.stderr is not None
        again.process.stderr.close()
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"out-1-{n:06d}.ndjson" for n in range(5)]
    ids = [orjson.loads(line)["id"] for f in files for line in f.read_bytes().splitlines()]
    assert ids == list(range(1, 5001))
    assert (report["exported"], report["chunks"]) == (5000, 5)


def test_the_jobs_command_runs_lists_and_shows_history(tmp_path: Path) -> None:
    """`bridgehead jobs run NAME` carries a run out in its own process (exit 0), `--dry-run`
    sends nothing, `history` lists both newest first, `list` names the job and its last run;
    a job that is not in the config is a usage error (exit 2) naming the ones that are."""
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 8)])
    db.close()
    config = {
        "sources": {"db": {"sqlite": str(tmp_path / "t.db")}},
        "resources": {"items": {"source": "db", "table": "items", "key": ["id"]}},
        "jobs": {"nightly": {"schedule": "30 2 * * *", "time_zone": "Europe/London",
                             "export": {"from": "items", "to": {"dir": "out", "chunk_rows": 5}}}},
        "listen": None, "admin": None,
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))

    def jobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridgehead.agent.cli", "jobs", *args, "-c", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    dry = jobs("run", "nightly", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "run 1 succeeded (dry run)" in dry.stdout
    assert not (tmp_path / "out").exists()
    done = jobs("run", "nightly")
    assert done.returncode == 0, done.stderr
    assert "run 2 succeeded" in done.stdout
    assert "read 7, exported 7 in 2 chunks" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "nightly-2-000000.ndjson", "nightly-2-000001.ndjson"]  # fmt: skip
    history = jobs("history", "nightly").stdout.splitlines()
    assert [line.split()[1] for line in history] == ["2", "1"]
    listed = jobs("list").stdout
    assert listed.startswith("nightly  export  30 2 * * *  last: run 2 succeeded")
    unknown = jobs("run", "weekly")
    assert unknown.returncode == 2
    assert "name a job: bridgehead jobs run NAME (nightly)" in unknown.stderr


@pytest.mark.parametrize("catch_up", [True, False])
async def test_catch_up_runs_a_missed_run_once_at_start(
    tmp_path: Path, receiver: Receiver, run_agent: Any, request: pytest.FixtureRequest,
    catch_up: bool,
) -> None:  # fmt: skip
    """A nightly job whose last planned run was days ago: with catch_up the agent runs it
    once as it starts (one run, not one per missed night); without, it waits for tonight."""
    backend = make_backend("sqlite", request, tmp_path, "catchup")
    await asyncio.to_thread(backend.run, [SQLITE_ITEMS])
    await asyncio.to_thread(fill, backend, 3, STAMP)
    state = tmp_path / "kept" / "jobs" / "nightly"
    await asyncio.to_thread(state.mkdir, parents=True)
    last = (datetime.now(UTC) - timedelta(days=3)).replace(hour=2, minute=30, second=0)
    saved = orjson.dumps({"last_planned": last.isoformat(), "next_run": 1})
    await asyncio.to_thread((state / "state.json").write_bytes, saved)
    job = export_job(receiver, 10, schedule="30 2 * * *", time_zone="UTC", catch_up=catch_up)
    resources = {"items": {"source": "db", "table": "items", "key": ["id"]}}
    agent = await run_agent({"db": backend.source}, resources, jobs={"nightly": job},
                            state_dir=str(tmp_path / "kept"))  # fmt: skip
    if catch_up:
        await wait_for(lambda: receiver.chunks, 20)
        status, _, runs = await agent.get("/v1/jobs/nightly/runs")
        assert [r["id"] for r in runs["items"]] == [1]
    else:
        await asyncio.sleep(1.5)
        assert receiver.chunks == {}
    status, _, described = await agent.get("/v1/jobs/nightly")
    assert status == 200
    assert described["next_run"].endswith("02:30:00+00:00")


async def test_a_named_query_is_exported_whole(
    tmp_path: Path, run_agent: Any, request: pytest.FixtureRequest
) -> None:
    """`from: {query: NAME}` exports every row of the query (its own max_rows bounds API
    answers, not jobs), in chunks, as the API types its columns; a query with parameters,
    and an incremental export of a query, are refused, saying why."""
    backend = make_backend("sqlite", request, tmp_path, "query")
    await asyncio.to_thread(backend.run, [SQLITE_ITEMS])
    await asyncio.to_thread(fill, backend, 2500, STAMP)
    out = tmp_path / "q"
    queries = {
        "labels": {"source": "db", "sql": "SELECT id, label FROM items WHERE id % 2 = 0 "
                   "ORDER BY id", "max_rows": 10},
        "by_id": {"source": "db", "sql": "SELECT label FROM items WHERE id = :id",
                  "params": {"id": "integer"}},
    }  # fmt: skip
    jobs = {
        "evens": {"export": {"from": {"query": "labels"},
                             "to": {"dir": str(out), "chunk_rows": 500}}},
        "one": {"export": {"from": {"query": "by_id"}, "to": {"dir": str(out)}}},
    }  # fmt: skip
    resources = {"items": {"source": "db", "table": "items", "key": ["id"]}}
    agent = await run_agent({"db": backend.source}, resources, jobs=jobs, queries=queries)
    report = await run_job(agent, "evens")
    assert (report["status"], report["exported"], report["chunks"]) == ("succeeded", 1250, 3)

    def read_all() -> list[Any]:
        files = sorted(out.iterdir())
        return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]

    rows = await asyncio.to_thread(read_all)
    assert [r["id"] for r in rows] == list(range(2, 2501, 2))
    refused = await run_job(agent, "one")
    assert refused["status"] == "failed"
    assert "takes parameters (id)" in refused["error"]

    config = tmp_path / "bad.yaml"
    bad = {"sources": {"db": backend.source}, "queries": {"labels": queries["labels"]},
           "jobs": {"x": {"export": {"from": {"query": "labels"}, "incremental": "id",
                                     "to": {"dir": "out"}}}}}  # fmt: skip
    await asyncio.to_thread(config.write_text, yaml.safe_dump(bad))
    checked = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bridgehead.agent.cli", "check", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 2
    assert "incremental: needs a resource to walk" in checked.stderr


async def test_scheduled_starts_never_overlap_and_a_skipped_one_is_recorded(
    tmp_path: Path, receiver: Receiver, run_agent: Any, request: pytest.FixtureRequest
) -> None:
    """Every second, while the receiver holds the first run's only chunk for 2.5 s: the
    starts that fall due meanwhile are skipped, not run beside it, and the run's report
    lists them."""
    backend = make_backend("sqlite", request, tmp_path, "overlap")
    await asyncio.to_thread(backend.run, [SQLITE_ITEMS])
    await asyncio.to_thread(fill, backend, 3, STAMP)
    held = asyncio.Event()

    async def hold(key: str) -> None:
        if key.startswith("every/1/"):
            held.set()
            await asyncio.sleep(2.5)

    receiver.on_chunk = hold
    agent = await agent_for(run_agent, backend, {"every": export_job(receiver, 10, every="1s")})
    await asyncio.wait_for(held.wait(), 10)
    assert agent.agent is not None
    assert agent.agent.jobs is not None
    first = await agent.agent.jobs.finished("every")
    assert first["id"] == 1
    assert len(first["skipped_starts"]) >= 1
    _status, _, runs = await agent.get("/v1/jobs/every/runs")
    starts = sorted((r["started"], r["finished"]) for r in runs["items"])
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(starts))


async def test_a_run_asked_for_once_the_last_has_reported_is_not_refused(
    backend: Backend, receiver: Receiver, run_agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that reads a run's final report and at once starts another gets it (202),
    even while the finished run is still letting go of its lock (made slow here)."""
    release = JobStore.release

    def slow_release(fd: int) -> None:
        time.sleep(0.5)
        release(fd)

    monkeypatch.setattr(JobStore, "release", staticmethod(slow_release))
    await asyncio.to_thread(fill, backend, 10, STAMP)
    agent = await agent_for(run_agent, backend, {"out": export_job(receiver, 999)})
    first = await run_job(agent)
    assert first["status"] == "succeeded", first
    second = await run_job(agent)  # asked for while the first still releases its lock
    assert second["status"] == "succeeded", second
    assert second["exported"] == 0
