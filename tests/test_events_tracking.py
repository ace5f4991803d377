# SQL Server Change Tracking capture. No SQL Server runs here: the statements that turn it on
# and off and read the changes are checked as golden text and parsed with sqlglot's T-SQL
# reader, and the reader runs against a fake SQL Server (a recording adapter answering as
# CHANGETABLE would), with the real event log on disk.
# ruff: noqa: E501 - the golden SQL below keeps the generated statements' lines whole
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import sqlglot
from recording import Answer, Driver, RecordingAdapter
from sqlglot import exp
from test_events_ddl import cli, write_config

from bridgehead.adapters.types import Column, ColumnType, Kind, TableInfo, TableRef
from bridgehead.agent.catalog import Resource, resolve_resource
from bridgehead.agent.config.load import parse_config
from bridgehead.agent.config.model import ResourceConfig
from bridgehead.agent.events.ddl import Capture
from bridgehead.agent.events.log import Change, EventLog
from bridgehead.agent.events.tracked import ChangeTrackingReader, TrackingOff
from bridgehead.agent.events.tracking import (
    Position,
    changes_statement,
    disable_statements,
    enable_statements,
    next_position,
    versions_statement,
)
from bridgehead.common.config.document import ConfigError

ORDERS = Capture("orders", TableRef("orders", "sales"), ("id",))
LINES = Capture("lines", TableRef("order lines]", "sales"), ("order_id", "line"))

# -- the statements ----------------------------------------------------------------------------

ENABLE = [
    """IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())
ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)""",
    """IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'[sales].[orders]'))
ALTER TABLE [sales].[orders] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)""",
    """IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'[sales].[order lines]]]'))
ALTER TABLE [sales].[order lines]]] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)""",
]
DISABLE_TABLES = [
    """IF EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'[sales].[orders]'))
ALTER TABLE [sales].[orders] DISABLE CHANGE_TRACKING""",
    """IF EXISTS (SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(N'[sales].[order lines]]]'))
ALTER TABLE [sales].[order lines]]] DISABLE CHANGE_TRACKING""",
]
DISABLE_DATABASE = """IF EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())
ALTER DATABASE CURRENT SET CHANGE_TRACKING = OFF"""
READ_WHOLE = (
    "SELECT TOP (1000) CT.[SYS_CHANGE_VERSION], CT.[SYS_CHANGE_OPERATION], CT.[id] "
    "FROM CHANGETABLE(CHANGES [sales].[orders], ?) AS CT "
    "WHERE CT.[SYS_CHANGE_VERSION] <= ? AND (CT.[SYS_CHANGE_VERSION] > ?) "
    "ORDER BY CT.[SYS_CHANGE_VERSION], CT.[id]"
)
READ_WITHIN = (
    "SELECT TOP (500) CT.[SYS_CHANGE_VERSION], CT.[SYS_CHANGE_OPERATION], CT.[order_id], CT.[line] "
    "FROM CHANGETABLE(CHANGES [sales].[order lines]]], ?) AS CT "
    "WHERE CT.[SYS_CHANGE_VERSION] <= ? AND (CT.[SYS_CHANGE_VERSION] > ? OR "
    "(CT.[SYS_CHANGE_VERSION] = ? AND (CT.[order_id] > ? OR (CT.[order_id] = ? AND CT.[line] > ?)))) "
    "ORDER BY CT.[SYS_CHANGE_VERSION], CT.[order_id], CT.[line]"
)
VERSIONS = (
    "SELECT CHANGE_TRACKING_CURRENT_VERSION(), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?))"
)


def test_enable_and_disable_are_the_golden_sql() -> None:
    """Enable turns the database's tracking on if it is off, then each table's, each guarded
    so it may run again; disable undoes the tables' and only when asked the database's,
    last. A bracket in a name is doubled, in the identifier and in the N'' literal."""
    assert enable_statements([ORDERS, LINES]) == ENABLE
    assert disable_statements([ORDERS, LINES], database=False) == DISABLE_TABLES
    assert disable_statements([ORDERS, LINES], database=True) == [*DISABLE_TABLES, DISABLE_DATABASE]


