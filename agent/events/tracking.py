"""SQL Server Change Tracking's statements: turning it on and off for the captured tables, and
reading a table's changes after a position.

Sans-IO: for a resource (its table and key columns) the statements, each with its bound
parameters; `agent.events.tracked` runs them. Identifiers come only from the config and are
quoted by SQL Server's dialect; every value (a version, a key value, a table's name given to
OBJECT_ID) is a bound parameter.

Rules:
- Enable is idempotent (each ALTER guarded by the catalog view that says it is done), so
  install may run again; disable removes exactly what enable made: each table's tracking,
  and the database's only when asked (other applications may rely on it).
- Changes are read by keyset on (SYS_CHANGE_VERSION, key), in batches, up to a version
  frozen per read (CHANGE_TRACKING_CURRENT_VERSION() read first), so the many rows one
  transaction changes (they share a version) are neither split nor repeated across batches.
- A `Position` says where reading stands: `base`, the version every change through which has
  been taken (CHANGETABLE(CHANGES t, base) reads what came after), and the last (version,
  key) taken, the key empty when that whole version was taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridgehead.adapters.dialects.mssql import SQLServerDialect
from bridgehead.agent.events.ddl import Capture

RETENTION = "2 DAYS"
VERSION, OPERATION = "SYS_CHANGE_VERSION", "SYS_CHANGE_OPERATION"
_D = SQLServerDialect()

ENABLE_DATABASE = (
    "IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())\n"
    f"ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = {RETENTION}, "
    "AUTO_CLEANUP = ON)"
)
DISABLE_DATABASE = (
    "IF EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())\n"
    "ALTER DATABASE CURRENT SET CHANGE_TRACKING = OFF"
)
VERSIONS = (
    "SELECT CHANGE_TRACKING_CURRENT_VERSION(), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?))"
)
"""The database's current version and the oldest a table's changes can be read from: both
NULL when change tracking is off (for the database, or for the table)."""


@dataclass(frozen=True)
class Position:
    base: int
    version: int
    key: tuple[Any, ...] = ()

    @classmethod
    def start(cls, version: int) -> Position:
        """Reading from `version` on: nothing at or before it is an event."""
        return cls(version, version)

    @classmethod
    def parse(cls, saved: Sequence[Any]) -> Position:
        """The position as `saved` (see `saved`) holds it."""
        return cls(int(saved[0]), int(saved[1]), tuple(saved[2:]))

    def saved(self) -> list[Any]:
        """As the event log keeps it: [base, version, *key]."""
        return [self.base, self.version, *self.key]


def table_text(capture: Capture) -> str:
    """The table's quoted name, as OBJECT_ID takes it (bound as a parameter)."""
    return _D.table(capture.table)


def _literal(capture: Capture) -> str:
    return "N'" + table_text(capture).replace("'", "''") + "'"


def _tracked(capture: Capture) -> str:
    return (
        f"SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID({_literal(capture)})"
    )


def enable_statements(captures: Sequence[Capture]) -> list[str]:
    """The database's change tracking (if off), then each table's, in the order to run them."""
    statements = [ENABLE_DATABASE]
    for capture in captures:
        statements.append(
            f"IF NOT EXISTS ({_tracked(capture)})\nALTER TABLE {table_text(capture)} "
            "ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)"
        )
    return statements


def disable_statements(captures: Sequence[Capture], *, database: bool) -> list[str]:
    """Each table's change tracking turned off; with `database`, the database's too (after
    the tables: SQL Server refuses it while a table is tracked)."""
    statements = [
        f"IF EXISTS ({_tracked(c)})\nALTER TABLE {table_text(c)} DISABLE CHANGE_TRACKING"
        for c in captures
    ]
    return [*statements, DISABLE_DATABASE] if database else statements


def _ct(column: str) -> str:
    return f"CT.{_D.quote(column)}"


def _after(columns: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`(a, b, ...) > (x, y, ...)` spelled out, NULL-free (a tracked table's primary key)."""
    head = _ct(columns[0])
    if len(columns) == 1:
        return f"{head} > ?", [values[0]]
    rest, params = _after(columns[1:], values[1:])
    return f"({head} > ? OR ({head} = ? AND {rest}))", [values[0], values[0], *params]


def changes_statement(
    capture: Capture, position: Position, upto: int, limit: int
) -> tuple[str, list[Any]]:
    """The next `limit` changes after `position`, up to version `upto`, in (version, key)
    order: each row (SYS_CHANGE_VERSION, SYS_CHANGE_OPERATION, *key columns)."""
    if not capture.key:
        raise ValueError(f"resource {capture.resource!r} has no key to read changes by")
    columns = ", ".join(_ct(c) for c in (VERSION, OPERATION, *capture.key))
    version = _ct(VERSION)
    where, params = f"{version} > ?", [position.base, upto, position.version]
    if position.key:
        after, more = _after(capture.key, position.key)
        where = f"{where} OR ({version} = ? AND {after})"
        params += [position.version, *more]
    order = ", ".join(_ct(c) for c in (VERSION, *capture.key))
    sql = (
        f"SELECT TOP ({int(limit)}) {columns} "
        f"FROM CHANGETABLE(CHANGES {table_text(capture)}, ?) AS CT "
        f"WHERE {version} <= ? AND ({where}) ORDER BY {order}"
    )
    return sql, params


def versions_statement(capture: Capture) -> tuple[str, list[Any]]:
    """The current version and the table's minimum valid version, in one row."""
    return VERSIONS, [table_text(capture)]


def next_position(
    position: Position, rows: Sequence[Sequence[Any]], upto: int, limit: int
) -> Position:
    """Where reading stands after `rows`, the answer to `changes_statement(capture,
    position, upto, limit)`: a short batch took everything through `upto`; a full one took
    every version before its last row's, and its last row's up to that row's key."""
    if len(rows) < limit:
        return Position.start(max(upto, position.version))
    last = rows[-1]
    version = int(last[0])
    return Position(max(position.base, version - 1), version, tuple(last[2:]))
