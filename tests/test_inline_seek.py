"""SQLite primary-key lookups on the event loop (`adapters.inline`): the same rows as the pool
gives, and every case the loop must not wait out handed to the pool: a locked database, a
statement past the step budget, a failure (the pool reports it; the connection is opened anew).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridgehead.adapters import errors, inline
from bridgehead.adapters.base import SourceSettings
from bridgehead.adapters.sql import Compare, Op, Select
from bridgehead.adapters.sqlite import SQLiteAdapter
from bridgehead.adapters.types import TableRef

ROWS = 5_000


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i % 7) for i in range(ROWS)]
        )
    sqlite3.connect(path).close()


def by_id(key: int) -> Select:
    return Select(TableRef("items"), ("id", "name"), where=Compare("id", Op.EQ, key), limit=2)


class Counted(SQLiteAdapter):
    """Counts the statements that ran on the pool."""

    pooled = 0

    async def fetch(self, sql: str, params: Any, max_rows: int) -> list[Any]:
        self.pooled += 1
        return await super().fetch(sql, params, max_rows)


@pytest.fixture
async def adapter(tmp_path: Path) -> AsyncIterator[Counted]:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    adapter = Counted(SourceSettings("db", "sqlite", str(tmp_path / "t.db")))
    await adapter.open()
    yield adapter
    await adapter.close()


async def look(adapter: Counted, select: Select) -> list[Any]:
    rendered = adapter.dialect.render_select(select)
    return await adapter.lookup(rendered.sql, rendered.params, 2)


async def settled(adapter: Counted) -> None:
    """Until the loop's own connection is open (the first lookup asks for it)."""
    await look(adapter, by_id(1))
    for _ in range(200):
        if adapter._inline._conn is not None:
            break
        await asyncio.sleep(0.01)
    assert adapter._inline._conn is not None
    adapter.pooled = 0


async def test_lookups_run_on_the_loop_and_match_the_pool(adapter: Counted) -> None:
    await settled(adapter)
    for key in (0, 17, 4_999, 5_000):
        assert await look(adapter, by_id(key)) == await adapter.select(by_id(key))
    assert adapter.pooled == 4  # the four selects; not one lookup


async def test_a_statement_past_the_step_budget_runs_on_the_pool(adapter: Counted) -> None:
    """A scan of every row is interrupted on the loop and answered whole by the pool."""
    await settled(adapter)
    scan = Select(TableRef("items"), ("id",), where=Compare("name", Op.EQ, "item 4321"), limit=2)
    assert await look(adapter, scan) == [(4321,)]
    assert adapter.pooled == 1
    assert adapter._inline._conn is not None  # the connection is sound: kept
    assert await look(adapter, by_id(3)) == [(3, "item 3")]
    assert adapter.pooled == 1


async def test_a_locked_database_is_waited_for_on_the_pool_not_the_loop(
    adapter: Counted, tmp_path: Path
) -> None:
    await settled(adapter)
    writer = sqlite3.connect(tmp_path / "t.db", isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(writer.execute, "BEGIN EXCLUSIVE")
    released = threading.Timer(0.3, writer.execute, ("ROLLBACK",))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(ticker())
    released.start()
    try:
        assert await look(adapter, by_id(42)) == [(42, "item 42")]
    finally:
        beat.cancel()
        released.join()
        await asyncio.to_thread(writer.close)
    assert adapter.pooled == 1
    assert ticks >= 10  # the loop went on while the pool waited for the lock


async def test_a_failure_is_reported_by_the_pool_and_the_connection_renewed(
    adapter: Counted, tmp_path: Path
) -> None:
    await settled(adapter)
    first = adapter._inline._conn

    def rename_table(old: str, new: str) -> None:
        with sqlite3.connect(tmp_path / "t.db") as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")

    await asyncio.to_thread(rename_table, "items", "gone")
    with pytest.raises(errors.SourceError, match="no such table"):
        await look(adapter, by_id(1))
    assert adapter._inline._conn is None  # dropped: the file may have been replaced
    await asyncio.to_thread(rename_table, "gone", "items")
    await settled(adapter)
    assert adapter._inline._conn is not first
    assert await look(adapter, by_id(9)) == [(9, "item 9")]
    assert adapter.pooled == 0


def test_the_budget_counts_each_lookup_afresh(tmp_path: Path) -> None:
    """SQLite counts progress steps across statements; a budget kept per lookup never
    interrupts a run of small seeks (it did once every ~60 when it was not)."""
    make_db(tmp_path / "t.db")
    seek = inline.InlineSeek(opener=None)  # type: ignore[arg-type]
    conn = seek.prepare(sqlite3.connect(tmp_path / "t.db", isolation_level=None))
    seek._conn = conn
    sql = 'SELECT "id" FROM "items" WHERE "id" = ?'
    assert all(seek.seek(sql, [key % ROWS], 2) == [(key % ROWS,)] for key in range(3_000))
    assert seek.seek('SELECT count(*) FROM items WHERE name LIKE "%9%"', [], 2) is None
    seek.close()