def test_reads_are_the_golden_sql_with_bound_values() -> None:
    """A whole version taken: changes after it. Part of a version taken: the rest of that
    version by key, then later versions; every value (base, bound, version, key) bound."""
    sql, params = changes_statement(ORDERS, Position(40, 42), 99, 1000)
    assert (sql, params) == (READ_WHOLE, [40, 99, 42])
    sql, params = changes_statement(LINES, Position(6, 7, (3, 12)), 50, 500)
    assert (sql, params) == (READ_WITHIN, [6, 50, 7, 7, 3, 3, 12])
    assert versions_statement(ORDERS) == (VERSIONS, ["[sales].[orders]"])
    with pytest.raises(ValueError, match="no key"):
        changes_statement(Capture("x", TableRef("x"), ()), Position(1, 1), 2, 10)


def test_statements_parse_as_tsql() -> None:
    """Each guarded ALTER parses as an IF block whose condition is the catalog lookup (sqlglot
    keeps the ALTER DATABASE / ALTER TABLE ... CHANGE_TRACKING itself as a command); the reads
    parse as SELECTs. sqlglot does not know CHANGETABLE's CHANGES keyword, so the reads are
    parsed with it left out (the table and the bound version stay)."""
    guarded = [
        *enable_statements([ORDERS, LINES]),
        *disable_statements([ORDERS, LINES], database=True),
    ]
    for statement in guarded:
        (parsed,) = sqlglot.parse(statement, read="tsql")
        assert isinstance(parsed, exp.IfBlock), statement
        assert parsed.find(exp.Exists) is not None, statement
        (command,) = parsed.args["true"].expressions
        assert str(command.this).upper() == "ALTER", statement
        assert "CHANGE_TRACKING" in str(command.expression), statement
    reads = [READ_WHOLE, READ_WITHIN, VERSIONS]
    for sql in reads:
        (parsed,) = sqlglot.parse(sql.replace("CHANGETABLE(CHANGES ", "CHANGETABLE("), read="tsql")
        assert isinstance(parsed, exp.Select), sql
    (read,) = sqlglot.parse(READ_WITHIN.replace("CHANGES ", ""), read="tsql")
    assert read.args["limit"] is not None
    assert len(read.args["order"].expressions) == 3


def test_next_position_pages_by_version_and_key() -> None:
    """A short batch took everything up to the bound; a full one every version before its
    last row's (the new base) and that version up to the last row's key."""
    start = Position(10, 10)
    assert next_position(start, [(11, "I", 1)], 20, 3) == Position(20, 20)
    assert next_position(start, [], 20, 3) == Position(20, 20)
    full = [(11, "I", 1), (12, "U", 1), (12, "U", 2)]
    assert next_position(start, full, 20, 3) == Position(11, 12, (2,))
    same = [(12, "U", 3), (12, "U", 4), (12, "U", 5)]
    assert next_position(Position(11, 12, (2,)), same, 20, 3) == Position(11, 12, (5,))
    assert Position.parse(Position(11, 12, (5,)).saved()) == Position(11, 12, (5,))


# -- the config --------------------------------------------------------------------------------


def test_change_tracking_in_the_config(tmp_path: Path) -> None:
    """`capture: change_tracking` is accepted on an ODBC source; a watermark with it is
    refused, and so is a SQLite source, at the resource's YAML path with the fix."""
    text = """\
        sources:
          erp: {odbc: "DRIVER={ODBC Driver 18 for SQL Server};SERVER=db"}
          sample: {sqlite: ./sample.db}
        resources:
          orders: {source: erp, table: dbo.orders, events: {capture: change_tracking}}
        """
    config = parse_config(dedent(text), tmp_path / "agent.yaml", environ={})
    events = config.resources["orders"].events
    assert events is not None
    assert events.capture == "change_tracking"
    bad = text.replace("capture: change_tracking}", "capture: change_tracking, watermark: at}")
    bad += "  local: {source: sample, table: t, events: {capture: change_tracking}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(bad), tmp_path / "agent.yaml", environ={})
    found = [(p.path, p.message) for p in info.value.problems]
    assert ("resources.local.events.capture",
            "capture: change_tracking is SQL Server's Change Tracking, and this source is "
            "SQLite; use capture: triggers, or capture: poll with a watermark: column") in found  # fmt: skip
    assert any(path == "resources.orders.events" and "watermark: is for capture: poll; "
               "change_tracking needs none" in message for path, message in found)  # fmt: skip


