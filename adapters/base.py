"""The `Adapter` protocol every database adapter implements, and the settings they all share.

An adapter is async at its surface and never blocks the event loop: blocking drivers run on
the adapter's own bounded thread pool (see `adapters.pooled`). Results come back in batches
so callers can stream them with back-pressure. Callers say what they want in the statement
model of `adapters.sql`; the adapter writes the SQL (through its dialect) and binds the values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bridgehead.adapters.dialects import Dialect
from bridgehead.adapters.dialects.decoders import Decoder
from bridgehead.adapters.sql import Call, Delete, Insert, Query, Select, Update
from bridgehead.adapters.types import (
    ColumnType,
    Kind,
    TableEntry,
    TableInfo,
    TableRef,
    ValueRules,
)

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
class Called:
    """What a procedure call returned: its result sets, and its output parameters' row."""

    result_sets: list[ResultSet]
    output: ResultSet | None
    """The OUT and INOUT values (one row), where the procedure has any."""


@dataclass(frozen=True)
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

    async def execute(self, sql: str, params: Sequence[Any]) -> Outcome:
        """Run a statement the config's owner or a dialect wrote (`bridgehead check`)."""

    async def select(self, select: Select) -> list[Row]:
        """The selected rows, up to the select's limit (which it must have)."""

    async def has_rows_beyond(self, select: Select, count: int) -> bool | None:
        """Whether `select` gives more than `count` rows; None where the DBMS cannot skip."""

    async def insert(self, insert: Insert) -> Outcome:
        """One row; `rows` holds its `returning` columns where the DBMS returns them."""

    async def insert_all(self, inserts: Sequence[Insert]) -> list[int]:
        """Many rows inserted, each by its own statement; the row count of each."""

    async def insert_each(self, inserts: Sequence[Insert]) -> list[Outcome]:
        """Many rows inserted, each by its own statement; each one's outcome, with the key
        it generated in `rows` where the DBMS tells it."""

    async def generated_key(self) -> Row | None:
        """The key the last insert generated; None where the DBMS cannot tell it."""

    async def update(self, update: Update) -> Outcome: ...

    async def delete(self, delete: Delete) -> Outcome: ...


class Adapter(Protocol):
    """One database source. Every method may raise `adapters.errors.SourceError`."""

    @property
    def source(self) -> str: ...

    @property
    def dialect(self) -> Dialect: ...

    @property
    def value_rules(self) -> ValueRules:
        """What this source stores exactly as sent (its DBMS's and its driver's rules)."""

    @property
    def naive_utc_kinds(self) -> frozenset[Kind]:
        """Kinds the driver returns as naive datetimes meaning UTC."""

    def fetches_as_text(self, column_type: ColumnType) -> bool:
        """Whether columns of this type are read as their text (`Select.as_text`)."""

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        """Turns what the driver returns for this type into the canonical value."""

    server_version: str | None
    """The DBMS's version as its driver reports it, once connected (None if it says none)."""

    async def open(self) -> None:
        """Connect once to learn the DBMS (and fail early if it is unreachable)."""

    async def tables(self) -> list[TableEntry]:
        """Every table and view the source's user can see, system catalogs left out."""

    async def unique_keys(self, table: TableRef) -> list[tuple[str, ...]]:
        """The columns of each unique index on `table`, in index order."""

    async def describe(self, table: TableRef) -> TableInfo | None:
        """The table's columns, types and primary key; None if it does not exist."""

    async def select(self, select: Select) -> list[Row]:
        """The selected rows, up to the select's limit (which it must have)."""

    coalesce_lookups: bool
    """Whether keyed reads arriving together are worth answering with one statement."""

    async def lookup(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        """A rendered SELECT reading at most one row through its table's primary key, run as
        cheaply as the adapter can run so small a read."""

    async def fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        """Run a statement a dialect wrote and return up to `max_rows` rows (`check`)."""

    async def run_query(self, query: Query, max_rows: int) -> ResultSet:
        """A named query's columns and its first `max_rows` rows."""

    async def query_has_rows_beyond(self, query: Query, count: int) -> bool | None:
        """Whether a named query gives more than `count` rows; None where the DBMS cannot
        skip rows."""

    def stream_query(self, query: Query, batch_size: int) -> AsyncIterator[ResultSet]:
        """A named query's rows in batches, holding one connection meanwhile."""

    async def describe_query(self, query: Query) -> tuple[tuple[str, ColumnType], ...] | None:
        """A named query's result columns as the database describes them; None where the
        DBMS has no way to."""

    async def call_procedure(self, call: Call, max_rows: int) -> Called:
        """A procedure's result sets (up to `max_rows` rows each) and its output parameters."""

    def transaction(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: writes, or (snapshot) several reads from one consistent state."""

    async def close(self) -> None:
        """Close every connection and stop the thread pool."""


class AdapterFactory(Protocol):
    """What the registry loads by name: builds an adapter for a source."""

    def __call__(self, settings: SourceSettings) -> Adapter: ...
