"""The `Adapter` protocol every database adapter implements, and the settings they all share.

An adapter is async at its surface and never blocks the event loop: blocking drivers run on
the adapter's own bounded thread pool (see `adapters.pooled`). Results come back in batches
so callers can stream them with back-pressure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bridgehead.adapters.dialects import Dialect
from bridgehead.adapters.types import TableInfo, TableRef, ValueRules

Row = tuple[Any, ...]


@dataclass(frozen=True)
class SourceSettings:
    """What the config says about one source, after validation and secret substitution."""

    name: str
    adapter: str
    target: str = field(repr=False)
    """The adapter's own address: an ODBC connection string or a SQLite file path."""
    pool_size: int = 4
    query_timeout: float = 30.0
    connect_timeout: float = 10.0
    base_dir: Path = Path()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one statement in a transaction returned: its rows (if any) and rows affected."""

    rows: list[Row] | None
    rowcount: int
    columns: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResultSet:
    columns: list[str]
    rows: list[Row]


@dataclass(frozen=True)
class RowStream:
    """A statement's column names and its rows in batches, read as they are consumed."""

    columns: list[str]
    batches: AsyncIterator[list[Row]]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A source's connection pool at one moment (for the admin page and metrics)."""

    in_use: int
    size: int
    waiting: int = 0
    """Callers waiting for a connection now."""
    waited: float = 0.0
    """Seconds callers have spent waiting for a connection since the pool started."""


class Transaction(Protocol):
    """Statements on one connection, committed together when the block ends, or not at all."""

    async def execute(self, sql: str, params: Sequence[Any]) -> Outcome: ...

    async def fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]: ...


class Adapter(Protocol):
    """One database source. Every method may raise `adapters.errors.SourceError`."""

    @property
    def source(self) -> str: ...

    @property
    def dialect(self) -> Dialect: ...

    @property
    def value_rules(self) -> ValueRules:
        """What this source stores exactly as sent (its DBMS's and its driver's rules)."""

    async def open(self) -> None:
        """Connect once to learn the DBMS (and fail early if it is unreachable)."""

    async def describe(self, table: TableRef) -> TableInfo | None:
        """The table's columns, types and primary key; None if it does not exist."""

    async def fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        """Run a statement and return up to `max_rows` rows."""

    async def run(self, sql: str, params: Sequence[Any], max_rows: int) -> ResultSet:
        """Run one configured statement (a named query): its columns and first rows."""

    async def call(
        self, statements: Sequence[tuple[str, Sequence[Any]]], max_rows: int
    ) -> list[ResultSet]:
        """Run statements in order on one connection (a procedure call and what reads its
        output parameters) and return every result set they produce."""

    def stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> AbstractAsyncContextManager[RowStream]:
        """Run a statement and yield its rows in batches, holding one connection meanwhile."""

    def transaction(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: writes, or (snapshot) several reads from one consistent state."""

    async def close(self) -> None:
        """Close every connection and stop the thread pool."""


class AdapterFactory(Protocol):
    """What the registry loads by name: builds an adapter for a source."""

    def __call__(self, settings: SourceSettings) -> Adapter: ...