async def test_catalog_refuses_other_dbmss_and_other_keys() -> None:
    """Once connected, a source that is not SQL Server is named at the resource's path; a
    key other than the table's primary key is refused (CHANGETABLE gives the primary key)."""
    postgres = RecordingAdapter("PostgreSQL", Driver())
    await postgres.open()
    _, problems = resolve_resource("orders", config_of(), postgres, TABLE)
    assert [(p.path, p.message) for p in problems] == [(
        "resources.orders.events.capture",
        "capture: change_tracking is SQL Server's Change Tracking, and this source is "
        "postgresql; use capture: triggers, or capture: poll with a watermark: column",
    )]  # fmt: skip
    mssql = RecordingAdapter("Microsoft SQL Server", Driver())
    await mssql.open()
    _, problems = resolve_resource("orders", config_of(key=["label"]), mssql, TABLE)
    assert [p.path for p in problems] == ["resources.orders.key"]
    assert "the table's primary key (id)" in problems[0].message
    await postgres.close()
    await mssql.close()


def test_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """install on a SQLite source is refused before the database; --disable-database-tracking
    is for uninstall, and not while another resource reads the database's tracking."""
    source = {"sqlite": str(tmp_path / "legacy.db")}
    tracked = {"source": "db", "table": "orders", "events": {"capture": "change_tracking"}}
    config = write_config(tmp_path, source, {"orders": tracked})
    code, _, err = cli(capsys, "install", "-c", config)
    assert code == 2
    assert "resources.orders.events.capture" in err
    assert "this source is SQLite" in err
    odbc = {"odbc": "DRIVER={ODBC Driver 18 for SQL Server};SERVER=nowhere"}
    config = write_config(
        tmp_path, odbc, {"orders": tracked, "items": {**tracked, "table": "items"}}
    )
    code, _, err = cli(capsys, "install", "-c", config, "--disable-database-tracking")
    assert (code, err) == (
        2,
        "bridgehead: --disable-database-tracking is for bridgehead events uninstall\n",
    )
    code, _, err = cli(capsys, "uninstall", "-c", config, "--resource", "orders",
                       "--disable-database-tracking")  # fmt: skip
    assert code == 2
    assert "would turn change tracking off for the database that resources.items" in err


# -- the reader, on a fake SQL Server ----------------------------------------------------------

TABLE = TableInfo(
    TableRef("orders", "sales"),
    (Column("id", ColumnType(Kind.INTEGER, "int"), nullable=False),
     Column("label", ColumnType(Kind.STRING, "nvarchar"))),
    primary_key=("id",),
)  # fmt: skip


def config_of(**extra: Any) -> ResourceConfig:
    return ResourceConfig.model_validate({"source": "db", "table": "sales.orders",
                                          "events": {"capture": "change_tracking"}, **extra})  # fmt: skip


