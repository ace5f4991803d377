"""What the API asks of a source (the model of `adapters.sql`), rendered and run: the adapter's
half of "the API says what, the adapter says how".

`SourceStatements` and `TransactionStatements` give an adapter and its transactions their
statement methods, each built on a few primitives an adapter provides (run one statement, fetch
rows, stream rows). Every statement is rendered by the source's dialect from the model alone,
and every value goes through the dialect's `bind` to a placeholder, so the API layer makes no
SQL text of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from bridgehead.adapters.base import Called, Outcome, ResultSet, Row, RowStream
from bridgehead.adapters.dialects import Dialect
from bridgehead.adapters.dialects.decoders import Decoder
from bridgehead.adapters.sql import Call, Delete, Insert, Query, Select, Update
from bridgehead.adapters.types import ColumnType, Kind

DESCRIBED_ROWS = 10_000
"""The most rows a query's description reads (one per result column)."""


def _cap(select: Select) -> int:
    if select.limit is None:
        raise ValueError("a Select run through an adapter needs a limit")
    return select.limit


def _shape(insert: Insert) -> tuple[Any, ...]:
    return (insert.table, insert.columns, insert.returning)


def _probe(select: Select, count: int) -> Select:
    """One row of `select` past its first `count` rows, its first column only, as stored."""
    return replace(select, columns=select.columns[:1], as_text=frozenset(), offset=count, limit=1)


class TransactionStatements(ABC):
    """The statements of a transaction, on the one connection it holds."""

    @property
    @abstractmethod
    def dialect(self) -> Dialect: ...

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any]) -> Outcome: ...

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]: ...

    @abstractmethod
    async def _execute_each(
        self, sql: str, rows: Sequence[Sequence[Any]], key_sql: str | None
    ) -> list[Outcome]: ...

    async def select(self, select: Select) -> list[Row]:
        """The selected rows, up to the select's limit (which it must have)."""
        rendered = self.dialect.render_select(select)
        return await self._fetch(rendered.sql, rendered.params, _cap(select))

    async def insert_all(self, inserts: Sequence[Insert]) -> list[int]:
        """Many rows inserted, each by its own statement (each checked and counted), runs of
        rows into the same columns sent together; the row count of each, in order."""
        counts: list[int] = []
        for sql, batch in self._runs(inserts):
            counts += [outcome.rowcount for outcome in await self._execute_each(sql, batch, None)]
        return counts

    async def insert_each(self, inserts: Sequence[Insert]) -> list[Outcome]:
        """As `insert_all`, each insert's outcome with the key it generated in `rows`: what
        its `returning` returned, or else (a driver that returns nothing, as SQLite's ODBC
        driver) the dialect's generated-key query's row; None where the DBMS has neither."""
        outcomes: list[Outcome] = []
        key_sql = self.dialect.generated_key_sql
        for sql, batch in self._runs(inserts):
            outcomes += await self._execute_each(sql, batch, key_sql)
        return outcomes

    def _runs(self, inserts: Sequence[Insert]) -> Iterator[tuple[str, list[list[Any]]]]:
        """Each run of inserts into the same columns: its SQL and its rows of bound values. An
        insert's SQL depends on its table and columns alone, and its parameters are its bound
        values (as `render_insert` makes them), so each run is rendered once."""
        bind, start = self.dialect.bind, 0
        while start < len(inserts):
            first, end = inserts[start], start + 1
            shape = _shape(first)
            while end < len(inserts) and _shape(inserts[end]) == shape:
                end += 1
            sql = self.dialect.render_insert(first).sql
            yield sql, [[bind(v) for v in i.values] for i in inserts[start:end]]
            start = end

    async def has_rows_beyond(self, select: Select, count: int) -> bool | None:
        """Whether `select` gives more than `count` rows, read as one row at most; None where
        the DBMS cannot skip rows."""
        if not self.dialect.offsets:
            return None
        rendered = self.dialect.render_select(_probe(select, count))
        return bool(await self._fetch(rendered.sql, rendered.params, 1))

    async def insert(self, insert: Insert) -> Outcome:
        """One row inserted; `rows` holds its `returning` columns where the DBMS returns them."""
        rendered = self.dialect.render_insert(insert)
        return await self.execute(rendered.sql, rendered.params)

    async def generated_key(self) -> Row | None:
        """The key the last insert generated (a one-value row); None where the DBMS cannot
        tell it apart from the insert's own answer."""
        sql = self.dialect.generated_key_sql
        if sql is None:
            return None
        return (await self._fetch(sql, (), 1))[0]

    async def update(self, update: Update) -> Outcome:
        rendered = self.dialect.render_update(update)
        return await self.execute(rendered.sql, rendered.params)

    async def delete(self, delete: Delete) -> Outcome:
        rendered = self.dialect.render_delete(delete)
        return await self.execute(rendered.sql, rendered.params)


