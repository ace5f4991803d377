# The event log's consumers on the admin listener: a real agent on 127.0.0.1 capturing a
# SQLite table's changes by triggers, consumers acking through /v1/events like the relay's
# webhook deliverer does. /metrics gives the log's last sequence and size and each consumer's
# backlog, oldest unprocessed age, dead letters and failures (checked by promtool); a
# consumer further behind than `events.backlog_warning` is a warning on /readyz and
# /status.json, never a failure, until its ack catches up; the health page, in a real
# headless Chromium, lists the consumers with their report as text, and hides the section
# on an agent that captures no events. The readiness warnings are also checked as pure
# functions.
from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser import Page
from conftest import Caller
from pydantic import ValidationError
from test_admin_jobs import metric_samples, promtool_check

from bridgehead.adapters.types import TableRef
from bridgehead.agent.admin.events import ConsumerState, EventsState, events_state
from bridgehead.agent.admin.status import (
    About,
    Snapshot,
    SourceState,
    readiness,
    status_document,
)
from bridgehead.agent.api.events import Ack
from bridgehead.agent.config.events import EventSettings
from bridgehead.agent.events.ddl import Capture, install_statements
from bridgehead.agent.events.log import Change, EventLog

RESOURCES = {
    "customers": {"source": "db", "table": "customers", "key": ["id"],
                  "events": {"capture": "triggers"}},
}  # fmt: skip
EVIL = '<img src=x onerror="document.title=1"> 503 from crm'
"""A last error carrying markup: the page must show it as text."""
CRM_BEHIND = (
    "consumer webhook.crm is 3 events behind (warning at 2): check its deliveries with "
    "`bridgehead-relay webhooks list`"
)


def legacy_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        for sql in install_statements("sqlite", [Capture("customers", TableRef("customers"),
                                                         ("id",))]):  # fmt: skip
            db.execute(sql)
    db.close()


def four_changes(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"c{i}") for i in (1, 2, 3)])
        db.execute("UPDATE customers SET name = 'c1b' WHERE id = 1")
    db.close()


async def admin_get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.json() if r.content_type == "application/json" else await r.text()


def admin_url(caller: Caller) -> str:
    assert caller.agent is not None
    assert caller.agent.admin_url is not None
    return str(caller.agent.admin_url)


async def events_agent(run_agent: Any, tmp_path: Path) -> Caller:
    """An agent capturing customers (warning past 2 events behind) with four events in its
    log; webhook.crm has acked the first with a report and a dead letter, feed none."""
    await asyncio.to_thread(legacy_db, tmp_path / "legacy.db")
    agent: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "legacy.db")}}, RESOURCES, admin="127.0.0.1:0",
        events={"interval": "50ms", "backlog_warning": 2},
    )  # fmt: skip
    await asyncio.to_thread(four_changes, tmp_path / "legacy.db")
    deadline = asyncio.get_running_loop().time() + 10
    while (await agent.get("/v1/events/consumers/probe"))[2]["last_seq"] < 4:
        assert asyncio.get_running_loop().time() < deadline, "the changes were not captured"
        await asyncio.sleep(0.05)
    report = {"delivered": 1, "failures": 2, "last_error": EVIL, "undelivered": 3,
              "disabled": False}  # fmt: skip
    dead = [{"seq": 1, "id": "gave-up-1", "reason": "HTTP 400 from crm"}]
    await ack(agent, "webhook.crm", {"upto": 1, "report": report, "dead": dead})
    await ack(agent, "feed", {"upto": 0})
    return agent


async def ack(agent: Caller, consumer: str, body: dict[str, Any]) -> None:
    """Commit as the consumer would: a `webhook.*` one as the relay does, on the agent's
    events desk (callers may not move the relay's consumers), any other by the API."""
    if consumer.startswith("webhook."):
        assert agent.agent is not None
        assert agent.agent.events is not None
        ack = Ack(tuple(body.get("dead", ())), body.get("report"))
        await agent.agent.events.commit(consumer, body["upto"], ack)
        return
    status, _, answer = await agent.send("POST", f"/v1/events/consumers/{consumer}/ack", body)
    assert status == 200, answer


