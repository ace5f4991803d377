"""The blocking calls a pool thread makes on one leased connection (`Job`): each opens a
cursor, records it on the job (so another thread can cancel it), and closes it when done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from bridgehead.adapters.base import Outcome, ResultSet, Row


class Job:
    """One leased connection and the statement running on it."""

    __slots__ = ("broken", "by_statement", "conn", "cursor", "fresh", "pending", "timed_out")

    def __init__(self, conn: Any, *, fresh: bool) -> None:
        self.conn = conn
        self.fresh = fresh
        self.cursor: Any = None
        self.pending: asyncio.Future[Any] | None = None
        self.broken = False
        self.timed_out = False
        self.by_statement = False
        """The transaction was begun by a statement (Dialect.begin_sql), not by the driver."""


def fetch_rows(job: Job, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
    cursor = job.cursor = job.conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchmany(max_rows)  # type: ignore[no-any-return]
    finally:
        job.cursor = None
        cursor.close()


def execute(job: Job, sql: str, params: Sequence[Any]) -> None:
    job.cursor = job.conn.cursor()
    job.cursor.execute(sql, params)


def fetch_batch(job: Job, size: int) -> list[Row]:
    return job.cursor.fetchmany(size)  # type: ignore[no-any-return]


def run_statement(
    job: Job, sql: str, params: Sequence[Any], check: Callable[[Any], None]
) -> Outcome:
    cursor = job.cursor = job.conn.cursor()
    try:
        cursor.execute(sql, params)
        check(cursor)
        if cursor.description is None:
            return Outcome(None, cursor.rowcount)
        names = [d[0] for d in cursor.description]
        return Outcome(cursor.fetchall(), cursor.rowcount, names)
    finally:
        job.cursor = None
        cursor.close()


def run_each(
    job: Job,
    sql: str,
    rows: Sequence[Sequence[Any]],
    check: Callable[[Any], None],
    key_sql: str | None,
) -> list[Outcome]:
    """One statement run once per parameter row on one cursor (a batch of inserts in one
    thread hop), each run checked as `run_statement` checks it; each one's outcome, in order:
    its row count, and the rows its RETURNING (or OUTPUT) gave back, or else the row
    `key_sql` reads right after it (the key it generated)."""
    cursor = job.cursor = job.conn.cursor()
    try:
        outcomes = []
        for params in rows:
            cursor.execute(sql, params)
            check(cursor)
            returned = cursor.fetchall() if cursor.description is not None else None
            counted = cursor.rowcount  # after the fetch: sqlite3 counts RETURNING rows as read
            if returned is None and key_sql is not None:
                returned = cursor.execute(key_sql).fetchall()
            outcomes.append(Outcome(returned, counted))
        return outcomes
    finally:
        job.cursor = None
        cursor.close()


def named_rows(job: Job, sql: str, params: Sequence[Any], max_rows: int) -> ResultSet:
    cursor = job.cursor = job.conn.cursor()
    try:
        cursor.execute(sql, params)
        if cursor.description is None:
            return ResultSet([], [])
        return ResultSet([d[0] for d in cursor.description], cursor.fetchmany(max_rows))
    finally:
        job.cursor = None
        cursor.close()


def result_sets(
    job: Job, statements: Sequence[tuple[str, Sequence[Any]]], max_rows: int
) -> list[ResultSet]:
    cursor = job.cursor = job.conn.cursor()
    sets: list[ResultSet] = []
    try:
        for statement, args in statements:
            cursor.execute(statement, args)
            while True:
                if cursor.description is not None:
                    names = [d[0] for d in cursor.description]
                    sets.append(ResultSet(names, cursor.fetchmany(max_rows)))
                next_set = getattr(cursor, "nextset", None)
                if next_set is None or not next_set():
                    break
        return sets
    finally:
        job.cursor = None
        cursor.close()


def close_cursor(job: Job) -> None:
    cursor, job.cursor = job.cursor, None
    if cursor is not None:
        cursor.close()
