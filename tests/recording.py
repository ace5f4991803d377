# An adapter on a recording DB-API driver: the pooled adapter as it is (threads, leases,
# transactions), its dialect chosen from a given SQL_DBMS_NAME, and every statement it sends
# written down, so the SQL of each statement method can be checked for DBMSs with no server
# here (SQL Server, Oracle, DB2, Access) as for the others.
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridgehead.adapters import errors
from bridgehead.adapters.base import SourceSettings
from bridgehead.adapters.jobs import Job
from bridgehead.adapters.pooled import PooledAdapter
from bridgehead.adapters.types import TableEntry, TableInfo, TableRef

Answer = tuple[list[str], list[tuple[Any, ...]]]
"""A statement's result: its column names and rows ([] and [] for a statement with none)."""


@dataclass
class Driver:
    """What the fake database was sent, and how it answers (`answer(sql)`; no rows by default)."""

    sent: list[tuple[str, list[Any]]] = field(default_factory=list)
    answer: Callable[[str], Answer] = lambda sql: ([], [])


class _Cursor:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.description: list[tuple[str]] | None = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        self._driver.sent.append((sql, list(params)))
        columns, self._rows = self._driver.answer(sql)
        self.description = [(name,) for name in columns] if columns else None
        self.rowcount = len(self._rows) if columns else 1
        return self

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.fetchmany(len(self._rows))

    def close(self) -> None:
        return None


class _Connection:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def cursor(self) -> _Cursor:
        return _Cursor(self._driver)

    def close(self) -> None:
        return None


class RecordingAdapter(PooledAdapter):
    """A pooled adapter whose connections write down what they are sent."""

    def __init__(self, dbms_name: str, driver: Driver) -> None:
        super().__init__(SourceSettings(name="recorded", adapter="recording", target=""))
        self._dbms = dbms_name
        self.driver = driver

    def statements(self) -> list[tuple[str, list[Any]]]:
        """The statements sent, without each connection's session set-up."""
        setup = self.dialect.session_setup
        return [(sql, params) for sql, params in self.driver.sent if sql not in setup]

    def _connect(self) -> Any:
        return _Connection(self.driver)

    def _dbms_name(self, conn: Any) -> str:
        return self._dbms

    def _interrupt(self, job: Job) -> None:
        return None

    def _translate(self, exc: Exception) -> errors.SourceError | None:
        return exc if isinstance(exc, errors.SourceError) else None

    def _describe(self, job: Job, table: TableRef) -> TableInfo | None:
        return None

    def _tables(self, job: Job) -> list[TableEntry]:
        return []

    def _unique_keys(self, job: Job, table: TableRef) -> list[tuple[str, ...]]:
        return []

    def _begin(self, job: Job, snapshot: bool) -> None:
        self.driver.sent.append(("-- begin snapshot" if snapshot else "-- begin", []))

    def _end(self, job: Job, commit: bool) -> None:
        self.driver.sent.append(("-- commit" if commit else "-- rollback", []))
