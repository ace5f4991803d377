"""SQLite lookups by primary key run on the event loop itself, within a hard bound.

A keyed read of an embedded SQLite file is a B-tree seek of some 30 VM steps (about 5 µs);
handing it to a pool thread and back costs some 15 times that. So a lookup that reads at most
one row through its table's primary key runs on the loop, on a connection of its own that
never waits and never runs long:

- `busy_timeout` 0: a database locked by a writer is not waited for (SQLITE_BUSY);
- a progress handler interrupts the statement past `STEPS` VM steps;
- any error at all (those two, or a real failure) hands the lookup back to the pool, which runs
  it as every other statement and says what went wrong. After a real failure the connection
  is closed (the file may have been replaced) and opened anew on a pool thread later.

What the bound does not cover is a page read from disk when the file is not in the OS cache:
one seek touches a handful of pages. Everything else about SQLite stays on the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bridgehead.adapters.base import Row

STEPS = 1_000
"""The most VM steps a lookup runs on the loop: some 30 times what a primary-key seek takes."""
GRAIN = 100
"""SQLite calls the progress handler every GRAIN steps, counting across statements, so the
budget is counted down in GRAINs from the start of each lookup: it ends within a GRAIN of
STEPS."""

log = logging.getLogger(__name__)


class InlineSeek:
    """The loop's own connection to one SQLite file: `opener(self)` opens one on a pool thread
    and passes it through `self.prepare` there."""

    def __init__(self, opener: Callable[[InlineSeek], Awaitable[sqlite3.Connection]]) -> None:
        self._opener = opener
        self._conn: sqlite3.Connection | None = None
        self._opening: asyncio.Task[None] | None = None
        self._closed = False
        self._left = 0

    def seek(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row] | None:
        """The rows, or None when the pool must run the statement instead (no connection yet,
        the database locked, the step budget spent, or an error the pool will report)."""
        conn = self._conn
        if conn is None:
            self._open_soon()
            return None
        self._left = STEPS // GRAIN
        try:
            cursor = conn.execute(sql, params)
            try:
                return cursor.fetchmany(max_rows)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            if not _passing(exc):
                self._conn = None
                _close_quietly(conn)
            return None

    def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn)

    def _open_soon(self) -> None:
        if self._opening is None and not self._closed:
            self._opening = asyncio.get_running_loop().create_task(self._open())

    def prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """Make a pool-opened connection fit for the loop: no lock waits, the step budget.
        Called on a pool thread, before the connection is handed to the loop."""
        conn.execute("PRAGMA busy_timeout = 0")
        conn.set_progress_handler(self._spend, GRAIN)
        return conn

    def _spend(self) -> int:
        self._left -= 1
        return 1 if self._left < 0 else 0  # non-zero interrupts the statement

    async def _open(self) -> None:
        try:
            conn = await self._opener(self)
        except Exception as exc:  # the pool's own statements will say what is wrong
            log.debug("inline SQLite connection not opened: %s", exc)
        else:
            if self._closed:
                _close_quietly(conn)
            else:
                self._conn = conn
        finally:
            self._opening = None


def _passing(exc: sqlite3.Error) -> bool:
    """A lock or the step budget: the connection is sound, only this lookup moves."""
    message = str(exc).lower()
    return "interrupted" in message or "locked" in message or "busy" in message


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()
