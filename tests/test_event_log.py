"""The agent's event log on its own: an append is durable and idempotent by event id (a
change captured twice after a crash appears once); reads filter by position, resource and
type; a consumer's committed position only moves forward and survives a reopen; retention
drops the oldest by age and by size; each event renders as a CloudEvents 1.0 record."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bridgehead.agent.events.log import Change, DeadLetter, EventLog

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def change(n: int, resource: str = "customers", kind: str = "updated", **extra: object) -> Change:
    return Change(
        id=f"{resource}-{n}", resource=resource, type=f"bridgehead.row.{kind}",
        subject=str(n % 3), partitionkey=f"{resource}/{n % 3}",
        time=str(extra.get("time", NOW.isoformat())), data={"id": n % 3, "n": f"{n:04d}"},
    )  # fmt: skip


def test_appends_are_idempotent_by_id_and_survive_a_reopen(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    assert log.append([change(1), change(2)]) == 2
    assert log.append([change(2), change(3)]) == 1  # 2 was captured before a crash
    log.close()
    again = EventLog(tmp_path / "events.db")
    events = again.read(0, 100)
    assert [(e.seq, e.id) for e in events] == [(1, "customers-1"), (2, "customers-2"),
                                               (3, "customers-3")]  # fmt: skip
    assert (tmp_path / "events.db").stat().st_mode & 0o777 == 0o600
    again.close()


def test_reads_filter_by_position_resource_and_type(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    log.append([change(1), change(2, "orders", "created"), change(3, kind="deleted"),
                change(4, "orders")])  # fmt: skip
    assert [e.seq for e in log.read(1, 10)] == [2, 3, 4]
    assert [e.seq for e in log.read(0, 10, resources=["orders"])] == [2, 4]
    assert [e.seq for e in log.read(0, 10, types=["bridgehead.row.deleted"])] == [3]
    assert log.read(0, 10, resources=[]) == []
    assert [e.seq for e in log.read(0, 2)] == [1, 2]
    log.close()


def test_a_consumer_moves_only_forward_and_not_past_the_end(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    log.append([change(n) for n in range(1, 6)])
    assert log.position("crm") == 0
    assert log.commit("crm", 3, NOW) == 3
    assert log.commit("crm", 2, NOW) == 3
    assert log.commit("crm", 99, NOW) == 5
    log.close()
    reopened = EventLog(tmp_path / "events.db")
    assert [(c.name, c.position) for c in reopened.consumers()] == [("crm", 5)]
    reopened.close()


def test_dead_letters_and_the_report_are_kept_with_the_commit_that_passes_them(
    tmp_path: Path,
) -> None:
    """A consumer that gives up on an event records it, with why, in the same transaction as
    the position that moves past it; a rewind (replay) drops the dead letters it will retry
    and clears the report."""
    log = EventLog(tmp_path / "events.db")
    log.append([change(n) for n in range(1, 6)])
    dead = DeadLetter(2, "e-2", "HTTP 500 for 72 h", NOW.isoformat())
    assert log.commit("hook", 4, NOW, dead=[dead], report={"failures": 7}) == 4
    kept = log.consumer("hook")
    assert kept is not None
    assert kept.report == {"failures": 7}
    assert kept.dead_letters == 1
    assert log.dead_letters("hook") == [dead]
    assert log.time_after(4) == change(5).time
    assert log.time_after(5) is None
    assert log.rewind("hook", 1, NOW) == 1
    again = log.consumer("hook")
    assert again is not None
    assert again.position == 1
    assert again.report == {}
    assert log.dead_letters("hook") == []
    assert log.consumer("nobody") is None
    assert log.rewind("hook", 10**12, NOW) == 5  # never past the last event
    log.close()


def test_a_log_from_before_consumer_reports_is_upgraded_in_place(tmp_path: Path) -> None:
    """The consumers table of an older log gains its report column; positions are kept."""
    path = tmp_path / "events.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE consumers (name TEXT PRIMARY KEY, position INTEGER NOT NULL, "
                "updated TEXT NOT NULL)")  # fmt: skip
    old.execute("INSERT INTO consumers VALUES ('crm', 3, 'then')")
    old.commit()
    old.close()
    log = EventLog(path)
    assert [(c.name, c.position, c.report) for c in log.consumers()] == [("crm", 3, {})]
    log.close()


def test_retention_drops_the_oldest_by_age_then_by_size(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    old = (NOW - timedelta(days=10)).isoformat()
    log.append([change(1, time=old), change(2, time=old), *(change(n) for n in range(3, 13))])
    assert log.trim(NOW, timedelta(days=7), 1 << 30) == 2
    assert log.first_seq() == 3
    size = len(orjson.dumps(change(3).data))
    dropped = log.trim(NOW, timedelta(days=7), 4 * size)
    assert dropped == 6
    assert [e.seq for e in log.read(0, 100)] == [9, 10, 11, 12]
    log.close()


def test_an_event_is_a_cloudevents_record(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    log.append([change(7, kind="created")])
    (event,) = log.read(0, 1)
    record = orjson.loads(orjson.dumps(event.cloudevent("bridgehead://agent/plant-7")))
    assert record == {
        "specversion": "1.0", "id": "customers-7",
        "source": "bridgehead://agent/plant-7/resources/customers",
        "type": "bridgehead.row.created", "subject": "1", "time": NOW.isoformat(),
        "datacontenttype": "application/json", "sequence": "1",
        "partitionkey": "customers/1", "data": {"id": 1, "n": "0007"},
    }  # fmt: skip
    log.close()