async def warnings_become(url: str, wanted: list[str]) -> dict[str, Any]:
    """/readyz once its warnings' reasons are `wanted` (the monitor's snapshot is reused
    for a second), bounded."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        status, body = await admin_get(url + "/readyz")
        assert status == 200, body  # a warning never makes the agent unready
        if [w["reason"] for w in body["warnings"]] == wanted:
            return dict(body)
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_consumers_behind_are_warned_of_and_counted(run_agent: Any, tmp_path: Path) -> None:
    """Two consumers more than 2 events behind are each a warning naming them, their backlog
    and what to do, on /readyz (200, ready) and /status.json; /metrics has the log's figures
    and theirs, and passes promtool; once both have acked everything the warnings are gone and
    their backlog is 0."""
    agent = await events_agent(run_agent, tmp_path)
    url = admin_url(agent)
    feed_behind = (
        "consumer feed is 4 events behind (warning at 2): check that it is running and acks "
        "what it has processed (POST /v1/events/consumers/feed/ack)"
    )
    ready = await warnings_become(url, [feed_behind, CRM_BEHIND])
    assert ready["ready"] is True
    assert [w["name"] for w in ready["warnings"]] == ["events:feed", "events:webhook.crm"]
    _, doc = await admin_get(url + "/status.json")
    assert (doc["ready"], doc["warnings"]) == (True, ready["warnings"])
    crm = {c["name"]: c for c in doc["events"]["consumers"]}["webhook.crm"]
    assert {k: v for k, v in crm.items() if k not in ("oldest_unprocessed",
                                                      "oldest_unprocessed_seconds")} == {
        "name": "webhook.crm", "position": 1, "last_seq": 4, "backlog": 3, "behind": True,
        "delivered": 1, "failures": 2, "last_error": EVIL, "disabled": False, "dead_letters": 1,
    }  # fmt: skip
    assert crm["oldest_unprocessed_seconds"] >= 0
    assert datetime.fromisoformat(crm["oldest_unprocessed"]) <= datetime.now(UTC)
    assert (doc["events"]["last_seq"], doc["events"]["backlog_warning"]) == (4, 2)

    _, text = await admin_get(url + "/metrics")
    samples = metric_samples(text)
    assert samples["bridgehead_events_last_sequence", ()] == 4
    assert samples["bridgehead_events_log_bytes", ()] > 0
    for name, crm_value, feed_value in (("backlog", 3, 4), ("dead_letters", 1, 0)):
        metric = f"bridgehead_events_consumer_{name}"
        assert samples[metric, (("consumer", "webhook.crm"),)] == crm_value
        assert samples[metric, (("consumer", "feed"),)] == feed_value
    assert samples["bridgehead_events_consumer_failures", (("consumer", "webhook.crm"),)] == 2
    assert ("bridgehead_events_consumer_failures", (("consumer", "feed"),)) not in samples
    age = samples["bridgehead_events_consumer_oldest_unprocessed_seconds", (("consumer", "feed"),)]
    assert 0 <= age < 120
    await asyncio.to_thread(promtool_check, text)

    await ack(agent, "webhook.crm", {"upto": 4})
    await ack(agent, "feed", {"upto": 4})
    await warnings_become(url, [])
    _, text = await admin_get(url + "/metrics")
    samples = metric_samples(text)
    for consumer in ("webhook.crm", "feed"):
        labels = (("consumer", consumer),)
        assert samples["bridgehead_events_consumer_backlog", labels] == 0
        assert samples["bridgehead_events_consumer_oldest_unprocessed_seconds", labels] == 0


async def test_an_agent_capturing_no_events_reports_none(run_agent: Any, tmp_path: Path) -> None:
    """Without captured resources /status.json has no events part, nothing warns and
    /metrics has no event figures."""
    await asyncio.to_thread(legacy_db, tmp_path / "plain.db")
    resources = {"customers": {"source": "db", "table": "customers", "key": ["id"]}}
    agent = await run_agent({"db": {"sqlite": str(tmp_path / "plain.db")}}, resources,
                            admin="127.0.0.1:0")  # fmt: skip
    _, doc = await admin_get(admin_url(agent) + "/status.json")
    assert (doc["events"], doc["warnings"]) == (None, [])
    status, ready = await admin_get(admin_url(agent) + "/readyz")
    assert (status, ready["warnings"]) == (200, [])
    _, text = await admin_get(admin_url(agent) + "/metrics")
    assert "bridgehead_events_" not in text


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snapshot_with(*consumers: ConsumerState, up: bool = True) -> Snapshot:
    source = SourceState("db", "sqlite", "sqlite", None if up else "refused", 0.001, None)
    events = EventsState(last_seq=500, size=1 << 20, backlog_warning=100, consumers=consumers)
    return Snapshot(NOW, (source,), None, None, events=events)


def test_a_warning_never_changes_readiness() -> None:
    """A backlog over the threshold warns whether or not the agent is ready, and changes
    neither the readiness nor the checks; a backlog at the threshold does not warn."""
    far = ConsumerState("webhook.crm", 100, 400, NOW - timedelta(minutes=5), 0)
    level = ConsumerState("feed", 400, 100, NOW - timedelta(seconds=3), 0)
    ready, body = readiness(snapshot_with(far, level))
    assert ready is True
    assert body["warnings"] == [{"name": "events:webhook.crm", "reason": (
        "consumer webhook.crm is 400 events behind (warning at 100): check its deliveries "
        "with `bridgehead-relay webhooks list`")}]  # fmt: skip
    ready, down = readiness(snapshot_with(far, level, up=False))
    assert ready is False
    assert down["warnings"] == body["warnings"]
    assert [c["ok"] for c in down["checks"]] == [False, True, True]
    assert readiness(snapshot_with(level))[1]["warnings"] == []


def test_a_disabled_webhook_is_told_how_to_enable_it() -> None:
    """The warning for a webhook its endpoint disabled (410) names the replay that enables
    it again, from its position; the page's row says how far behind it is and how old."""
    gone = ConsumerState("webhook.crm", 120, 380, NOW - timedelta(minutes=5), 2,
                         delivered=120, failures=0, disabled=True)  # fmt: skip
    snap = snapshot_with(gone)
    (warning,) = readiness(snap)[1]["warnings"]
    assert warning["reason"].endswith(
        "its webhook subscription is disabled (its endpoint answered 410); enable it with "
        "`bridgehead-relay webhooks replay crm --from 120`"
    )
    about = status_document(snap, About("0", None, NOW, NOW), [], [])
    (row,) = about["events"]["consumers"]
    assert (row["backlog"], row["oldest_unprocessed_seconds"], row["disabled"]) == (380, 300, True)


