# The jobs on the admin listener, end to end: a real agent on 127.0.0.1 with SQLite and two
# export jobs to folders (one of them a file, so its runs fail), runs started through
# POST /v1/jobs/NAME/runs. /status.json lists each job with its last runs; /metrics counts
# runs, rows and the last success (checked by prometheus-client and promtool); each run that
# is not a dry run is one audit record that `bridgehead audit verify` accepts; the health
# page, in a real headless Chromium, shows the jobs table and one bar per run.
from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from browser import Page
from jobkit import run_job
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from bridgehead.agent.admin.runs import audit_record, run_row, written
from bridgehead.agent.config.jobs import JobConfig

ROWS = 5


async def admin_get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.json() if r.content_type == "application/json" else await r.text()


def admin_url(caller: Any) -> str:
    assert caller.agent is not None
    assert caller.agent.admin_url is not None
    return str(caller.agent.admin_url)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == "", "promtool reports lint problems"


def make_items(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, updated_at TIMESTAMP)")
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(i, f"item {i}", "2026-03-01 12:00:00") for i in range(1, ROWS + 1)],
        )
    db.close()


async def jobs_agent(run_agent: Any, tmp_path: Path) -> Any:
    """An agent with job `files` (an incremental export to a folder, 2 rows a chunk) and job
    `broken` (to a "folder" that is a file: every run fails)."""
    await asyncio.to_thread(make_items, tmp_path / "items.db")
    blocked = tmp_path / "not-a-folder"
    await asyncio.to_thread(blocked.write_text, "")
    to = {"format": "ndjson", "chunk_rows": 2}
    jobs = {
        "files": {"export": {"from": "items", "incremental": "updated_at",
                             "to": {"dir": str(tmp_path / "out"), **to}}},
        "broken": {"export": {"from": "items", "to": {"dir": str(blocked), **to}}},
    }  # fmt: skip
    return await run_agent(
        {"db": {"sqlite": str(tmp_path / "items.db")}},
        {"items": {"source": "db", "table": "items", "key": ["id"]}},
        admin="127.0.0.1:0",
        jobs=jobs,
    )


async def three_runs(agent: Any) -> list[dict[str, Any]]:
    """A dry run, a run that exports every row, one that finds nothing new, and a failure."""
    dry = await run_job(agent, "files", dry_run=True)
    first = await run_job(agent, "files")
    second = await run_job(agent, "files")
    failed = await run_job(agent, "broken")
    assert (dry["status"], dry["read"], dry["exported"]) == ("succeeded", ROWS, 0)
    assert (first["status"], first["exported"]) == ("succeeded", ROWS)
    assert (second["status"], second["exported"]) == ("succeeded", 0)
    assert failed["status"] == "failed", failed
    await wait_for(lambda: not agent.agent.jobs.running)  # the last report, then the lock
    return [dry, first, second, failed]


def audit_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_status_metrics_and_audit_show_the_runs(run_agent: Any, tmp_path: Path) -> None:
    """/status.json lists both jobs with their runs newest first, reduced to what the page
    shows; /metrics counts every run by status, the rows of the runs that are not dry runs
    and the time of the last success, and passes promtool; the audit log holds one record
    per run that is not a dry run, its chain intact."""
    agent = await jobs_agent(run_agent, tmp_path)
    url = admin_url(agent)
    status, doc = await admin_get(url + "/status.json")
    assert status == 200
    assert [(j["name"], j["runs"]) for j in doc["jobs"]] == [("files", []), ("broken", [])]

    dry, first, second, failed = await three_runs(agent)
    status, doc = await admin_get(url + "/status.json")
    files, broken = doc["jobs"]
    assert {k: files[k] for k in ("name", "kind", "schedule", "next_run", "running")} == {
        "name": "files", "kind": "export", "schedule": None, "next_run": None, "running": False,
    }  # fmt: skip
    assert [r["id"] for r in files["runs"]] == [second["id"], first["id"], dry["id"]]
    assert files["runs"][1] == {
        "id": first["id"], "status": "succeeded", "dry_run": False, "started": first["started"],
        "finished": first["finished"], "read": ROWS, "written": ROWS, "rejected": 0,
        "error": None,
    }  # fmt: skip
    assert [r["status"] for r in broken["runs"]] == ["failed"]
    assert "cannot write" in broken["runs"][0]["error"]

    status, text = await admin_get(url + "/metrics")
    assert status == 200
    samples = metric_samples(text)
    runs = "bridgehead_job_runs_total"
    assert samples[runs, (("job", "files"), ("status", "succeeded"))] == 3  # the dry run too
    assert samples[runs, (("job", "files"), ("status", "failed"))] == 0
    assert samples[runs, (("job", "broken"), ("status", "failed"))] == 1
    rows = "bridgehead_job_rows_total"
    assert samples[rows, (("job", "files"), ("kind", "exported"))] == ROWS
    assert samples[rows, (("job", "files"), ("kind", "read"))] == ROWS  # not the dry run's
    ended = datetime.fromisoformat(second["finished"]).timestamp()
    last = "bridgehead_job_last_success_timestamp_seconds"
    assert samples[last, (("job", "files"),)] == pytest.approx(ended)
    assert (last, (("job", "broken"),)) not in samples
    assert samples["bridgehead_job_running", (("job", "files"),)] == 0
    assert samples["bridgehead_job_running", (("job", "broken"),)] == 0
    served = [dict(k[1]) for k in samples if k[0] == "bridgehead_requests_total"]
    assert {s["operation"] for s in served} == {"run", "jobs"}, "runs are not requests"
    await asyncio.to_thread(promtool_check, text)

    log = agent.agent.config.state_path / "audit.log"
    found: list[dict[str, Any]] = []

    def three_records() -> bool:
        found[:] = [r for r in audit_lines(log) if r["via"] == "job"]
        return len(found) >= 3

    deadline = asyncio.get_running_loop().time() + 10
    while not await asyncio.to_thread(three_records):
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)
    picked = [
        (r["request_id"], r["principal"], r["target"], r["operation"], r["rows"], r["status"],
         r["via"]) for r in found
    ]  # fmt: skip
    assert picked == [
        (f"job:files/{first['id']}", "job:files", "items", "export", ROWS, 200, "job"),
        (f"job:files/{second['id']}", "job:files", "items", "export", 0, 200, "job"),
        (f"job:broken/{failed['id']}", "job:broken", "items", "export", 0, 500, "job"),
    ]
    took = datetime.fromisoformat(first["finished"]) - datetime.fromisoformat(first["started"])
    assert found[0]["duration_ms"] == pytest.approx(took.total_seconds() * 1000, abs=0.01)
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bridgehead.agent.cli", "audit", "verify", str(log)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "records, chain intact" in verified.stdout