@dataclass
class FakeServer:
    """What SQL Server would answer: the net changes CHANGETABLE keeps (version, operation,
    id), the current and minimum valid versions, and the table's rows."""

    driver: Driver = field(default_factory=Driver)
    changes: list[tuple[int, str, int]] = field(default_factory=list)
    rows: dict[int, str] = field(default_factory=dict)
    current: int | None = 0
    min_valid: int = 0
    resource: Resource | None = None

    def __post_init__(self) -> None:
        self.driver.answer = self.answer

    def change(self, version: int, op: str, *ids: int) -> None:
        """A transaction committed as `version` changed these rows (the latest change to a
        row replaces the earlier ones, as CHANGETABLE shows them)."""
        self.changes = [c for c in self.changes if c[2] not in ids]
        self.changes += [(version, op, i) for i in ids]
        for i in ids:
            if op == "D":
                self.rows.pop(i, None)
            else:
                self.rows[i] = f"{op} at {version}"
        self.current = version

    def answer(self, sql: str) -> Answer:
        params = self.driver.sent[-1][1]
        if sql.startswith("SELECT CHANGE_TRACKING_CURRENT_VERSION()"):
            return ["current", "min"], [
                (self.current, None if self.current is None else self.min_valid)
            ]
        if "CHANGETABLE(CHANGES [sales].[orders], ?)" in sql:
            return ["v", "op", "id"], self._page(sql, params)
        if sql.startswith("SELECT [id], [label] FROM [sales].[orders]"):
            return ["id", "label"], [(i, self.rows[i]) for i in params if i in self.rows]
        raise AssertionError(f"unexpected statement: {sql}")

    def _page(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        (limit,) = re.findall(r"TOP \((\d+)\)", sql)
        base, upto, version, *rest = params
        after = (rest[0], rest[1]) if rest else (version, float("inf"))
        taken = sorted(c for c in self.changes
                       if base < c[0] <= upto and (c[0], c[2]) > after)  # fmt: skip
        return taken[: int(limit)]


@pytest.fixture
async def server() -> Any:
    fake = FakeServer()
    adapter = RecordingAdapter("Microsoft SQL Server", fake.driver)
    await adapter.open()
    resource, problems = resolve_resource("orders", config_of(), adapter, TABLE)
    assert not problems
    assert resource is not None
    fake.resource = resource
    yield fake
    await adapter.close()


def reader_of(server: FakeServer, log: EventLog) -> ChangeTrackingReader:
    assert server.resource is not None
    return ChangeTrackingReader(server.resource, log)


async def events_of(log: EventLog) -> list[tuple[str, str, bytes]]:
    return [(e.type, e.subject, e.data) for e in await logged(log)]


async def logged(log: EventLog) -> list[Any]:
    """The log's events, oldest first."""
    return await asyncio.to_thread(log.read, 0, 10_000)


async def drain(reader: ChangeTrackingReader, batch: int = 3) -> None:
    while await reader.once() >= batch:
        pass


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridgehead.agent.events.tracked.BATCH", 3)


async def test_changes_become_events_in_version_order(server: FakeServer, tmp_path: Path) -> None:
    """The first start begins at the current version (earlier changes are no events); then
    inserts, updates and deletes become created, updated and deleted, with the row as
    served (the key alone for a delete), and seven rows one transaction changed are read
    across three batches of three, each once."""
    server.change(5, "I", 1, 2)
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    reader = reader_of(server, log)
    assert await reader.once() == 0
    assert (await events_of(log)) == []
    server.change(6, "I", 3)
    server.change(7, "U", 1)
    server.change(8, "D", 2)
    server.change(9, "U", *range(10, 17))
    await drain(reader)
    found = await events_of(log)
    assert found[:3] == [
        ("bridgehead.row.created", "3", b'{"id":3,"label":"I at 6"}'),
        ("bridgehead.row.updated", "1", b'{"id":1,"label":"U at 7"}'),
        ("bridgehead.row.deleted", "2", b'{"id":2}'),
    ]
    assert [s for _, s, _ in found[3:]] == [str(i) for i in range(10, 17)]
    assert len({e.id for e in (await logged(log))}) == 10
    await asyncio.to_thread(log.close)


async def test_a_reread_appends_nothing_twice(server: FakeServer, tmp_path: Path) -> None:
    """The same changes read again (the position set back) give the same ids, and the log
    keeps one event each."""
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    reader = reader_of(server, log)
    await reader.once()
    before = await asyncio.to_thread(log.polled, "orders")
    server.change(3, "I", 1, 2, 3, 4)
    await drain(reader)
    first = [e.id for e in (await logged(log))]
    await asyncio.to_thread(log.append_polled, "orders", [], position=before)
    await drain(reader_of(server, log))
    assert [e.id for e in (await logged(log))] == first
    assert len(first) == 4
    await asyncio.to_thread(log.close)


class Killed(Exception):
    """The process died here."""


class KilledLog(EventLog):
    """An event log whose process dies at the first append (nothing of it is written)."""

    killed = False

    def append_polled(self, resource: str, changes: Sequence[Change], **kwargs: Any) -> int:
        if changes and not self.killed:
            self.killed = True
            raise Killed("between the read and the append")
        return super().append_polled(resource, changes, **kwargs)


async def test_killed_between_read_and_append_loses_nothing(
    server: FakeServer, tmp_path: Path
) -> None:
    """A process killed after reading a batch, before appending it, reads it again after the
    restart (a new reader on the same log file): every change is an event, once."""
    log = await asyncio.to_thread(KilledLog, tmp_path / "events.db")
    await reader_of(server, log).once()
    server.change(4, "I", 1, 2, 3, 4, 5)
    with pytest.raises(Killed):
        await reader_of(server, log).once()
    assert (await events_of(log)) == []
    await asyncio.to_thread(log.close)
    log = await asyncio.to_thread(KilledLog, tmp_path / "events.db")
    log.killed = True
    await drain(reader_of(server, log))
    assert [s for _, s, _ in (await events_of(log))] == ["1", "2", "3", "4", "5"]
    await asyncio.to_thread(log.close)


async def test_the_position_survives_a_new_event_log(server: FakeServer, tmp_path: Path) -> None:
    """The position is on disk with the events: a new EventLog on the same file, with a new
    reader, goes on after the last change taken, even part-way through a version."""
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    await reader_of(server, log).once()
    server.change(2, "I", 1, 2, 3, 4, 5)
    assert await reader_of(server, log).once() == 3
    await asyncio.to_thread(log.close)
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    assert await asyncio.to_thread(log.polled, "orders") == [1, 2, 3]
    server.change(3, "I", 6)
    await drain(reader_of(server, log))
    assert [s for _, s, _ in (await events_of(log))] == ["1", "2", "3", "4", "5", "6"]
    await asyncio.to_thread(log.close)


async def test_changes_cleaned_up_before_the_read(
    server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored position older than the table's minimum valid version: one error says the
    changes were cleaned up, events were missed and the fix; reading goes on from the
    current version, and later changes are events again."""
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    await reader_of(server, log).once()
    server.change(10, "I", 1, 2)
    server.min_valid = 9
    with caplog.at_level(logging.ERROR, "bridgehead.events"):
        assert await reader_of(server, log).once() == 0
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "cleaned up changes" in message
    assert "events were missed" in message
    assert "longer CHANGE_RETENTION" in message
    assert await asyncio.to_thread(log.polled, "orders") == [10, 10]
    server.change(11, "U", 1)
    await drain(reader_of(server, log))
    assert [(t, s) for t, s, _ in (await events_of(log))] == [("bridgehead.row.updated", "1")]
    await asyncio.to_thread(log.close)


async def test_tracking_off_is_one_clear_error(server: FakeServer, tmp_path: Path) -> None:
    """With change tracking off (the versions NULL) a read fails naming the command to run."""
    server.current = None
    log = await asyncio.to_thread(EventLog, tmp_path / "events.db")
    with pytest.raises(TrackingOff, match="run bridgehead events install"):
        await reader_of(server, log).once()
    await asyncio.to_thread(log.close)


class TrackedServer(RecordingAdapter):
    """A fake SQL Server that holds `sales.orders` (and records what it is sent)."""

    def _describe(self, job: Any, table: TableRef) -> TableInfo | None:
        return TABLE if table == TABLE.ref else None


def test_install_and_uninstall_show_and_run_the_statements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes the statements are shown and nothing is sent; with --yes each runs on
    its own, outside a transaction (ALTER DATABASE may not run in one); uninstall turns the
    database's tracking off only with --disable-database-tracking."""
    driver = Driver()
    monkeypatch.setattr("bridgehead.agent.events_cli.registry.load",
                        lambda name: lambda settings: TrackedServer("Microsoft SQL Server", driver))  # fmt: skip
    odbc = {"odbc": "DRIVER={ODBC Driver 18 for SQL Server};SERVER=db"}
    tracked = {"source": "db", "table": "sales.orders", "events": {"capture": "change_tracking"}}
    config = write_config(tmp_path, odbc, {"orders": tracked})
    code, out, _ = cli(capsys, "install", "-c", config)
    assert code == 0
    assert out == (f"-- sources.db (mssql): install for orders\n{ENABLE[0]}\n\n{ENABLE[1]}\n\n"
                   "nothing was run; add --yes to run these statements\n")  # fmt: skip
    assert not [sql for sql, _ in driver.sent if "CHANGE_TRACKING" in sql]
    code, out, _ = cli(capsys, "install", "-c", config, "--yes")
    assert code == 0
    assert out.endswith("sources.db: install done (2 statements)\n")
    run = [sql for sql, _ in driver.sent if "CHANGE_TRACKING" in sql or sql.startswith("--")]
    assert run == ENABLE[:2]
    driver.sent.clear()
    code, out, _ = cli(capsys, "uninstall", "-c", config, "--yes")
    assert [sql for sql, _ in driver.sent if "CHANGE_TRACKING" in sql] == DISABLE_TABLES[:1]
    driver.sent.clear()
    code, out, _ = cli(capsys, "uninstall", "-c", config, "--yes", "--disable-database-tracking")
    sent = [sql for sql, _ in driver.sent if "CHANGE_TRACKING" in sql]
    assert sent == [DISABLE_TABLES[0], DISABLE_DATABASE]