def test_the_backlog_warning_is_at_least_one() -> None:
    assert EventSettings().backlog_warning == 100_000
    assert EventSettings.model_validate({"backlog_warning": 1}).backlog_warning == 1
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        EventSettings.model_validate({"backlog_warning": 0})


def markup_in(page: Page, css: str) -> int:
    return len(page.driver.find_elements("css selector", f"{css} img"))


async def test_the_page_lists_the_consumers_as_text(
    run_agent: Any, tmp_path: Path, page: Page
) -> None:
    """The Change events section lists each consumer: position of last sequence, backlog,
    oldest unprocessed, delivered, failures, last error (markup shown as text), state and
    dead letters, with the warning; an ack that catches up clears the warning; an agent
    capturing no events hides the section."""
    agent = await events_agent(run_agent, tmp_path)
    await asyncio.to_thread(page.open, admin_url(agent) + "/")
    row = '#events tbody tr[data-key="webhook.crm"]'
    text = await asyncio.to_thread(page.wait_text, row, "delivering")
    assert text.startswith("webhook.crm 1 of 4 3 "), text
    assert f" old 1 2 {EVIL} delivering 1" in text, text
    feed = await asyncio.to_thread(page.text, '#events tbody tr[data-key="feed"]')
    assert feed.startswith("feed 0 of 4 4 "), feed
    assert feed.endswith("\N{EN DASH} \N{EN DASH} none reading 0"), feed  # no report
    warnings = await asyncio.to_thread(page.wait_text, "#events-warnings", "webhook.crm")
    assert CRM_BEHIND in warnings
    assert await asyncio.to_thread(markup_in, page, "#events-section") == 0
    assert await asyncio.to_thread(lambda: page.driver.title) != "1"

    await ack(agent, "webhook.crm", {"upto": 4})
    await ack(agent, "feed", {"upto": 4})
    await asyncio.sleep(1.1)  # past the monitor's shared snapshot
    await asyncio.to_thread(page.click, "#refresh")
    await asyncio.to_thread(page.wait_text, row, "4 of 4 0 none")
    assert await asyncio.to_thread(page.text, "#events-warnings") == ""
    assert await asyncio.to_thread(page.console_errors) == []
    await asyncio.to_thread(page.screenshot, tmp_path / "events.png")

    await asyncio.to_thread(legacy_db, tmp_path / "plain.db")
    plain = await run_agent({"db": {"sqlite": str(tmp_path / "plain.db")}},
                            {"customers": {"source": "db", "table": "customers"}},
                            admin="127.0.0.1:0")  # fmt: skip
    await asyncio.to_thread(page.open, admin_url(plain) + "/")
    await asyncio.to_thread(page.wait_text, "#sources", "sqlite")
    shown = await asyncio.to_thread(lambda: page.find("#events-section").is_displayed())
    assert shown is False


def test_the_report_keeps_only_fields_of_the_expected_type(tmp_path: Path) -> None:
    """A consumer's report is its own JSON: a field of another type is not shown; its
    backlog counts from the oldest event retention kept."""
    log = EventLog(tmp_path / "events.db")
    try:
        log.append([Change(f"e{i}", "customers", "bridgehead.row.created", str(i),
                           f"customers/{i}", "2026-03-01T12:00:00Z", {"id": i})
                    for i in range(1, 6)])  # fmt: skip
        log.commit("odd", 1, NOW, report={"delivered": "7", "failures": True, "last_error": 5,
                                          "disabled": "no"})  # fmt: skip
        log.trim(NOW + timedelta(days=8), timedelta(days=7), 1 << 20)  # drops all five
        log.append([Change("e6", "customers", "bridgehead.row.deleted", "1", "customers/1",
                           "2026-03-01T11:59:00Z", {"id": 1})])  # fmt: skip
        state = events_state(log, 2)
    finally:
        log.close()
    (odd,) = state.consumers
    assert (odd.delivered, odd.failures, odd.last_error, odd.disabled) == (None, None, None, None)
    assert (odd.backlog, odd.oldest_unprocessed) == (1, NOW - timedelta(minutes=1))
    assert (state.last_seq, state.size > 0) == (6, True)