async def test_an_agent_without_jobs_lists_none(run_agent: Any, tmp_path: Path) -> None:
    await asyncio.to_thread(make_items, tmp_path / "items.db")
    agent = await run_agent(
        {"db": {"sqlite": str(tmp_path / "items.db")}},
        {"items": {"source": "db", "table": "items", "key": ["id"]}},
        admin="127.0.0.1:0",
    )
    status, doc = await admin_get(admin_url(agent) + "/status.json")
    assert (status, doc["jobs"]) == (200, [])
    _, text = await admin_get(admin_url(agent) + "/metrics")
    assert "bridgehead_job_running" not in text


def test_a_run_is_reduced_and_audited_by_its_kind() -> None:
    """An import's rows written are inserted + updated + deleted (unchanged and rejected are
    not); its audit record names the resource it writes into."""
    job = JobConfig.model_validate(
        {"import": {"from": {"url": "https://data.example.org/x.csv", "format": "csv"},
                    "into": "addresses", "mode": "mirror"}}
    )  # fmt: skip
    report = {
        "id": 7, "job": "postcodes", "kind": "import", "status": "failed", "dry_run": False,
        "started": "2026-03-01T02:30:00+00:00", "finished": "2026-03-01T02:30:01.5+00:00",
        "read": 10, "inserted": 2, "updated": 3, "unchanged": 4, "deleted": 1, "rejected": 1,
        "exported": 0, "error": "the feed broke off",
    }  # fmt: skip
    assert written(report) == 6
    assert run_row(report)["written"] == 6
    rec = audit_record(job, report)
    assert (rec.principal, rec.target, rec.operation, rec.rows, rec.status, rec.via) == (
        "job:postcodes", "addresses", "import", 6, 500, "job")  # fmt: skip
    assert (rec.request_id, rec.duration_ms) == ("job:postcodes/7", 1500.0)


def bar_count(page: Page, key: str) -> int:
    return len(page.driver.find_elements("css selector", f'#jobs tr[data-key="{key}"] svg rect'))


async def test_the_page_shows_the_jobs_and_a_bar_per_run(
    run_agent: Any, tmp_path: Path, page: Page
) -> None:
    """Without runs each job says so; after them, the table row of each job names its last
    run's status, rows and error, and its chart has one bar per run, a failed one in red."""
    agent = await jobs_agent(run_agent, tmp_path)
    url = admin_url(agent)
    await asyncio.to_thread(page.open, url + "/")
    row = '#jobs tbody tr[data-key="files"]'
    assert "no runs yet" in await asyncio.to_thread(page.wait_text, row, "files")
    assert not await asyncio.to_thread(lambda: page.find("#jobs-empty").is_displayed())
    await three_runs(agent)
    await asyncio.to_thread(page.click, "#refresh")
    text = await asyncio.to_thread(page.wait_text, row, "succeeded")
    assert text.startswith("files export on request only"), text
    assert await asyncio.to_thread(page.wait_for, lambda: bar_count(page, "files") == 3)
    broken = await asyncio.to_thread(page.wait_text, '#jobs tr[data-key="broken"]', "failed")
    assert "cannot write" in broken
    assert await asyncio.to_thread(bar_count, page, "broken") == 1
    red = '#jobs tr[data-key="broken"] svg rect.bar.failed'
    assert await asyncio.to_thread(page.find, red)
    label = await asyncio.to_thread(
        lambda: page.find('#jobs tr[data-key="files"] svg').get_attribute("aria-label")
    )
    assert label == f"3 runs of job files, {ROWS} rows in all, at most {ROWS} in one run"
    assert await asyncio.to_thread(page.console_errors) == []
    await asyncio.to_thread(page.screenshot, tmp_path / "jobs.png")