class SourceStatements(ABC):
    """The statements an adapter runs outside a transaction of the caller's, and what the
    source's dialect says about its values."""

    @property
    @abstractmethod
    def dialect(self) -> Dialect: ...

    @abstractmethod
    async def fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]: ...

    @abstractmethod
    async def _result(self, sql: str, params: Sequence[Any], max_rows: int) -> ResultSet: ...

    @abstractmethod
    async def _result_sets(
        self, statements: Sequence[tuple[str, Sequence[Any]]], max_rows: int
    ) -> list[ResultSet]: ...

    @abstractmethod
    def _stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> AbstractAsyncContextManager[RowStream]: ...

    @abstractmethod
    def transaction(
        self, *, snapshot: bool = False
    ) -> AbstractAsyncContextManager[TransactionStatements]: ...

    # -- what the source's driver does with values --------------------------------------------

    def fetches_as_text(self, column_type: ColumnType) -> bool:
        """Whether columns of this type are read as their text (`Select.as_text`)."""
        return self.dialect.fetch_as_text(column_type)

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        """Turns what the driver returns for this type into the canonical value."""
        return self.dialect.decoder(column_type)

    @property
    def naive_utc_kinds(self) -> frozenset[Kind]:
        """Kinds the driver returns as naive datetimes meaning UTC."""
        return self.dialect.naive_utc

    # -- resources -----------------------------------------------------------------------------

    async def select(self, select: Select) -> list[Row]:
        """The selected rows, up to the select's limit (which it must have)."""
        rendered = self.dialect.render_select(select)
        return await self.fetch(rendered.sql, rendered.params, _cap(select))

    coalesce_lookups = True
    """Whether keyed reads arriving together are worth one statement (`agent.api.coalesce`):
    yes where a statement costs a round trip; not where `lookup` is cheaper still."""

    async def lookup(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        """A rendered SELECT reading at most one row through its table's primary key: as
        `fetch`, or some cheaper way an adapter has for so small a read (SQLite:
        `adapters.inline`)."""
        return await self.fetch(sql, params, max_rows)

    # -- named queries and procedures ----------------------------------------------------------

    async def run_query(self, query: Query, max_rows: int) -> ResultSet:
        """A named query's columns and its first `max_rows` rows."""
        rendered = self.dialect.render_query(query)
        return await self._result(rendered.sql, rendered.params, max_rows)

    async def query_has_rows_beyond(self, query: Query, count: int) -> bool | None:
        """Whether a named query gives more than `count` rows (it runs once more, sending one
        row at most); None where the DBMS cannot skip rows."""
        rendered = self.dialect.render_query(query, wrap=False)
        probe = self.dialect.beyond_sql(rendered.sql, count)
        if probe is None:
            return None
        return bool(await self.fetch(probe, rendered.params, 1))

    async def stream_query(self, query: Query, batch_size: int) -> AsyncIterator[ResultSet]:
        """A named query's rows in batches: from a server-side cursor in a snapshot
        transaction where the dialect has one, else from the driver's own cursor."""
        rendered = self.dialect.render_query(query)
        cursor = self.dialect.cursor_statements(rendered.sql, batch_size)
        if cursor is None:
            async with self._stream(rendered.sql, rendered.params, batch_size) as result:
                async for batch in result.batches:
                    yield ResultSet(result.columns, batch)
            return
        declare, fetch = cursor
        async with self.transaction(snapshot=True) as tx:
            await tx.execute(declare, rendered.params)
            while True:
                fetched = await tx.execute(fetch, ())
                if not fetched.rows:
                    return
                yield ResultSet(fetched.columns, fetched.rows)

    async def describe_query(self, query: Query) -> tuple[tuple[str, ColumnType], ...] | None:
        """A named query's result columns and their types, as the database describes them
        (leaving nothing behind); None where the DBMS has no way to."""
        steps = self.dialect.render_description(query)
        if steps is None:
            return None
        sets = await self._result_sets([(step, ()) for step in steps], DESCRIBED_ROWS)
        described = sets[-1].rows if sets else []
        column_type = self.dialect.column_type
        return tuple((str(row[0]), column_type(str(row[1] or ""))) for row in described)

    async def call_procedure(self, call: Call, max_rows: int) -> Called:
        """A procedure's result sets (up to `max_rows` rows each) and its output parameters."""
        plan = self.dialect.render_call(call.procedure, call.params)
        bind = self.dialect.bind
        steps = [(sql, [bind(call.values[n]) for n in bound]) for sql, bound in plan.steps]
        sets = await self._result_sets(steps, max_rows)
        output = sets.pop() if plan.outputs_in_last_set and sets else None
        return Called(sets, output)
